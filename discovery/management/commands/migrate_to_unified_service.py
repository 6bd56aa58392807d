"""Move virtual devices recorded on the legacy port (47809) to the unified service's port."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from discovery.models import VirtualBACnetDevice
from discovery.services import virtual_store


class Command(BaseCommand):
    help = (
        "Move virtual devices from the legacy port to BACNET_DEFAULT_PORT so the unified "
        "service serves them. Safe to run more than once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="show what would change")
        parser.add_argument(
            "--legacy-port",
            type=int,
            default=settings.BACNET_LEGACY_VIRTUAL_PORT,
            help=f"port the legacy devices ran on (default {settings.BACNET_LEGACY_VIRTUAL_PORT})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target = settings.BACNET_DEFAULT_PORT
        legacy = VirtualBACnetDevice.objects.filter(port=options["legacy_port"])
        if options["legacy_port"] == target or not legacy.exists():
            self.stdout.write("Nothing to migrate: every virtual device is on the unified port.")
            return
        for device in legacy:
            self.stdout.write(
                f"{'Would move' if options['dry_run'] else 'Moving'} {device} "
                f"from port {device.port} to {target}"
            )
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {legacy.count()} device(s) would be migrated.")
            return
        with transaction.atomic():
            count = legacy.update(port=target)
            virtual_store.bump_database_revision()
        self.stdout.write(self.style.SUCCESS(f"Migrated {count} device(s) to port {target}."))
