from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    """The BACnet app. `ready()` starts nothing: the BACnet service is owned by `serve`."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "discovery"
    verbose_name = "BACnet discovery and virtual devices"
