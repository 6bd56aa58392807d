"""Find the BACnet devices on the network (Who-Is) and store them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from discovery.management.service_client import progress, run_operation, table


class Command(BaseCommand):
    help = "Send a Who-Is (global, ranged or directed), read each device found, and list them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--low", type=int, help="lowest device instance (with --high)")
        parser.add_argument("--high", type=int, help="highest device instance (with --low)")
        parser.add_argument("--address", help="send a directed Who-Is to this address")
        parser.add_argument(
            "--timeout", type=float, default=settings.BACNET_DISCOVERY_TIMEOUT, help="seconds to listen"
        )
        parser.add_argument("--force", action="store_true", help="scan again even if a recent scan is cached")

    def handle(self, *args: Any, **options: Any) -> None:
        if (options["low"] is None) != (options["high"] is None):
            raise CommandError("Give --low and --high together.")
        request = {
            "low_limit": options["low"],
            "high_limit": options["high"],
            "address": options["address"],
            "timeout": options["timeout"],
            "force": options["force"],
        }
        with progress(self.stderr._out, "Scanning", options["timeout"] + 1):
            result = run_operation("discover", request)
        devices = result["devices"]
        rows = [
            [
                d["device_id"],
                d["address"],
                d.get("objectName", ""),
                d.get("vendorName", "") or d["vendor_id"],
                d.get("modelName", ""),
                d["max_apdu"],
                d["segmentation"],
                d.get("error", ""),
            ]
            for d in devices
        ]
        headers = ["device", "address", "name", "vendor", "model", "max APDU", "segmentation", "note"]
        self.stdout.write(table(rows, headers))
        cached = " (cached; use --force to scan again)" if result["cached"] else ""
        self.stdout.write(f"{len(devices)} device(s) found{cached}.")
