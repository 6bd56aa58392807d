"""The client commands as an operator runs them: real processes against simulated devices.

The simulated devices run in the test's event loop on 10.77.1.21-23; each command is a
``manage.py`` subprocess (awaited without blocking the loop, so the devices keep answering)
with its own SQLite file and BACNET_ADDRESS 10.77.1.11 (10.77.1.12 with ``serve``). Without a
running service a command binds a short-lived stack of its own; with ``serve`` running it asks
the service through the control socket instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from discovery.simulator.devices import SimulatedDeviceConfig, Simulation
from tests import netns

pytestmark = pytest.mark.usefixtures("private_network")

ROOT = Path(__file__).resolve().parent.parent
BACNET_PORT = 47808
COMMAND_HOST = 11
SERVE_HOST = 12
COMMAND_TIMEOUT = 20.0
READY_TIMEOUT = 20.0

NORMAL, SECOND, NO_RPM = 100001, 100002, 100003
HOSTS = {NORMAL: 21, SECOND: 22, NO_RPM: 23}
OBJECTS = 11
VENDOR = "Simulated Controls Inc."


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"manage.py {' '.join(self.args)} -> {self.returncode}\n{self.stdout}\n{self.stderr}"

    @property
    def error(self) -> str:
        """The one CommandError line of a failed command (and no traceback)."""
        assert self.returncode != 0, str(self)
        assert "Traceback" not in self.stderr, str(self)
        lines = [line for line in self.stderr.splitlines() if "CommandError" in line]
        assert len(lines) == 1, str(self)
        return lines[0].split("\r")[-1]


Manage = Callable[..., Awaitable[Result]]


def command_env(db_file: Path, tmp_path: Path, host: int = COMMAND_HOST) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{db_file}",
        BACNET_ADDRESS=netns.address(host),
        BACNET_APDU_TIMEOUT_MS="500",
        BACNET_APDU_RETRIES="0",
        BACNET_DISCOVERY_TIMEOUT="1",
        SECRET_KEY="test",
        BACNET_CONTROL_SOCKET=str(tmp_path / "bacnet.sock"),
        DJANGO_SETTINGS_MODULE="django_bms.settings",
    )
    return env


def query(db_file: Path, sql: str, *params: object) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db_file, timeout=5)) as connection:
        return connection.execute(sql, params).fetchall()


def count_readings(db_file: Path) -> int:
    return query(db_file, "SELECT COUNT(*) FROM discovery_bacnetreading")[0][0]


def port_is_free(ip: str, port: int = BACNET_PORT) -> bool:
    """True when a plain socket (no SO_REUSEPORT) can bind ``ip:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def free_http_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def control_status(path: Path) -> dict | None:
    """The running service's status through its control socket, or None if it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(path))
            sock.sendall(b'{"op": "status", "args": {}}\n')
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
    except (OSError, ValueError):
        return None
    return answer.get("result") if answer.get("ok") else None


def simulated(device_id: int, **quirks) -> SimulatedDeviceConfig:
    return SimulatedDeviceConfig(
        device_id=device_id,
        name=f"SIM-{device_id}",
        address=netns.address(HOSTS[device_id]),
        object_count=OBJECTS,
        drift_interval=0,
        **quirks,
    )


def simulated_object(simulation: Simulation, device_id: int, object_id: str):
    kind, instance = object_id.split(",")
    for obj in simulation.device(device_id).app.iter_objects():
        if str(obj.objectIdentifier[0]) == kind and obj.objectIdentifier[1] == int(instance):
            return obj
    raise KeyError(object_id)


def device_rows(stdout: str) -> dict[int, str]:
    """The lines of a `discover` table by device id."""
    rows = {}
    for line in stdout.splitlines():
        match = re.match(r"(\d+)\s+\d+\.\d+\.\d+\.\d+\s", line)
        if match:
            rows[int(match.group(1))] = line
    return rows


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> Path:
    """A database file `manage.py migrate` has run on; each test works on a copy."""
    directory = tmp_path_factory.mktemp("template")
    db_file = directory / "db.sqlite3"
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=command_env(db_file, directory),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return db_file


@pytest.fixture
def db_file(migrated_db, tmp_path) -> Path:
    for source in migrated_db.parent.glob(migrated_db.name + "*"):  # with any -wal/-shm file
        shutil.copy(source, tmp_path / source.name)
    return tmp_path / migrated_db.name


@pytest.fixture
def env(db_file, tmp_path) -> dict[str, str]:
    return command_env(db_file, tmp_path)


@pytest.fixture
async def manage(env) -> AsyncIterator[Manage]:
    """Run ``manage.py`` commands as subprocesses; any still running is killed afterwards."""
    processes: list[asyncio.subprocess.Process] = []

    async def run(*args: str, env: dict[str, str] = env, timeout: float = COMMAND_TIMEOUT) -> Result:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            *args,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        processes.append(process)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"manage.py {' '.join(args)} did not finish within {timeout:g} s")
        return Result(
            args, process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
        )

    yield run
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def simulation() -> AsyncIterator[Simulation]:
    running = await Simulation.start(
        [simulated(NORMAL), simulated(SECOND), simulated(NO_RPM, supports_rpm=False)]
    )
    try:
        yield running
    finally:
        await running.stop()


class ServeProcess:
    """``manage.py serve`` with its output in files (no pipe can fill up)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.control_socket = Path(env["BACNET_CONTROL_SOCKET"])
        self.stderr_path = log_dir / "serve.stderr"
        with (log_dir / "serve.stdout").open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_http_port()),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict | None:
        """The service's status once its control socket answers (None if it never does)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.control_socket.exists():
                status = await asyncio.to_thread(control_status, self.control_socket)
                if status is not None and status.get("state") == "running":
                    return status
            await asyncio.sleep(0.1)
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def serve(db_file, tmp_path) -> Iterator[ServeProcess]:
    """A ``serve`` process (polling off) on 10.77.1.12; stopped afterwards."""
    env = command_env(db_file, tmp_path, SERVE_HOST)
    env["BACNET_POLLING"] = "false"
    process = ServeProcess(env, tmp_path)
    try:
        yield process
    finally:
        process.stop()


# --- discover -----------------------------------------------------------------------------------


async def test_discover_lists_every_simulated_device(manage, simulation, db_file):
    result = await manage("discover")

    assert result.returncode == 0, result
    rows = device_rows(result.stdout)
    assert sorted(rows) == [NORMAL, SECOND, NO_RPM], result
    for device_id, host in HOSTS.items():
        columns = rows[device_id].split()
        assert columns[1] == netns.ip(host), rows[device_id]
        assert columns[2] == f"SIM-{device_id}", rows[device_id]
        assert VENDOR in rows[device_id]
    assert "3 device(s) found." in result.stdout.splitlines()
    assert "Traceback" not in result.stderr
    stored = query(db_file, "SELECT device_id, address, object_name, vendor_name FROM discovery_bacnetdevice")
    assert sorted(stored) == [(d, netns.ip(h), f"SIM-{d}", VENDOR) for d, h in sorted(HOSTS.items())]


async def test_discover_with_a_range_or_an_address_lists_only_those_devices(manage, simulation):
    ranged = await manage("discover", "--low", str(SECOND), "--high", str(NO_RPM))
    assert ranged.returncode == 0, ranged
    assert sorted(device_rows(ranged.stdout)) == [SECOND, NO_RPM], ranged
    assert "2 device(s) found." in ranged.stdout.splitlines()

    directed = await manage("discover", "--address", netns.ip(HOSTS[NORMAL]))
    assert directed.returncode == 0, directed
    assert sorted(device_rows(directed.stdout)) == [NORMAL], directed
    assert "1 device(s) found." in directed.stdout.splitlines()


async def test_discover_with_points_reads_every_device_as_it_answers(manage, simulation, db_file):
    result = await manage("discover", "--points")

    assert result.returncode == 0, result
    rows = device_rows(result.stdout)
    assert sorted(rows) == [NORMAL, SECOND, NO_RPM], result
    assert result.stdout.splitlines()[0].split()[-2:] == ["points", "note"]
    for line in rows.values():
        assert line.split()[-1] == str(OBJECTS), line
    assert f"{3 * OBJECTS} point(s) stored from 3 device(s)." in result.stdout.splitlines()
    stored = query(
        db_file,
        "SELECT d.device_id, COUNT(p.id) FROM discovery_bacnetpoint p "
        "JOIN discovery_bacnetdevice d ON p.device_id = d.id GROUP BY d.device_id",
    )
    assert sorted(stored) == [(NORMAL, OBJECTS), (SECOND, OBJECTS), (NO_RPM, OBJECTS)]


async def test_discover_with_only_one_end_of_the_range_is_refused(manage):
    result = await manage("discover", "--low", "5")

    assert result.error == "CommandError: Give --low and --high together."
    assert "BACnet service started" not in result.stderr


# --- discover_points, bacnet_read, bacnet_write -----------------------------------------------------


async def test_discover_points_lists_and_stores_every_object(manage, simulation, db_file):
    assert (await manage("discover")).returncode == 0

    result = await manage("discover_points", str(NORMAL))

    assert result.returncode == 0, result
    assert f"{OBJECTS} point(s) stored from device {NORMAL} (ReadPropertyMultiple)." in result.stdout
    expected = {
        (str(obj.objectIdentifier[0]), int(obj.objectIdentifier[1]), str(obj.objectName))
        for obj in simulation.device(NORMAL).app.iter_objects()
        if str(obj.objectIdentifier[0]) not in ("device", "network-port")
    }
    assert len(expected) == OBJECTS
    stored = query(
        db_file,
        "SELECT p.object_type, p.instance, p.object_name FROM discovery_bacnetpoint p "
        "JOIN discovery_bacnetdevice d ON p.device_id = d.id WHERE d.device_id = ?",
        NORMAL,
    )
    assert set(stored) == expected
    table = result.stdout.splitlines()
    assert table[0].split()[:3] == ["type", "instance", "name"]
    for object_type, instance, name in expected:
        assert any(line.split()[:3] == [object_type, str(instance), name] for line in table), name

    fallback = await manage("discover_points", str(NO_RPM))
    assert fallback.returncode == 0, fallback
    assert f"{OBJECTS} point(s) stored from device {NO_RPM} (ReadProperty)." in fallback.stdout


async def test_bacnet_read_prints_the_value(manage, simulation):
    assert (await manage("discover")).returncode == 0
    value = float(simulated_object(simulation, NORMAL, "analog-input,1").presentValue)

    result = await manage("bacnet_read", str(NORMAL), "analog-input,1", "presentValue")

    assert result.returncode == 0, result
    assert float(result.stdout.strip()) == pytest.approx(value)


async def test_bacnet_write_at_priority_8_then_relinquish_it(manage, simulation):
    assert (await manage("discover")).returncode == 0
    setpoint = simulated_object(simulation, NORMAL, "analog-output,1")

    written = await manage("bacnet_write", str(NORMAL), "analog-output,1", "70", "--priority", "8")

    assert written.returncode == 0, written
    assert written.stdout.strip() == f"Wrote 70 to analog-output,1 of device {NORMAL} at priority 8."
    assert float(setpoint.priorityArray[7].real) == 70.0
    assert float(setpoint.presentValue) == 70.0

    released = await manage("bacnet_write", str(NORMAL), "analog-output,1", "--relinquish", "--priority", "8")

    assert released.returncode == 0, released
    assert released.stdout.strip() == f"Relinquished analog-output,1 of device {NORMAL} at priority 8."
    assert setpoint.priorityArray[7].null is not None
    assert float(setpoint.presentValue) == float(setpoint.relinquishDefault)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["70", "--priority", "17"], "--priority must be between 1 and 16."),
        (["70", "--relinquish"], "Give a VALUE or --relinquish (not both)."),
        ([], "Give a VALUE or --relinquish (not both)."),
    ],
    ids=["priority-17", "value-and-relinquish", "neither"],
)
async def test_bacnet_write_refuses_bad_arguments(manage, args, message):
    result = await manage("bacnet_write", str(NORMAL), "analog-output,1", *args)

    assert result.error == f"CommandError: {message}"
    assert "BACnet service started" not in result.stderr  # refused before any stack starts


# --- errors -------------------------------------------------------------------------------------


async def test_an_unknown_device_is_one_clear_line(manage, simulation):
    result = await manage("discover_points", "999999")

    assert "unknown device" in result.error.lower()
    assert "999999" in result.error


async def test_a_device_that_stopped_answering_is_a_timeout(manage, simulation):
    assert (await manage("discover")).returncode == 0
    simulation.device(SECOND).silence()

    result = await manage("bacnet_read", str(SECOND), "analog-input,1", "presentValue")

    assert "timeout" in result.error


async def test_a_bacnet_error_is_named(manage, simulation):
    assert (await manage("discover")).returncode == 0

    result = await manage("bacnet_read", str(NORMAL), "analog-input,999", "presentValue")

    assert "unknown-object" in result.error


# --- with `serve` running -----------------------------------------------------------------------


async def test_commands_use_the_running_service_instead_of_a_stack_of_their_own(
    manage, simulation, serve, db_file, tmp_path
):
    status = await serve.wait_ready()
    assert status is not None, serve.stderr
    assert status["address"] == f"{netns.ip(SERVE_HOST)}:{BACNET_PORT}" and status["polling"] is None
    env = command_env(db_file, tmp_path, SERVE_HOST)

    # without the control socket a command would need a stack of its own: the port is taken
    alone = await manage("discover", env={**env, "BACNET_CONTROL_SOCKET": str(tmp_path / "none.sock")})
    assert "already in use" in alone.error

    found = await manage("discover", env=env)
    assert found.returncode == 0, found
    assert sorted(device_rows(found.stdout)) == [NORMAL, SECOND, NO_RPM], found
    assert "3 device(s) found." in found.stdout.splitlines()
    assert "BACnet service started" not in found.stderr
    assert "Discovery found 3 device(s)" in serve.stderr  # the work was done by serve

    again = await manage("discover", env=env)
    assert again.returncode == 0, again
    assert "3 device(s) found (cached; use --force to scan again)." in again.stdout.splitlines()

    value = float(simulated_object(simulation, NORMAL, "analog-input,1").presentValue)
    read = await manage("bacnet_read", str(NORMAL), "analog-input,1", "presentValue", env=env)
    assert read.returncode == 0, read
    assert float(read.stdout.strip()) == pytest.approx(value)
    assert "BACnet service started" not in read.stderr

    setpoint = simulated_object(simulation, NORMAL, "analog-output,1")
    written = await manage("bacnet_write", str(NORMAL), "analog-output,1", "65", "--priority", "8", env=env)
    assert written.returncode == 0, written
    assert float(setpoint.priorityArray[7].real) == 65.0

    failed = await manage("bacnet_read", str(NORMAL), "analog-input,999", "presentValue", env=env)
    assert "unknown-object" in failed.error

    polled = await manage("poll", env=env)
    assert polled.returncode == 0, polled
    assert polled.stdout.strip() == "The running service polls: polling is off (BACNET_POLLING=false)."

    assert serve.process.poll() is None, serve.stderr
    assert not port_is_free(netns.ip(SERVE_HOST))
    assert "Traceback" not in serve.stderr


# --- poll ---------------------------------------------------------------------------------------


async def test_poll_for_a_while_stores_readings(manage, simulation, db_file):
    assert (await manage("discover")).returncode == 0
    assert (await manage("discover_points", str(NORMAL))).returncode == 0
    before = count_readings(db_file)

    result = await manage("poll", "--duration", "1.5")

    assert result.returncode == 0, result
    lines = result.stdout.strip().splitlines()
    assert lines, result
    assert re.fullmatch(
        r"1 device\(s\), 1 online, 0 offline, \d+ point\(s\) by COV, \d+ reading\(s\) stored\.", lines[-1]
    ), result
    assert "Traceback" not in result.stderr
    assert count_readings(db_file) > before
    assert port_is_free(netns.ip(COMMAND_HOST))
