"""Run the web server (HTTP + websockets) and the BACnet service in one process and loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from discovery.services.bacnet.network import BindError
from discovery.services.bridge import bridge_enabled
from discovery.services.unified_bacnet_service import get_unified_bacnet_service

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """Uvicorn's server, but a signal only stops it: we release the BACnet port ourselves."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


class Command(BaseCommand):
    help = "Serve the web interface and run the BACnet service (device and client) together."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
        parser.add_argument(
            "--no-bacnet",
            action="store_true",
            help="Web only, as when USE_UNIFIED_BACNET_SERVICE is false",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            asyncio.run(self._serve(options["host"], options["port"], options["no_bacnet"]))
        except BindError as exc:
            raise CommandError(str(exc)) from None

    async def _serve(self, host: str, port: int, no_bacnet: bool) -> None:
        from django_bms.asgi import application

        service = get_unified_bacnet_service()
        if settings.USE_UNIFIED_BACNET_SERVICE and not no_bacnet:
            await service.start_service(
                control=True, polling=settings.BACNET_POLLING, bridge=bridge_enabled()
            )
        else:
            logger.info("BACnet service disabled (USE_UNIFIED_BACNET_SERVICE=false): web only")
        config = uvicorn.Config(application, host=host, port=port, lifespan="off", log_config=None)
        server = _Server(config)
        logger.info("Web interface at http://%s:%s/", host, port)
        try:
            await server.serve()
        finally:
            await service.stop_service()
            logger.info("Stopped")
