"""Write (or relinquish) a value of an object of a remote device."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from discovery.management.service_client import run_operation


def parse_value(text: str) -> Any:
    """A number when it is one (the stack converts it to the property's type), else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


class Command(BaseCommand):
    help = "Write VALUE to OBJECT's presentValue on DEVICE_ID at a priority, or relinquish it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("device_id", type=int)
        parser.add_argument("object", help="object identifier, e.g. analog-output,1")
        parser.add_argument("value", nargs="?", help="value (number, or active/inactive)")
        parser.add_argument(
            "--priority",
            type=int,
            default=settings.BACNET_DEFAULT_WRITE_PRIORITY,
            help=f"1-16 (default {settings.BACNET_DEFAULT_WRITE_PRIORITY})",
        )
        parser.add_argument("--relinquish", action="store_true", help="release the priority slot")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["priority"] <= 16:
            raise CommandError("--priority must be between 1 and 16.")
        if options["relinquish"] == (options["value"] is not None):
            raise CommandError("Give a VALUE or --relinquish (not both).")
        value = None if options["relinquish"] else parse_value(options["value"])
        run_operation(
            "write",
            {
                "device_id": options["device_id"],
                "object": options["object"],
                "value": value,
                "priority": options["priority"],
            },
        )
        action = "Relinquished" if value is None else f"Wrote {value} to"
        target = f"{options['object']} of device {options['device_id']}"
        self.stdout.write(f"{action} {target} at priority {options['priority']}.")
