"""Find the BACnet devices on the network (Who-Is) and store them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from discovery.management.service_client import progress, run_operation, table

POINTS_TIMEOUT = 900.0  # seconds a commissioning scan of a large site may take


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
        parser.add_argument(
            "--points",
            action="store_true",
            help="also read and store every point of every device found (a commissioning scan: "
            "each device is read as soon as it answers)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if (options["low"] is None) != (options["high"] is None):
            raise CommandError("Give --low and --high together.")
        request = {
            "low_limit": options["low"],
            "high_limit": options["high"],
            "address": options["address"],
            "timeout": options["timeout"],
            "force": options["force"],
            "read_points": options["points"],
        }
        label = "Scanning and reading points" if options["points"] else "Scanning"
        with progress(self.stderr._out, label, options["timeout"] + 1):
            result = run_operation("discover", request, timeout=POINTS_TIMEOUT if options["points"] else 120)
        devices = result["devices"]
        reads = {read["device_id"]: read for read in result["point_reads"]}
        rows = [
            [
                d["device_id"],
                d["address"],
                d.get("objectName", ""),
                d.get("vendorName", "") or d["vendor_id"],
                d.get("modelName", ""),
                d["max_apdu"],
                d["segmentation"],
                *([reads[d["device_id"]]["points"] if d["device_id"] in reads else "-"] if reads else []),
                d.get("error", "") or reads.get(d["device_id"], {}).get("error", ""),
            ]
            for d in devices
        ]
        headers = ["device", "address", "name", "vendor", "model", "max APDU", "segmentation"]
        headers += ["points", "note"] if reads else ["note"]
        self.stdout.write(table(rows, headers))
        cached = " (cached; use --force to scan again)" if result["cached"] else ""
        self.stdout.write(f"{len(devices)} device(s) found{cached}.")
        if options["points"]:
            stored = sum(read["points"] for read in reads.values())
            self.stdout.write(f"{stored} point(s) stored from {len(reads)} device(s).")
