"""The web interface. Names follow the product's plan (start_discovery, device_detail, ...)."""

from discovery.views.dashboard import dashboard, service_status
from discovery.views.devices import device_detail, discover_points, point_history, write_point
from discovery.views.scans import start_discovery
from discovery.views.virtual_devices import (
    create_virtual_device,
    delete_virtual_device,
    virtual_device_detail,
    virtual_device_list,
    write_virtual_object,
)

__all__ = [
    "create_virtual_device",
    "dashboard",
    "delete_virtual_device",
    "device_detail",
    "discover_points",
    "point_history",
    "service_status",
    "start_discovery",
    "virtual_device_detail",
    "virtual_device_list",
    "write_point",
    "write_virtual_object",
]
