"""Create, list and delete virtual devices from the shell.

Works whether or not ``serve`` is running: the database is the source of truth and a
running service picks up the change within ``BACNET_DB_WATCH_INTERVAL`` seconds.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from discovery.models import VirtualBACnetDevice
from discovery.services import virtual_store
from discovery.services.object_templates import BACNET_OBJECT_TEMPLATES


class Command(BaseCommand):
    help = "Manage virtual BACnet devices (their objects are served by the local device)."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a virtual device from a template")
        create.add_argument("--template", required=True, choices=sorted(BACNET_OBJECT_TEMPLATES))
        create.add_argument("--device-id", required=True, type=int)
        create.add_argument("--name", required=True)
        create.add_argument("--description", default="")
        sub.add_parser("list", help="list virtual devices and their objects")
        delete = sub.add_parser("delete", help="delete a virtual device and its objects")
        delete.add_argument("device_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            try:
                device = virtual_store.create_virtual_device(
                    template=options["template"],
                    device_id=options["device_id"],
                    name=options["name"],
                    description=options["description"],
                )
            except virtual_store.VirtualDeviceError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Created virtual device {device.device_id} ({device.name}):")
            self._write_objects(device)
        elif action == "list":
            devices = VirtualBACnetDevice.objects.prefetch_related("bacnet_objects")
            if not devices:
                self.stdout.write("No virtual devices.")
            for device in devices:
                self.stdout.write(f"{device.device_id}  {device.name}  [{device.template}]")
                self._write_objects(device)
        elif action == "delete":
            if not virtual_store.delete_virtual_device(options["device_id"]):
                raise CommandError(f"No virtual device with id {options['device_id']}.")
            self.stdout.write(f"Deleted virtual device {options['device_id']}.")

    def _write_objects(self, device: VirtualBACnetDevice) -> None:
        for obj in device.bacnet_objects.all():
            self.stdout.write(
                f"    {obj.object_type},{obj.instance}  {obj.object_name}  = {obj.present_value_text}"
                f"{' ' + obj.units if obj.units else ''}"
            )
