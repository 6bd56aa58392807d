"""A local control socket so management commands can ask the running service to do work.

``serve`` listens on a Unix socket (owner-only permissions) next to the project; a command
sends one JSON request line and reads one JSON answer line. When nothing listens there,
``call`` returns ``NOT_RUNNING`` and the command runs a short-lived stack of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from django.conf import settings

from discovery.services.operations import OperationError, execute

logger = logging.getLogger(__name__)

NOT_RUNNING = object()
MAX_LINE = 1 << 20


def socket_path(ip: str, port: int) -> Path:
    if settings.BACNET_CONTROL_SOCKET:
        return Path(settings.BACNET_CONTROL_SOCKET)
    return Path(settings.BASE_DIR) / "run" / f"bacnet-{ip}-{port}.sock"


class ControlServer:
    def __init__(self, service: Any, path: Path) -> None:
        self.service = service
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: the port check already proved no other service runs here
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o600)
        logger.info("Control socket at %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line)
                op, args = request["op"], dict(request.get("args") or {})
            except (ValueError, KeyError, TypeError):
                answer: dict[str, Any] = {"ok": False, "error": "malformed request"}
            else:
                try:
                    answer = {"ok": True, "result": await execute(self.service, op, args)}
                except OperationError as exc:
                    answer = {"ok": False, "error": str(exc), "details": exc.details}
                except Exception as exc:
                    logger.error("Control request %s failed", op, exc_info=True)
                    answer = {"ok": False, "error": f"internal error: {exc}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()


def call(path: Path, op: str, args: dict[str, Any], timeout: float) -> Any:
    """Ask the service at ``path``; NOT_RUNNING if none listens. Raises OperationError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return NOT_RUNNING
        sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise OperationError(f"the running service did not answer within {timeout:g} s") from None
    answer = json.loads(data or b'{"ok": false, "error": "no answer"}')
    if not answer.get("ok"):
        raise OperationError(answer.get("error", "failed"), answer.get("details"))
    return answer["result"]
