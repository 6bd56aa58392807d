"""Read every object of a device and store them as points."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from discovery.management.service_client import progress, run_operation, table
from discovery.models import BACnetPoint


class Command(BaseCommand):
    help = "Read the object list and every object of DEVICE_ID; store and list its points."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("device_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        device_id = options["device_id"]
        with progress(self.stderr._out, f"Reading device {device_id}", 5):
            result = run_operation("discover_points", {"device_id": device_id})
        points = BACnetPoint.objects.filter(device__device_id=device_id).order_by("object_type", "instance")
        rows = [
            [p.object_type, p.instance, p.object_name, p.present_value_text, p.units, p.description]
            for p in points
        ]
        self.stdout.write(table(rows, ["type", "instance", "name", "value", "units", "description"]))
        method = {True: "ReadPropertyMultiple", False: "ReadProperty"}.get(result["used_rpm"], "?")
        self.stdout.write(f"{result['points']} point(s) stored from device {device_id} ({method}).")
        if result["error"]:
            self.stderr.write(f"Incomplete: {result['error']}")
