"""Keep remote points fresh (COV or polling), or show what the running service's poller does."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from discovery.services import control
from discovery.services.bacnet.network import BindError, resolve_bind_address
from discovery.services.operations import OperationError


class Command(BaseCommand):
    help = (
        "Poll every stored point (COV where devices offer it) until interrupted. When `serve` "
        "runs, it polls already: show its polling state instead."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--duration", type=float, help="stop after this many seconds")
        parser.add_argument("--report-every", type=float, default=10.0, help="seconds between status lines")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            interface = resolve_bind_address(settings.BACNET_ADDRESS)
            path = control.socket_path(str(interface.ip), settings.BACNET_DEFAULT_PORT)
            status = control.call(path, "status", {}, 10.0)
        except (BindError, OperationError) as exc:
            raise CommandError(str(exc)) from None
        if status is not control.NOT_RUNNING:
            self.stdout.write("The running service polls: " + self._describe(status.get("polling")))
            return
        try:
            asyncio.run(self._poll(options["duration"], options["report_every"]))
        except BindError as exc:
            raise CommandError(str(exc)) from None

    def _describe(self, polling: dict[str, Any] | None) -> str:
        if not polling:
            return "polling is off (BACNET_POLLING=false)."
        return (
            f"{polling['devices']} device(s), {len(polling['online'])} online, "
            f"{len(polling['offline'])} offline, {polling['cov_points']} point(s) by COV, "
            f"{polling['readings_stored']} reading(s) stored."
        )

    async def _poll(self, duration: float | None, report_every: float) -> None:
        from discovery.services.unified_bacnet_service import UnifiedBACnetService

        service = UnifiedBACnetService()
        await service.start_service(polling=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            deadline = loop.time() + duration if duration else None
            while not stop.is_set():
                timeout = report_every if deadline is None else min(report_every, deadline - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, timeout))
                self.stdout.write(self._describe(service.poller.status() if service.poller else None))
                if deadline is not None and loop.time() >= deadline:
                    break
        finally:
            await service.stop_service()
