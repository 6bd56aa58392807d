"""How the client commands reach a BACnet stack: the running service's, or a short-lived own one."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from django.conf import settings
from django.core.management.base import CommandError

from discovery.services import control
from discovery.services.bacnet.network import BindError, resolve_bind_address
from discovery.services.operations import OperationError, execute


def run_operation(op: str, args: dict[str, Any], *, timeout: float = 120.0) -> Any:
    """Run ``op`` on the running service if there is one, else on a temporary stack."""
    try:
        interface = resolve_bind_address(settings.BACNET_ADDRESS)
        path = control.socket_path(str(interface.ip), settings.BACNET_DEFAULT_PORT)
        result = control.call(path, op, args, timeout)
        if result is control.NOT_RUNNING:
            result = asyncio.run(_run_locally(op, args))
    except (OperationError, BindError) as exc:
        raise CommandError(str(exc)) from None
    return result


async def _run_locally(op: str, args: dict[str, Any]) -> Any:
    from discovery.services.unified_bacnet_service import UnifiedBACnetService

    service = UnifiedBACnetService(watch_interval=3600)
    await service.start_service()
    try:
        return await execute(service, op, args)
    finally:
        await service.stop_service()


@contextlib.contextmanager
def progress(stream: TextIO, label: str, seconds: float) -> Iterator[None]:
    """A one-line progress bar on ``stream`` (stderr) for an operation expected to take ``seconds``."""
    if not stream.isatty():
        yield
        return
    done = threading.Event()

    def draw() -> None:
        started = time.monotonic()
        while not done.wait(0.2):
            elapsed = time.monotonic() - started
            filled = min(20, int(20 * elapsed / max(seconds, 0.1)))
            stream.write(f"\r{label} [{'#' * filled}{'.' * (20 - filled)}] {elapsed:4.1f}s")
            stream.flush()
        stream.write("\r" + " " * (len(label) + 32) + "\r")
        stream.flush()

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """Rows as a plain-text table with aligned columns."""
    cells = [headers] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
