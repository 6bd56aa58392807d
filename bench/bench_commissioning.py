"""Benchmark: commissioning scan of many simulated devices, then polling and COV of all their points.

Everything runs inside a private network namespace the script creates (see tests/netns.py);
packets only go to 10.77.1.x addresses on ``lo`` inside it. tests/netns.py gives 10.77.1.1-40;
the script adds the simulator's addresses (10.77.1.101 and up, one per device) itself, inside
the namespace, and checks that ``lo`` is the only interface there before it sends anything.

Processes:

* the main process enters the namespace, migrates a temporary sqlite database and runs the
  product's ``UnifiedBACnetService`` (device 8888) at 10.77.1.1: discovery, point reading,
  polling and COV are the product's own code paths;
* ``--role simulator``: a subprocess running ``--devices`` simulated devices (discovery.simulator)
  with ``--objects`` objects each at 10.77.1.101, .102, ... with drift on (1 s).

The subprocess inherits the namespace (it is started after entering it) and refuses to run if
its namespace is not the one the parent created. It reports ``READY`` on stdout and stops when
its stdin is closed (or after CHILD_MAX_LIFETIME).

Measured:

1. scan: the product's commissioning scan, ``discover_devices(force=True, timeout=--listen,
   read_points=True)``: a global Who-Is that listens for ``--listen`` seconds; each device that
   answers is read (device information, then every point, at most BACNET_POINT_READ_DEVICES
   devices at a time, ``--point-read-devices``) as soon as its I-Am arrives. Measured from the
   call until it returns (the listening is over and every point of every device is stored);
   ``--retries`` reads devices that failed part-way again, inside the measured time. The
   BACnetPoint rows are counted against devices x objects, and also when the listening ended;
2. polling: a ``Poller(use_cov=False)`` with BACNET_POLL_NORMAL = ``--poll-interval`` for
   ``--poll-seconds``: BACnetReading rows timestamped inside the window (stored by the window's
   end or by the poller's final flush) per second;
3. COV: a ``Poller(use_cov=True)``: how long subscribing every point takes (bounded by
   ``--cov-limit``), then readings stored per second for ``--poll-seconds``.

Requests in flight per device: the configured limit (BACNET_MAX_IN_FLIGHT, ``--in-flight``) and
the measured peak and time-average of confirmed requests outstanding per device (counted by
wrapping the service stack's ``request`` in this process). Time spent in the database functions
(store_points, store_readings, finish_scan) is measured by wrapping them too; both wrappers only
observe, product code is unchanged. Per phase it also prints CPU time of both processes,
request latency and failures, the longest stall of the service's event loop and this
namespace's UDP counters (receive-buffer drops = datagrams lost).

Usage::

    cd /work/main && .venv/bin/python bench/bench_commissioning.py --devices 50 --objects 200
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from tests.netns import PREFIX, SUBNET, address, enter_private_network, ip  # noqa: E402

SERVICE_HOST = 1
SIMULATOR_FIRST_HOST = 101
MAX_DEVICES = 150  # 10.77.1.101 .. 10.77.1.250
MAX_OBJECTS = 2000
FIRST_DEVICE_ID = 100001

CHILD_READY_TIMEOUT = 300.0  # building 10,000 objects takes a while on a slow machine
CHILD_STOP_TIMEOUT = 30.0
CHILD_MAX_LIFETIME = 1800.0  # the simulator never outlives this, even if the parent hangs
SAMPLE_INTERVAL = 1.0
IDLE_MEASURE = 3.0  # seconds the simulator's background CPU (drift) is measured before the scan
STOP_LIMIT = 120.0  # a poller's stop (COV: unsubscribing every point) may take at most this

NETNS_ENV = "BENCH_COMMISSIONING_NETNS"
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
    for name in ("", "discovery", "django_bms", "bacpypes3", "django"):
        logging.getLogger(name).setLevel(logging.WARNING)


def current_netns() -> str:
    return os.readlink("/proc/self/ns/net")


def simulator_host(n: int) -> int:
    return SIMULATOR_FIRST_HOST + n


def add_simulator_addresses(devices: int) -> None:
    """Inside the namespace: put 10.77.1.101 .. 10.77.1.(100+devices)/24 on lo."""
    for n in range(devices):
        subprocess.run(
            ["ip", "addr", "add", address(simulator_host(n)), "brd", f"{SUBNET}.255", "dev", "lo"],
            check=True,
            capture_output=True,
            timeout=10,
        )


def check_private_network() -> str | None:
    """None when lo is the only interface and it carries only 127.0.0.1 and 10.77.1.x addresses."""
    links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True, timeout=10)
    names = [line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines() if line.strip()]
    if names != ["lo"]:
        return f"unexpected interfaces in the namespace: {names}"
    addrs = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], check=True, capture_output=True, text=True, timeout=10
    )
    for line in addrs.stdout.splitlines():
        fields = line.split()
        inet = fields[fields.index("inet") + 1]
        if not (inet.startswith("127.") or inet.startswith(f"{SUBNET}.")):
            return f"unexpected address in the namespace: {inet}"
    return None


def udp_counters() -> dict[str, int]:
    """This namespace's UDP counters (/proc/net/snmp): datagrams in/out, receive-buffer drops."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    ]
    return {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:], strict=True)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- simulator subprocess ---------------------------------------------------------------------


async def wait_for_stdin_eof() -> None:
    """Return when the parent closes our stdin (or dies), or after CHILD_MAX_LIFETIME."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await asyncio.wait_for(reader.read(), timeout=CHILD_MAX_LIFETIME)
    except TimeoutError:
        logging.getLogger("bench").warning("simulator subprocess reached its lifetime limit")


async def serve_simulator(devices: int, objects: int, drift: float, profile: str | None) -> None:
    from discovery.simulator import Simulation, plan_devices

    begin = time.perf_counter()
    configs = plan_devices(
        devices,
        objects,
        first_address=address(SIMULATOR_FIRST_HOST),
        first_device_id=FIRST_DEVICE_ID,
        drift_interval=drift,
    )
    simulation = await Simulation.start(configs, bind_timeout=60.0)
    lag = LoopLag()
    try:
        await asyncio.sleep(0.2)
        sys.stdout.write(f"{READY} {time.perf_counter() - begin:.3f}\n")
        sys.stdout.flush()
        lag.start()
        with Profiled(profile and str(Path(profile) / "simulator.prof")):
            await wait_for_stdin_eof()
    finally:
        await lag.stop()
        await simulation.stop()
        sys.stdout.write(f"LAG {lag.worst:.3f} {lag.over_half_second}\n")
        sys.stdout.flush()


def run_role(args: argparse.Namespace) -> None:
    expected = os.environ.get(NETNS_ENV, "")
    if not expected or expected != current_netns():
        print(
            f"refusing to run --role {args.role}: not inside the benchmark's network namespace",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.role != "simulator":
        print(f"unknown role {args.role!r}", file=sys.stderr)
        sys.exit(2)
    setup_django(args.database)
    asyncio.run(serve_simulator(args.devices, args.objects, args.drift, args.profile))


class Profiled:
    """cProfile of this process while inside the block, written to ``path`` (None: no profile)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.profile = cProfile.Profile() if path else None

    def __enter__(self) -> None:
        if self.profile is not None:
            self.profile.enable()

    def __exit__(self, *exc: object) -> None:
        if self.profile is not None:
            self.profile.disable()
            self.profile.dump_stats(self.path)


@dataclass
class Child:
    process: asyncio.subprocess.Process
    start_seconds: float = 0.0
    idle_cpu_per_second: float = 0.0  # the simulator's own background load (drift), CPU s per s
    lag: str = ""  # the simulator's event-loop stalls over its whole run


async def start_simulator(args: argparse.Namespace, database_file: str) -> Child:
    env = dict(os.environ)
    env[NETNS_ENV] = current_netns()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        "simulator",
        "--database",
        database_file,
        "--devices",
        str(args.devices),
        "--objects",
        str(args.objects),
        "--drift",
        str(args.drift),
        *(["--profile", args.profile] if args.profile else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(PROJECT_DIR),
    )
    child = Child(process)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=CHILD_READY_TIMEOUT)
    except TimeoutError:
        line = b""
    words = line.decode().split()
    if not words or words[0] != READY:
        await stop_child(child)
        raise RuntimeError(f"simulator subprocess did not start (exit code {process.returncode})")
    child.start_seconds = float(words[1])
    return child


async def stop_child(child: Child) -> int | None:
    process = child.process
    if process.returncode is None and process.stdin is not None:
        process.stdin.close()
        if process.stdout is not None:
            try:
                words = (
                    await asyncio.wait_for(process.stdout.readline(), timeout=CHILD_STOP_TIMEOUT)
                ).split()
            except TimeoutError:
                words = []
            if len(words) == 3 and words[0] == b"LAG":
                child.lag = f"worst {float(words[1]):.2f} s, {int(words[2])} stalls over 0.5 s"
    try:
        await asyncio.wait_for(process.wait(), timeout=CHILD_STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
    return process.returncode


# --- probes (observe only) --------------------------------------------------------------------


def failure_name(error: BaseException | None) -> str:
    reason = getattr(error, "apduAbortRejectReason", None)
    return f"{type(error).__name__}({reason})" if reason is not None else type(error).__name__


class InFlightTracker:
    """Counts confirmed requests outstanding per destination on the service's stack."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        now = time.perf_counter()
        self.since = now
        self.current: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)
        self.area: dict[str, float] = defaultdict(float)  # integral of in-flight over time
        self.changed: dict[str, float] = defaultdict(lambda: now)
        self.requests: dict[str, int] = defaultdict(int)
        self.latencies: list[float] = []
        self.failed = 0
        self.failures: dict[str, int] = defaultdict(int)

    def _move(self, dest: str, delta: int) -> None:
        now = time.perf_counter()
        self.area[dest] += self.current[dest] * (now - self.changed[dest])
        self.changed[dest] = now
        self.current[dest] += delta
        self.peak[dest] = max(self.peak[dest], self.current[dest])

    def install(self, app: Any) -> None:
        from bacpypes3.apdu import ConfirmedRequestPDU

        original = app.request

        def request(apdu: Any) -> Any:
            future = original(apdu)
            if isinstance(apdu, ConfirmedRequestPDU) and not future.done():
                dest = str(apdu.pduDestination)
                self.requests[dest] += 1
                self._move(dest, +1)
                sent = time.perf_counter()

                def done(f: Any) -> None:
                    self._move(dest, -1)
                    self.latencies.append(time.perf_counter() - sent)
                    if f.cancelled() or f.exception() is not None:
                        self.failed += 1
                        error = "cancelled" if f.cancelled() else failure_name(f.exception())
                        self.failures[f"{error} after {time.perf_counter() - sent:.1f} s"] += 1

                future.add_done_callback(done)
            return future

        app.request = request

    def latency_text(self) -> str:
        if not self.latencies:
            return "-"
        ordered = sorted(self.latencies)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"{p50 * 1000:.0f} / {p99 * 1000:.0f} / {ordered[-1] * 1000:.0f}"

    def summary(self) -> tuple[int, float, int]:
        """(peak over devices, mean over devices of the time-averaged in-flight, requests)."""
        now = time.perf_counter()
        span = max(now - self.since, 1e-9)
        dests = list(self.peak)
        if not dests:
            return 0, 0.0, 0
        averages = []
        for dest in dests:
            area = self.area[dest] + self.current[dest] * (now - self.changed[dest])
            averages.append(area / span)
        return max(self.peak.values()), sum(averages) / len(averages), sum(self.requests.values())


class LoopLag:
    """How late a 50 ms sleep wakes up on this event loop: the longest stalls of the loop."""

    PERIOD = 0.05

    def __init__(self) -> None:
        self.worst = 0.0
        self.over_half_second = 0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.worst = 0.0
        self.over_half_second = 0

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.PERIOD)
            late = time.perf_counter() - before - self.PERIOD
            self.worst = max(self.worst, late)
            if late > 0.5:
                self.over_half_second += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class TimedFunctions:
    """Wall time spent inside some sync database functions of remote_store."""

    def __init__(self, module: Any, names: list[str]) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        for name in names:
            setattr(module, name, self._wrap(name, getattr(module, name)))

    def _wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - begin
                self.calls[name] += 1

        return timed

    def snapshot(self) -> dict[str, tuple[int, float]]:
        return {name: (self.calls[name], self.seconds[name]) for name in self.seconds}


def diff_snapshot(after: dict[str, tuple[int, float]], before: dict[str, tuple[int, float]]) -> str:
    parts = []
    for name, (calls, seconds) in sorted(after.items()):
        calls0, seconds0 = before.get(name, (0, 0.0))
        if calls - calls0:
            parts.append(f"{name} {calls - calls0} calls {seconds - seconds0:.2f} s")
    return ", ".join(parts) or "none"


# --- measurements -----------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    wall: float = 0.0
    cpu_main: float = 0.0
    cpu_sim: float = 0.0
    in_flight_peak: int = 0
    in_flight_mean: float = 0.0
    requests: int = 0
    failed: int = 0
    latency: str = "-"
    loop_worst: float = 0.0
    loop_stalls: int = 0
    udp: dict[str, int] = field(default_factory=dict)
    db: str = ""
    notes: list[str] = field(default_factory=list)


class PhaseClock:
    def __init__(
        self, name: str, sim_pid: int, tracker: InFlightTracker, timed: TimedFunctions, lag: LoopLag
    ) -> None:
        self.phase = Phase(name)
        self.lag = lag
        self.sim_pid = sim_pid
        self.tracker = tracker
        self.timed = timed

    def __enter__(self) -> Phase:
        self.tracker.reset()
        self.lag.reset()
        self.db0 = self.timed.snapshot()
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.sim0 = cpu_seconds(self.sim_pid)
        self.udp0 = udp_counters()
        return self.phase

    def __exit__(self, *exc: object) -> None:
        phase = self.phase
        phase.wall = time.perf_counter() - self.wall0
        phase.cpu_main = time.process_time() - self.cpu0
        phase.cpu_sim = cpu_seconds(self.sim_pid) - self.sim0
        phase.in_flight_peak, phase.in_flight_mean, phase.requests = self.tracker.summary()
        phase.failed = self.tracker.failed
        if self.tracker.failures:
            top = sorted(self.tracker.failures.items(), key=lambda item: -item[1])[:4]
            phase.notes.append("failed requests: " + ", ".join(f"{n} x {what}" for what, n in top))
        phase.latency = self.tracker.latency_text()
        phase.loop_worst, phase.loop_stalls = self.lag.worst, self.lag.over_half_second
        phase.db = diff_snapshot(self.timed.snapshot(), self.db0)
        udp = udp_counters()
        phase.udp = {name: udp[name] - self.udp0.get(name, 0) for name in udp}


def count_points() -> int:
    from discovery.models import BACnetPoint

    return BACnetPoint.objects.count()


def points_by_type() -> dict[str, int]:
    from django.db.models import Count

    from discovery.models import BACnetPoint

    return dict(
        BACnetPoint.objects.values_list("object_type").annotate(n=Count("id")).order_by("object_type")
    )


def readings_between(start: Any, end: Any) -> tuple[int, int, int]:
    """(readings timestamped in [start, end), min and max readings per point among all points)."""
    from django.db.models import Count

    from discovery.models import BACnetPoint, BACnetReading

    rows = BACnetReading.objects.filter(timestamp__gte=start, timestamp__lt=end)
    total = rows.count()
    per_point = dict(rows.values_list("point_id").annotate(n=Count("id")).order_by())
    all_points = BACnetPoint.objects.count()
    counts = list(per_point.values()) + [0] * (all_points - len(per_point))
    return total, (min(counts) if counts else 0), (max(counts) if counts else 0)


@dataclass
class ScanOutcome:
    listen: float
    wall: float = 0.0
    devices_found: int = 0
    points_stored: int = 0
    points_when_listening_ended: int = 0
    read_errors: list[str] = field(default_factory=list)
    retry_notes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def points_per_second(self) -> float:
        return self.points_stored / self.wall if self.wall > 0 else 0.0


async def measure_scan(service: Any, args: argparse.Namespace, phase: Phase) -> ScanOutcome:
    from asgiref.sync import sync_to_async

    outcome = ScanOutcome(listen=args.listen)

    async def count_when_listening_ends() -> None:
        await asyncio.sleep(args.listen)
        outcome.points_when_listening_ended = await sync_to_async(count_points)()

    t0 = time.perf_counter()
    deadline = t0 + args.scan_limit
    counter = asyncio.create_task(count_when_listening_ends())
    try:
        scan = await asyncio.wait_for(
            service.discover_devices(force=True, timeout=args.listen, read_points=True),
            timeout=args.scan_limit,
        )
        outcome.devices_found = len(scan.devices)
        outcome.read_errors += [f"{d['device_id']}: {d['error']}" for d in scan.devices if d.get("error")]
        reads = scan.point_reads
        outcome.read_errors += [f"{r['device_id']}: {r['error']}" for r in reads if r["error"]]
        rpm = sum(1 for r in reads if r["used_rpm"])
        phase.notes.append(f"devices read with ReadPropertyMultiple: {rpm} of {len(reads)}")
        # --retries: read again (whole device, as the product offers) the devices that failed part-way
        failed = [r["device_id"] for r in reads if r["error"]]
        for attempt in range(1, args.retries + 1):
            if not failed:
                break
            retried_at = time.perf_counter()
            results = await asyncio.wait_for(
                asyncio.gather(*(service.read_device_points(device_id) for device_id in failed)),
                timeout=max(0.1, deadline - time.perf_counter()),
            )
            took = time.perf_counter() - retried_at
            outcome.retry_notes.append(
                f"retry {attempt}: {len(failed)} devices read again in {took:.2f} s, "
                f"{sum(1 for r in results if r.error)} failed again"
            )
            failed = [r.device_id for r in results if r.error]
        outcome.wall = time.perf_counter() - t0
    except TimeoutError:
        outcome.wall = time.perf_counter() - t0
        outcome.error = f"scan not finished within --scan-limit {args.scan_limit:g} s"
    await counter
    outcome.points_stored = await sync_to_async(count_points)()
    return outcome


@dataclass
class PollOutcome:
    mode: str
    window: float = 0.0
    readings: int = 0
    steady_rate: float = 0.0
    min_per_point: int = 0
    max_per_point: int = 0
    subscribe_wall: float | None = None
    cov_points: int = 0
    start_wall: float = 0.0
    stop_wall: float = 0.0
    offline: int = 0
    error: str = ""
    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.readings / self.window if self.window > 0 else 0.0


async def sample_for(poller: Any, seconds: float, begin: float, samples: list[tuple[float, int]]) -> None:
    """Record (time since begin, readings stored so far) every SAMPLE_INTERVAL for ``seconds``."""
    end = time.perf_counter() + seconds
    for _ in range(int(seconds / SAMPLE_INTERVAL) + 2):
        now = time.perf_counter()
        if now >= end:
            break
        await asyncio.sleep(min(SAMPLE_INTERVAL, end - now))
        samples.append((time.perf_counter() - begin, poller.writer.stored))


async def measure_polling(
    service: Any, args: argparse.Namespace, use_cov: bool, total_points: int
) -> PollOutcome:
    from asgiref.sync import sync_to_async
    from django.utils import timezone

    from discovery.services.poller import Poller

    outcome = PollOutcome("COV" if use_cov else "polling")
    poller = Poller(service.remote, use_cov=use_cov)
    begin = time.perf_counter()
    await poller.start()
    outcome.start_wall = time.perf_counter() - begin
    try:
        if use_cov:
            # subscribing: until every point is subscribed, or --cov-limit
            limit_end = begin + args.cov_limit
            while time.perf_counter() < limit_end:
                outcome.cov_points = poller.status()["cov_points"]
                if outcome.cov_points >= total_points:
                    break
                await asyncio.sleep(0.1)
            outcome.cov_points = poller.status()["cov_points"]
            if outcome.cov_points >= total_points:
                outcome.subscribe_wall = time.perf_counter() - begin
            else:
                outcome.error = (
                    f"only {outcome.cov_points} of {total_points} points subscribed "
                    f"after --cov-limit {args.cov_limit:g} s"
                )
        window_begin = timezone.now()
        window_t0 = time.perf_counter()
        await sample_for(poller, args.poll_seconds, begin, outcome.samples)
        window_end = timezone.now()
        outcome.window = time.perf_counter() - window_t0
        status = poller.status()
        outcome.offline = len(status["offline"])
    finally:
        t_stop = time.perf_counter()
        try:
            await asyncio.wait_for(poller.stop(), timeout=STOP_LIMIT)
        except TimeoutError:
            outcome.error += f" poller.stop() took longer than {STOP_LIMIT:g} s"
        outcome.stop_wall = time.perf_counter() - t_stop
    outcome.readings, outcome.min_per_point, outcome.max_per_point = await sync_to_async(readings_between)(
        window_begin, window_end
    )
    # steady state: the second half of the samples (writer.stored, flushed every 0.5 s)
    half = (
        [s for s in outcome.samples if s[0] >= outcome.samples[-1][0] - args.poll_seconds / 2]
        if outcome.samples
        else []
    )
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        outcome.steady_rate = (half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0])
    return outcome


# --- report -----------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(
    args: argparse.Namespace,
    scan: ScanOutcome | None,
    polling: PollOutcome | None,
    cov: PollOutcome | None,
    phases: list[Phase],
    child: Child | None,
    by_type: dict[str, int],
    exit_code: Any,
    wall: float,
) -> None:
    import bacpypes3
    from django.conf import settings

    total = args.devices * args.objects
    print()
    print(
        f"# python {platform.python_version()} | bacpypes3 {bacpypes3.__version__} | "
        f"cpu count {os.cpu_count()} | command: {shlex.join(sys.orig_argv)}"
    )
    print(
        f"# {args.devices} simulated devices x {args.objects} objects at {ip(simulator_host(0))}.."
        f"{ip(simulator_host(args.devices - 1))} (drift {args.drift:g} s, one subprocess); service "
        f"(device 8888) at {ip(SERVICE_HOST)}; BACNET_MAX_IN_FLIGHT={settings.BACNET_MAX_IN_FLIGHT}, "
        f"BACNET_POLL_NORMAL={settings.BACNET_POLL_NORMAL:g} s, "
        f"BACNET_APDU_TIMEOUT_MS={settings.BACNET_APDU_TIMEOUT_MS}, "
        f"BACNET_APDU_RETRIES={settings.BACNET_APDU_RETRIES}, "
        f"BACNET_POINT_READ_DEVICES={settings.BACNET_POINT_READ_DEVICES}, "
        f"retries of failed devices: {args.retries}"
    )
    scan_phase = next((p for p in phases if p.name == "scan"), None)
    in_flight = str(settings.BACNET_MAX_IN_FLIGHT)
    if scan_phase is not None:
        in_flight += f" (scan peak {scan_phase.in_flight_peak}, mean {scan_phase.in_flight_mean:.2f})"
    print()
    print(
        "| devices | objects/device | requests in flight per device (limit; measured) | discovery listen (s) "
        "| scan wall (s) | points stored | points/s | readings/s polling | readings/s COV |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.devices} | {args.objects} | {in_flight} | {args.listen:g} "
        f"| {fmt(scan.wall if scan else None)} | {scan.points_stored if scan else '-'} / {total} "
        f"| {fmt(scan.points_per_second if scan else None, ',.0f')} "
        f"| {fmt(polling.rate if polling else None, ',.0f')} | {fmt(cov.rate if cov else None, ',.0f')} |"
    )
    print()
    print(
        "| phase | wall (s) | CPU main (s) | CPU simulator (s) | in flight/device peak | mean | requests "
        "| failed | latency ms p50 / p99 / max | main loop worst stall (s) | UDP datagrams in "
        "| UDP receive-buffer drops | database time |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for p in phases:
        print(
            f"| {p.name} | {p.wall:.2f} | {p.cpu_main:.2f} | {p.cpu_sim:.2f} | {p.in_flight_peak} "
            f"| {p.in_flight_mean:.2f} | {p.requests} | {p.failed} | {p.latency} | {p.loop_worst:.2f} "
            f"| {p.udp.get('InDatagrams', 0)} | {p.udp.get('RcvbufErrors', 0)} | {p.db} |"
        )
    print()
    print("Notes:")
    if child is not None:
        print(
            f"- simulator start-up (building and binding {total} objects): {child.start_seconds:.1f} s "
            f"(not in the scan time); its background CPU with no requests (drift every {args.drift:g} s): "
            f"{child.idle_cpu_per_second:.2f} CPU-s per s, included in 'CPU simulator' below"
        )
    if scan is not None:
        print(
            f"- scan: {scan.devices_found} devices found in the {args.listen:g} s of listening; "
            f"{scan.points_when_listening_ended} points were stored when the listening ended, all "
            f"{scan.points_stored} after {scan.wall:.2f} s"
        )
        if scan.error:
            print(f"- scan: {scan.error}")
        if scan.read_errors:
            print(
                f"- scan: {len(scan.read_errors)} devices whose reading ended with an error (first pass and "
                f"retries together), first: {scan.read_errors[0]}"
            )
        for note in scan.retry_notes:
            print(f"- scan: {note}")
        if scan.points_stored == total:
            print(f"- BACnetPoint rows == devices x objects == {total}: OK")
        else:
            print(f"- BACnetPoint rows {scan.points_stored} != devices x objects {total}: MISMATCH")
    if by_type:
        print(f"- points by type: {', '.join(f'{k} {v}' for k, v in by_type.items())}")
    for outcome in (polling, cov):
        if outcome is None:
            continue
        offered = (
            f"offered load {total / args.poll_interval:,.0f} readings/s (every point every "
            f"{args.poll_interval:g} s)"
            if outcome.mode == "polling"
            else "COV readings come only from points that change (the simulator drifts inputs)"
        )
        print(
            f"- {outcome.mode}: {outcome.readings} readings timestamped in the {outcome.window:.1f} s window "
            f"= {outcome.rate:,.0f}/s (steady, 2nd half: {outcome.steady_rate:,.0f}/s); readings per point "
            f"min {outcome.min_per_point} max {outcome.max_per_point}; {offered}; poller.start "
            f"{outcome.start_wall:.2f} s, poller.stop {outcome.stop_wall:.2f} s; "
            f"devices offline {outcome.offline}"
        )
        if outcome.subscribe_wall is not None:
            print(
                f"- COV: subscribing all {outcome.cov_points} points took {outcome.subscribe_wall:.2f} s "
                f"({outcome.cov_points / outcome.subscribe_wall:,.0f} subscriptions/s)"
            )
        if outcome.error:
            print(f"- {outcome.mode}: {outcome.error.strip()}")
        if outcome.samples:
            trail = " ".join(f"{t:.0f}s:{n}" for t, n in outcome.samples)
            print(f"- {outcome.mode}: readings stored (writer.stored) over time since start: {trail}")
    for p in phases:
        for note in p.notes:
            print(f"- {p.name}: {note}")
    print(
        "- 'in flight' counts confirmed requests outstanding per device on the service stack; "
        "CPU main includes the database thread; both processes share the machine's CPUs."
    )
    print(
        "- latency: from handing a confirmed request to the stack until its answer (or failure), "
        "retries included; 'failed' = requests that ended in an error/abort/timeout/cancel; main loop "
        "worst stall: the longest a 50 ms sleep overslept in the service's event loop."
    )
    if child is not None and child.lag:
        print(f"- simulator event loop over the whole run (after start-up): {child.lag}")
    print(f"- total wall time {wall:.1f} s; simulator exit code {exit_code}")


# --- main -------------------------------------------------------------------------------------


async def run_benchmark(args: argparse.Namespace, database_file: str) -> None:
    from asgiref.sync import sync_to_async
    from django.conf import settings

    from discovery.services import remote_store
    from discovery.services.unified_bacnet_service import UnifiedBACnetService

    settings.BACNET_MAX_IN_FLIGHT = args.in_flight
    if args.point_read_devices is not None:
        settings.BACNET_POINT_READ_DEVICES = args.point_read_devices
    settings.BACNET_POLL_NORMAL = args.poll_interval

    wall_start = time.perf_counter()
    child: Child | None = None
    service: UnifiedBACnetService | None = None
    scan = polling = cov = None
    phases: list[Phase] = []
    by_type: dict[str, int] = {}
    exit_code: Any = None
    timed = TimedFunctions(remote_store, ["store_points", "store_readings", "finish_scan", "polling_plan"])
    tracker = InFlightTracker()
    lag = LoopLag()
    lag.start()
    try:
        child = await start_simulator(args, database_file)
        print(f"# simulator ready in {child.start_seconds:.1f} s", flush=True)
        service = UnifiedBACnetService(address=address(SERVICE_HOST), watch_interval=5.0)
        await service.start_service()
        tracker.install(service.app)
        await asyncio.sleep(0.2)
        idle_begin, idle_cpu = time.perf_counter(), cpu_seconds(child.process.pid)
        await asyncio.sleep(IDLE_MEASURE)
        child.idle_cpu_per_second = (cpu_seconds(child.process.pid) - idle_cpu) / (
            time.perf_counter() - idle_begin
        )

        clock = PhaseClock("scan", child.process.pid, tracker, timed, lag)
        with clock as phase, Profiled(args.profile and str(Path(args.profile) / "service-scan.prof")):
            scan = await measure_scan(service, args, phase)
        phases.append(clock.phase)
        print(f"# scan: {scan.wall:.2f} s, {scan.points_stored} points", flush=True)
        by_type = await sync_to_async(points_by_type)()
        if scan.error or scan.points_stored == 0:
            return
        if not args.skip_polling:
            clock = PhaseClock("polling", child.process.pid, tracker, timed, lag)
            with clock:
                polling = await measure_polling(service, args, False, scan.points_stored)
            phases.append(clock.phase)
            print(f"# polling: {polling.rate:,.0f} readings/s", flush=True)
        if not args.skip_cov:
            clock = PhaseClock("COV", child.process.pid, tracker, timed, lag)
            with clock:
                cov = await measure_polling(service, args, True, scan.points_stored)
            phases.append(clock.phase)
            print(f"# COV: {cov.rate:,.0f} readings/s", flush=True)
    finally:
        await lag.stop()
        if service is not None:
            await service.stop_service()
        if child is not None:
            exit_code = await stop_child(child)
        print_report(
            args, scan, polling, cov, phases, child, by_type, exit_code, time.perf_counter() - wall_start
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50, help=f"simulated devices (1..{MAX_DEVICES})")
    parser.add_argument("--objects", type=int, default=200, help="objects per simulated device")
    parser.add_argument("--in-flight", type=int, default=4, help="BACNET_MAX_IN_FLIGHT (requests per device)")
    parser.add_argument("--listen", type=float, default=2.0, help="discovery Who-Is listen time, seconds")
    parser.add_argument(
        "--point-read-devices",
        type=int,
        help="BACNET_POINT_READ_DEVICES: devices read whole at once (default: the setting)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="read devices whose point read failed again, up to this many rounds",
    )
    parser.add_argument("--poll-interval", type=float, default=1.0, help="BACNET_POLL_NORMAL, seconds")
    parser.add_argument(
        "--poll-seconds", type=float, default=10.0, help="measured window of polling and of COV"
    )
    parser.add_argument(
        "--cov-limit", type=float, default=120.0, help="max seconds to wait for all COV subscriptions"
    )
    parser.add_argument("--scan-limit", type=float, default=600.0, help="max seconds for the scan")
    parser.add_argument("--drift", type=float, default=1.0, help="simulator drift interval, seconds (0: off)")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="write cProfile data of the service during the scan (service-scan.prof) and of the "
        "simulator after its start-up (simulator.prof) to DIR; the profiler slows both down",
    )
    parser.add_argument("--skip-polling", action="store_true")
    parser.add_argument("--skip-cov", action="store_true")
    parser.add_argument("--role", choices=("simulator",), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.devices <= MAX_DEVICES:
        parser.error(f"--devices must be 1..{MAX_DEVICES}")
    if not 1 <= args.objects <= MAX_OBJECTS:
        parser.error(f"--objects must be 1..{MAX_OBJECTS}")
    if not 1 <= args.in_flight <= 64:
        parser.error("--in-flight must be 1..64")
    if args.point_read_devices is not None and not 1 <= args.point_read_devices <= MAX_DEVICES:
        parser.error(f"--point-read-devices must be 1..{MAX_DEVICES}")
    if not 0 <= args.retries <= 10:
        parser.error("--retries must be 0..10")
    for name in ("listen", "poll_interval", "poll_seconds", "cov_limit", "scan_limit"):
        value = getattr(args, name)
        if not 0 < value <= 3600:
            parser.error(f"--{name.replace('_', '-')} must be in (0, 3600]")
    if not 0 <= args.drift <= 3600:
        parser.error("--drift must be in [0, 3600]")
    return args


def main() -> None:
    args = parse_args()
    if args.role:
        run_role(args)
        return

    problem = enter_private_network()
    if problem:
        print(problem)
        sys.exit(1)
    add_simulator_addresses(args.devices)
    problem = check_private_network()
    if problem:
        print(f"refusing to run: {problem}")
        sys.exit(1)
    assert PREFIX == 24

    database_file = str(Path(tempfile.mkdtemp(prefix="bench-commissioning-")) / "bench.sqlite3")
    setup_django(database_file)
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    connections.close_all()

    try:
        asyncio.run(run_benchmark(args, database_file))
    finally:
        shutil.rmtree(Path(database_file).parent, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
