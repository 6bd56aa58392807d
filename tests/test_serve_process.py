"""`manage.py serve` as an operator runs it: a real process, real UDP, real HTTP, real signals.

Every process runs inside the test process's private network namespace (children inherit
it) with its own SQLite file. Each test binds its own 10.77.1.2x address for the service
and 10.77.1.3x for its BACnet client, so nothing clashes with the in-process service tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bacpypes3.app import Application

from tests import netns

pytestmark = pytest.mark.usefixtures("private_network")

ROOT = Path(__file__).resolve().parent.parent
BACNET_PORT = 47808
READY_TIMEOUT = 20.0
READ_TIMEOUT = 2.0


def free_http_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(ip: str, port: int = BACNET_PORT) -> bool:
    """True when a plain socket (no SO_REUSEPORT) can bind ``ip:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def manage_env(db_file: Path, host: int | str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{db_file}",
        BACNET_ADDRESS=netns.address(host) if isinstance(host, int) else host,
        BACNET_DB_WATCH_INTERVAL="0.2",
        SECRET_KEY="test",
        DJANGO_SETTINGS_MODULE="django_bms.settings",
    )
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def manage_async(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``manage`` in a worker thread, so the test's BACnet client keeps running meanwhile."""
    return await asyncio.to_thread(manage, env, *args)


class ServeProcess:
    """One ``manage.py serve`` process with its output in files (no pipe can fill up)."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.http_port = free_http_port()
        self.ip = env["BACNET_ADDRESS"].split("/")[0]
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.http_port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if the process is still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.process.poll()

    async def wait_for_log(self, text: str, timeout: float = READY_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr:
                return True
            if self.process.poll() is not None:
                return text in self.stderr
            await asyncio.sleep(0.05)
        return False

    async def wait_for_http(self, timeout: float = READY_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5):
                    return True
            except OSError:
                await asyncio.sleep(0.05)
        return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> Path:
    """A database file `manage.py migrate` has run on; tests start from copies of it."""
    db_file = tmp_path_factory.mktemp("template") / "db.sqlite3"
    result = manage(manage_env(db_file, "10.77.1.20/24"), "migrate", "--no-input")
    assert result.returncode == 0, result.stderr
    return db_file


@pytest.fixture
def db_file(migrated_db, tmp_path) -> Path:
    copy = tmp_path / "db.sqlite3"
    for source in migrated_db.parent.glob(migrated_db.name + "*"):  # with any -wal/-shm file
        shutil.copy(source, tmp_path / source.name)
    return copy


@pytest.fixture
def launch(tmp_path) -> Iterator[Callable[[dict[str, str]], ServeProcess]]:
    """Start ``manage.py serve`` processes; whatever is still running is killed afterwards."""
    processes: list[ServeProcess] = []

    def start(env: dict[str, str]) -> ServeProcess:
        process = ServeProcess(env, tmp_path, f"serve-{len(processes)}")
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill()


@pytest.fixture
def clients(client_factory) -> Callable[[int], Application]:
    """Independent client stacks (conftest's factory, closed after the test)."""
    return client_factory


async def read(client: Application, ip: str, identifier: str, prop: str):
    return await asyncio.wait_for(client.read_property(ip, identifier, prop), READ_TIMEOUT)


async def answers(client: Application, ip: str, timeout: float = READY_TIMEOUT) -> bool:
    """Poll until the device at ``ip`` answers a read of its objectName (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await asyncio.wait_for(client.read_property(ip, "device,8888", "objectName"), 0.5):
                return True
        except Exception:
            await asyncio.sleep(0.1)
    return False


async def start_serving(launch, env: dict[str, str], client: Application) -> ServeProcess:
    serve = launch(env)
    assert await serve.wait_for_log("BACnet service started"), serve.stderr
    assert await answers(client, serve.ip), serve.stderr
    return serve


async def eventually_equal(get, expected, timeout: float) -> object:
    """Poll ``get()`` until it returns ``expected`` or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await get()
        except Exception as exc:  # a read that failed this time: try again until the deadline
            value = exc
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def object_ids(object_list) -> list[tuple[str, int]]:
    return [(str(identifier[0]), int(identifier[1])) for identifier in object_list]


def http_get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


@pytest.mark.parametrize(
    ("stop_signal", "host", "client_host"),
    [(signal.SIGTERM, 21, 31), (signal.SIGINT, 22, 32)],
    ids=["SIGTERM", "SIGINT"],
)
async def test_serve_answers_bacnet_and_http_then_stops_cleanly_on_a_signal(
    db_file, launch, clients, stop_signal, host, client_host
):
    client = clients(client_host)
    serve = await start_serving(launch, manage_env(db_file, host), client)

    assert await read(client, serve.ip, "device,8888", "objectName") == "Django_BMS"
    assert await serve.wait_for_http(), serve.stderr
    assert await asyncio.to_thread(http_get, f"{serve.url}/admin/login/") == 200

    serve.process.send_signal(stop_signal)
    assert await serve.wait_exit(10) == 0, serve.stderr
    assert "BACnet service stopped" in serve.stderr
    assert "Traceback" not in serve.stderr
    assert port_is_free(serve.ip)


async def test_a_second_service_on_the_same_address_is_refused(db_file, launch, clients):
    client = clients(33)
    env = manage_env(db_file, 23)
    first = await start_serving(launch, env, client)

    second = launch(env)
    code = await second.wait_exit(15)
    assert code is not None and code != 0, second.stderr
    assert f"{netns.ip(23)}:{BACNET_PORT}" in second.stderr
    assert "already in use" in second.stderr
    assert "Traceback" not in second.stderr

    assert first.process.poll() is None
    assert await read(client, first.ip, "device,8888", "objectName") == "Django_BMS"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.77.9.9/24", "BACNET_ADDRESS 10.77.9.9 does not exist on this host"),
        ("not-an-ip", "BACNET_ADDRESS='not-an-ip' is not an IPv4 address with a prefix"),
    ],
    ids=["absent-address", "malformed-address"],
)
async def test_a_bind_address_that_is_not_usable_is_refused(db_file, launch, address, message):
    serve = launch(manage_env(db_file, address))
    code = await serve.wait_exit(15)
    assert code is not None and code != 0, serve.stderr
    assert message in serve.stderr
    assert "CommandError" in serve.stderr and "Traceback" not in serve.stderr


async def test_virtual_device_cli_changes_reach_a_running_service_within_a_second(db_file, launch, clients):
    client = clients(34)
    env = manage_env(db_file, 24)
    serve = await start_serving(launch, env, client)

    async def object_list():
        return sorted(object_ids(await read(client, serve.ip, "device,8888", "objectList")))

    async def setpoint_name():
        return await read(client, serve.ip, "analog-output,1", "objectName")

    assert await object_list() == sorted([("device", 8888), ("network-port", 1)])

    created = await manage_async(
        env,
        "virtual_device",
        "create",
        "--template",
        "hvac_controller",
        "--device-id",
        "1001",
        "--name",
        "AHU-1",
    )
    assert created.returncode == 0, created.stderr
    expected = sorted(
        [
            ("device", 8888),
            ("network-port", 1),
            ("analog-input", 1),
            ("analog-output", 1),
            ("binary-output", 1),
        ]
    )
    assert await eventually_equal(object_list, expected, timeout=1.5) == expected
    assert await eventually_equal(setpoint_name, "Virtual_1001_Temperature_Setpoint", timeout=1.5) == (
        "Virtual_1001_Temperature_Setpoint"
    )

    deleted = await manage_async(env, "virtual_device", "delete", "1001")
    assert deleted.returncode == 0, deleted.stderr
    base = sorted([("device", 8888), ("network-port", 1)])
    assert await eventually_equal(object_list, base, timeout=1.5) == base


def test_migrate_and_other_commands_never_bind_the_bacnet_port(tmp_path):
    ip = netns.ip(25)
    env = manage_env(tmp_path / "db.sqlite3", 25)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind((ip, BACNET_PORT))  # no SO_REUSEPORT: any bind of ip:47808 by a command fails
        commands = [
            ("migrate", "--no-input"),
            ("check",),
            ("virtual_device", "list"),
            (
                "virtual_device",
                "create",
                "--template",
                "temperature_sensor",
                "--device-id",
                "7",
                "--name",
                "T",
            ),
            ("virtual_device", "delete", "7"),
            ("migrate_to_unified_service", "--dry-run"),
            ("shell", "-c", "print(1)"),
        ]
        for command in commands:
            result = manage(env, *command)
            assert result.returncode == 0, f"{command}: {result.stderr}"
            assert "BACnet service started" not in result.stderr
        assert not port_is_free(ip)  # still ours all along


async def test_restart_rebuilds_objects_with_their_last_values(db_file, launch, clients):
    client = clients(36)
    env = manage_env(db_file, 26)
    created = await manage_async(
        env,
        "virtual_device",
        "create",
        "--template",
        "hvac_controller",
        "--device-id",
        "1001",
        "--name",
        "AHU-1",
    )
    assert created.returncode == 0, created.stderr
    serve = await start_serving(launch, env, client)
    ip = serve.ip

    await asyncio.wait_for(
        client.write_property(ip, "analog-output,1", "presentValue", 75.0, priority=8), READ_TIMEOUT
    )
    await asyncio.wait_for(client.write_property(ip, "analog-input,1", "outOfService", True), READ_TIMEOUT)
    await asyncio.wait_for(client.write_property(ip, "analog-input,1", "presentValue", 60.0), READ_TIMEOUT)
    assert await read(client, ip, "analog-output,1", "presentValue") == 75.0

    serve.process.send_signal(signal.SIGTERM)
    assert await serve.wait_exit(10) == 0, serve.stderr

    restarted = await start_serving(launch, env, client)
    assert "with 3 virtual objects" in restarted.stderr
    assert await read(client, ip, "analog-output,1", "presentValue") == 75.0
    array = await read(client, ip, "analog-output,1", "priorityArray")
    slots = [None if slot.null is not None else float(slot.real) for slot in array]
    assert slots == [None] * 7 + [75.0] + [None] * 8
    assert await read(client, ip, "analog-input,1", "outOfService") == 1  # Boolean true
    assert await read(client, ip, "analog-input,1", "presentValue") == 60.0
