"""Benchmark: ReadProperty throughput and external-write round trip of the BACnet device.

Everything runs inside a private network namespace the script creates (see tests/netns.py);
packets only go to 10.77.1.x addresses on ``lo`` inside it.

Processes:

* the main process enters the namespace, migrates a temporary sqlite database, creates the
  virtual device AHU-1 (1001) and runs the load-generating client stack at 10.77.1.2;
* ``--role service``: a subprocess running the full ``UnifiedBACnetService`` (device 8888)
  at 10.77.1.1 against the same sqlite file;
* ``--role bare``: a subprocess running a bare bacpypes3 device (7777) at 10.77.1.3 with one
  analog-input, the baseline.

The subprocesses inherit the namespace (they are started after entering it) and refuse to
run if their namespace is not the one the parent created. They report ``READY`` on stdout
and stop when their stdin is closed.

Usage::

    cd /work/main && .venv/bin/python bench/bench_device.py --seconds 3 --writes 200
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from tests.netns import address, enter_private_network, ip  # noqa: E402

SERVICE_HOST = 1
CLIENT_HOST = 2
BARE_HOST = 3
CLIENT_DEVICE_ID = 990002
BARE_DEVICE_ID = 7777
VIRTUAL_DEVICE_ID = 1001

CONCURRENCY_LEVELS = (1, 8, 32)
WARMUP_REQUESTS = 100
MAX_REQUESTS = 50_000
REQUEST_TIMEOUT = 10.0  # seconds; per request, on top of bacpypes3's own APDU timeout/retries
ROW_POLL_INTERVAL = 0.001
ROW_POLL_LIMIT = 2.0
CHILD_READY_TIMEOUT = 60.0
CHILD_STOP_TIMEOUT = 15.0
CHILD_MAX_LIFETIME = 900.0  # a server subprocess never outlives this, even if the parent hangs

NETNS_ENV = "BENCH_DEVICE_NETNS"
READY = "READY"


# --- setup ------------------------------------------------------------------------------------


def quiet_logging() -> None:
    """Only warnings and above, from the app, Django and bacpypes3 alike."""
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["BACPYPES_LOG_LEVEL"] = "WARNING"
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)


def setup_django(database_file: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "django_bms.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{database_file}"
    quiet_logging()
    import django

    django.setup()
    # settings.LOGGING is applied by setup(); make sure nothing below WARNING gets through.
    for name in ("", "discovery", "django_bms", "bacpypes3", "django"):
        logging.getLogger(name).setLevel(logging.WARNING)


def current_netns() -> str:
    return os.readlink("/proc/self/ns/net")


def make_app(objects: list[Any]) -> Any:
    from bacpypes3.app import Application

    return Application.from_object_list(objects)


def device_and_port(host: int, device_id: int, name: str) -> list[Any]:
    from bacpypes3.local.device import DeviceObject
    from bacpypes3.local.networkport import NetworkPortObject

    return [
        DeviceObject(objectIdentifier=("device", device_id), objectName=name, vendorIdentifier=999),
        NetworkPortObject(f"{address(host)}:47808", objectIdentifier=("network-port", 1), objectName="np"),
    ]


# --- server subprocesses ----------------------------------------------------------------------


async def wait_for_stdin_eof() -> None:
    """Return when the parent closes our stdin (or dies), or after CHILD_MAX_LIFETIME."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await asyncio.wait_for(reader.read(), timeout=CHILD_MAX_LIFETIME)
    except TimeoutError:
        logging.getLogger("bench").warning("server subprocess reached its lifetime limit")


def announce_ready() -> None:
    sys.stdout.write(READY + "\n")
    sys.stdout.flush()


async def serve_integrated() -> None:
    from discovery.services.unified_bacnet_service import UnifiedBACnetService

    svc = UnifiedBACnetService(address=address(SERVICE_HOST))
    await svc.start_service()
    try:
        await asyncio.sleep(0.1)
        announce_ready()
        await wait_for_stdin_eof()
    finally:
        await svc.stop_service()


async def serve_bare() -> None:
    from bacpypes3.local.analog import AnalogInputObject

    ai = AnalogInputObject(
        objectIdentifier=("analog-input", 1),
        objectName="ai",
        presentValue=1.0,
        units="degrees-fahrenheit",
        statusFlags=[0, 0, 0, 0],
        eventState="normal",
        outOfService=False,
    )
    app = make_app([*device_and_port(BARE_HOST, BARE_DEVICE_ID, "bare"), ai])
    try:
        await asyncio.sleep(0.1)
        announce_ready()
        await wait_for_stdin_eof()
    finally:
        app.close()


def run_role(role: str, database_file: str) -> None:
    expected = os.environ.get(NETNS_ENV, "")
    if not expected or expected != current_netns():
        print(f"refusing to run --role {role}: not inside the benchmark's network namespace", file=sys.stderr)
        sys.exit(2)
    if role == "service":
        setup_django(database_file)
        asyncio.run(serve_integrated())
    elif role == "bare":
        quiet_logging()
        asyncio.run(serve_bare())
    else:
        print(f"unknown role {role!r}", file=sys.stderr)
        sys.exit(2)


@dataclass
class Server:
    role: str
    process: asyncio.subprocess.Process


async def start_server(role: str, database_file: str) -> Server:
    env = dict(os.environ)
    env[NETNS_ENV] = current_netns()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        role,
        "--database",
        database_file,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(PROJECT_DIR),
    )
    server = Server(role, process)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=CHILD_READY_TIMEOUT)
    except TimeoutError:
        line = b""
    if line.decode().strip() != READY:
        await stop_server(server)
        raise RuntimeError(f"{role} subprocess did not start (exit code {process.returncode})")
    return server


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stop_server(server: Server) -> int | None:
    process = server.process
    if process.returncode is None and process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), timeout=CHILD_STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
    return process.returncode


# --- measurements -----------------------------------------------------------------------------


@dataclass
class LoadResult:
    device: str
    in_flight: int
    completed: int
    errors: int
    elapsed: float
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0


async def read_once(client: Any, target: str) -> Any:
    return await asyncio.wait_for(
        client.read_property(target, "analog-input,1", "presentValue"), timeout=REQUEST_TIMEOUT
    )


async def read_load(
    client: Any, target: str, in_flight: int, max_requests: int, seconds: float
) -> LoadResult:
    """``in_flight`` workers issue reads until ``max_requests`` were started or time is up."""
    from bacpypes3.apdu import ErrorRejectAbortNack

    started = 0
    completed = 0
    errors = 0
    first_error = ""
    begin = time.perf_counter()
    deadline = begin + seconds

    async def worker() -> None:
        nonlocal started, completed, errors, first_error
        while started < max_requests and time.perf_counter() < deadline:
            started += 1
            try:
                await read_once(client, target)
            except (ErrorRejectAbortNack, TimeoutError, Exception) as exc:  # noqa: B014
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
            else:
                completed += 1

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return LoadResult("", in_flight, completed, errors, time.perf_counter() - begin, first_error)


async def measure_reads(client: Any, targets: dict[str, str], seconds: float) -> list[LoadResult]:
    results = []
    for name, target in targets.items():
        for in_flight in CONCURRENCY_LEVELS:
            await read_load(client, target, in_flight, WARMUP_REQUESTS, REQUEST_TIMEOUT * 3)
            result = await read_load(client, target, in_flight, MAX_REQUESTS, seconds)
            result.device = name
            results.append(result)
    return results


@dataclass
class WriteTimings:
    ack_ms: list[float]
    row_ms: list[float]
    errors: int
    rows_missing: int
    rows_on_first_poll: int = 0
    first_error: str = ""


def latest_write_id() -> int:
    from discovery.models import VirtualObjectWrite

    return VirtualObjectWrite.objects.order_by("-id").values_list("id", flat=True).first() or 0


def find_write_row(value: float, after_id: int) -> int | None:
    from discovery.models import VirtualObjectWrite

    return (
        VirtualObjectWrite.objects.filter(value=value, id__gt=after_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )


def setpoint_value(index: int) -> float:
    """55.0 .. 85.0 in steps of 0.25: exact in a BACnet Real (float32), so the row matches."""
    return 55.0 + (index % 121) * 0.25


async def measure_writes(client: Any, target: str, count: int) -> WriteTimings:
    from asgiref.sync import sync_to_async
    from bacpypes3.apdu import ErrorRejectAbortNack

    last_id = await sync_to_async(latest_write_id)()
    timings = WriteTimings([], [], 0, 0)
    for index in range(count):
        value = setpoint_value(index)
        sent = time.perf_counter()
        try:
            await asyncio.wait_for(
                client.write_property(target, "analog-output,1", "presentValue", value, priority=8),
                timeout=REQUEST_TIMEOUT,
            )
        except (ErrorRejectAbortNack, TimeoutError, Exception) as exc:  # noqa: B014
            timings.errors += 1
            timings.first_error = timings.first_error or f"{type(exc).__name__}: {exc}"
            continue
        acked = time.perf_counter()
        timings.ack_ms.append((acked - sent) * 1000)
        poll_deadline = acked + ROW_POLL_LIMIT
        polls = 0
        while True:
            row_id = await sync_to_async(find_write_row)(value, last_id)
            polls += 1
            if row_id is not None or time.perf_counter() >= poll_deadline:
                break
            await asyncio.sleep(ROW_POLL_INTERVAL)
        if row_id is None:
            timings.rows_missing += 1
            continue
        if polls == 1:
            timings.rows_on_first_poll += 1
        timings.row_ms.append((time.perf_counter() - sent) * 1000)
        last_id = row_id
    return timings


# --- report -----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def print_report(
    args: argparse.Namespace,
    reads: list[LoadResult],
    writes: WriteTimings,
    exit_codes: dict[str, Any],
    cpu: dict[str, float],
    wall: float,
) -> None:
    import bacpypes3

    print(
        f"# python {platform.python_version()} | bacpypes3 {bacpypes3.__version__} | "
        f"cpu count {os.cpu_count()} | command: {shlex.join(sys.orig_argv)}"
    )
    print(
        f"# ReadProperty analog-input,1 presentValue; per row: {WARMUP_REQUESTS} warm-up reads, then "
        f"{args.seconds:g} s or {MAX_REQUESTS} reads, whichever first"
    )
    print()
    print("| device | in flight | reads/s | errors |")
    print("|---|---:|---:|---:|")
    for result in reads:
        print(f"| {result.device} | {result.in_flight} | {result.rate:,.0f} | {result.errors} |")
    print()
    print(
        f"# {args.writes} sequential WriteProperty analog-output,1 presentValue (priority 8) to device 8888"
    )
    print("| measure | p50 ms | p99 ms |")
    print("|---|---:|---:|")
    print(f"| ack | {percentile(writes.ack_ms, 0.5):.2f} | {percentile(writes.ack_ms, 0.99):.2f} |")
    print(f"| row visible | {percentile(writes.row_ms, 0.5):.2f} | {percentile(writes.row_ms, 0.99):.2f} |")
    print()
    print("Notes:")
    print(
        "- each server device runs in its own subprocess (integrated service; bare bacpypes3), the "
        "client in the main process; all share the machine's CPUs and the loopback interface."
    )
    print(
        "- 'row visible' is measured from sending the request (not from the ack); it includes one "
        "sync_to_async ORM query from the client process."
    )
    print(
        f"- history row already present at the first poll after the ack: "
        f"{writes.rows_on_first_poll} of {len(writes.row_ms)} writes"
    )
    print(
        f"- writes: {len(writes.ack_ms)} acked, {writes.errors} errors, "
        f"{writes.rows_missing} history rows not seen within {ROW_POLL_LIMIT:g} s"
    )
    for result in reads:
        if result.first_error:
            print(f"- {result.device} x{result.in_flight}: first error: {result.first_error}")
    if writes.first_error:
        print(f"- writes: first error: {writes.first_error}")
    usage = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cpu.items())
    print(f"- CPU time used over the {wall:.1f} s run: {usage}")
    print(f"- server subprocess exit codes: {exit_codes}")


# --- main -------------------------------------------------------------------------------------


async def run_benchmark(args: argparse.Namespace, database_file: str) -> None:
    servers: dict[str, Server] = {}
    client = None
    cpu: dict[str, float] = {}
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        servers["integrated 8888"] = await start_server("service", database_file)
        servers["bare 7777"] = await start_server("bare", database_file)
        client = make_app(device_and_port(CLIENT_HOST, CLIENT_DEVICE_ID, "bench-client"))
        await asyncio.sleep(0.1)
        targets = {"integrated 8888": ip(SERVICE_HOST), "bare 7777": ip(BARE_HOST)}
        for name, target in targets.items():
            value = await read_once(client, target)
            print(f"# {name} at {target}: analog-input,1 presentValue = {value}", flush=True)
        reads = await measure_reads(client, targets, args.seconds)
        writes = await measure_writes(client, ip(SERVICE_HOST), args.writes)
        cpu["client (main)"] = time.process_time() - cpu_start
        for name, server in servers.items():
            cpu[name] = cpu_seconds(server.process.pid)
    finally:
        if client is not None:
            client.close()
        exit_codes = {name: await stop_server(server) for name, server in servers.items()}
    print_report(args, reads, writes, exit_codes, cpu, time.perf_counter() - wall_start)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per (device, in flight)")
    parser.add_argument("--writes", type=int, default=200, help="sequential writes to time")
    parser.add_argument("--role", choices=("service", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seconds <= 0 or args.writes < 0:
        parser.error("--seconds must be positive and --writes not negative")
    return args


def main() -> None:
    args = parse_args()
    if args.role:
        run_role(args.role, args.database)
        return

    problem = enter_private_network()
    if problem:
        print(problem)
        sys.exit(1)

    database_file = str(Path(tempfile.mkdtemp(prefix="bench-device-")) / "bench.sqlite3")
    setup_django(database_file)
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    from discovery.services import virtual_store

    virtual_store.create_virtual_device(template="hvac_controller", device_id=VIRTUAL_DEVICE_ID, name="AHU-1")
    connections.close_all()

    try:
        asyncio.run(run_benchmark(args, database_file))
    finally:
        shutil.rmtree(Path(database_file).parent, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
