"""Read one property of an object of a remote device."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from discovery.management.service_client import run_operation


class Command(BaseCommand):
    help = "Read PROPERTY of OBJECT (e.g. analog-input,1) of DEVICE_ID."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("device_id", type=int)
        parser.add_argument("object", help="object identifier, e.g. analog-input,1")
        parser.add_argument("property", help="property, e.g. presentValue")
        parser.add_argument("--index", type=int, help="array index")

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_operation(
            "read",
            {
                "device_id": options["device_id"],
                "object": options["object"],
                "property": options["property"],
                "index": options["index"],
            },
        )
        self.stdout.write(str(result["value"]))
