"""The local device object (instance 8888 by default) and the stack that serves it."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bacpypes3.apdu import (
    ConfirmedServiceChoice,
    UnconfirmedServiceChoice,
    confirmed_request_types,
    unconfirmed_request_types,
)
from bacpypes3.basetypes import (
    DeviceStatus,
    ObjectTypesSupported,
    Segmentation,
    ServicesSupported,
)
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject

from discovery.services.bacnet.application import BMSApplication
from discovery.services.bacnet.network import BindError, enlarge_receive_buffer, ensure_port_free
from discovery.services.bacnet.objects import ServedObjectMixin

logger = logging.getLogger(__name__)

BIND_TIMEOUT = 5.0
DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024

try:
    PRODUCT_VERSION = version("django-bms")
except PackageNotFoundError:  # running from a checkout that was not installed
    PRODUCT_VERSION = "0.0.0"


class BMSDeviceObject(ServedObjectMixin, DeviceObject):
    """bacpypes3's device object with the supported services and object types computed right."""

    @property
    def protocolServicesSupported(self) -> ServicesSupported:  # type: ignore[override]
        return services_supported(self._app) if self._app else ServicesSupported([])

    @protocolServicesSupported.setter
    def protocolServicesSupported(self, value: Any) -> None:
        """Computed."""

    @property
    def protocolObjectTypesSupported(self) -> ObjectTypesSupported:  # type: ignore[override]
        supported = ObjectTypesSupported([])
        hosted = {obj.objectIdentifier[0] for obj in self._app.iter_objects()} if self._app else set()
        for object_type in hosted:
            supported[getattr(ObjectTypesSupported, object_type.attr)] = 1
        return supported

    @protocolObjectTypesSupported.setter
    def protocolObjectTypesSupported(self, value: Any) -> None:
        """Computed."""


class ServedNetworkPortObject(ServedObjectMixin, NetworkPortObject):
    """The network port object, read-only to clients and with a correct propertyList."""


def services_supported(app: Any) -> ServicesSupported:
    """The services ``app`` executes, each looked up in its own (confirmed/unconfirmed) table."""
    supported = ServicesSupported([])
    tables = (
        (confirmed_request_types, ConfirmedServiceChoice),
        (unconfirmed_request_types, UnconfirmedServiceChoice),
    )
    for request_types, choice_enum in tables:
        for choice, request_class in request_types.items():
            if getattr(app, "do_" + request_class.__name__, None):
                supported[getattr(ServicesSupported, choice_enum(choice).attr)] = 1
    return supported


class LocalDeviceApplication(BMSApplication):
    # Served services are exactly those with a handler. ReadRange applies to no object this
    # device hosts, so it is not offered (an unrecognized-service reject instead of an error).
    do_ReadRangeRequest = None  # type: ignore[assignment]


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: int
    name: str
    vendor_id: int
    vendor_name: str
    database_revision: int = 1
    apdu_timeout_ms: int = 3000
    apdu_retries: int = 3


async def open_stack(
    interface: ipaddress.IPv4Interface,
    port: int,
    identity: DeviceIdentity,
    receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
) -> LocalDeviceApplication:
    """Bind the stack on ``interface``:``port`` with ``receive_buffer``-byte UDP receive
    buffers and announce the device with an I-Am."""
    ensure_port_free(str(interface.ip), port)
    device = BMSDeviceObject(
        objectIdentifier=("device", identity.device_id),
        objectName=identity.name,
        vendorIdentifier=identity.vendor_id,
        vendorName=identity.vendor_name,
        modelName="Django BMS",
        firmwareRevision=PRODUCT_VERSION,
        applicationSoftwareVersion=f"django-bms {PRODUCT_VERSION}",
        description="Django BMS: BACnet client and virtual device host",
        systemStatus=DeviceStatus.operational,
        protocolVersion=1,
        protocolRevision=22,
        maxApduLengthAccepted=1476,
        segmentationSupported=Segmentation.segmentedBoth,
        databaseRevision=identity.database_revision,
        # also the time-out and retries of this stack's own requests to other devices
        apduTimeout=identity.apdu_timeout_ms,
        apduSegmentTimeout=identity.apdu_timeout_ms,
        numberOfApduRetries=identity.apdu_retries,
    )
    network_port = ServedNetworkPortObject(
        f"{interface}:{port}",
        objectIdentifier=("network-port", 1),
        objectName="NetworkPort-1",
    )
    app = LocalDeviceApplication.from_object_list([device, network_port])
    servers = [layer.server for layer in app.link_layers.values()]
    tasks = [task for server in servers for task in server._transport_tasks]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), BIND_TIMEOUT)
    except TimeoutError:
        app.close()
        raise BindError(f"could not bind {interface.ip}:{port} within {BIND_TIMEOUT:.0f} s") from None
    transports = {server.local_transport for server in servers} | {
        server.broadcast_transport for server in servers
    }
    for transport in transports - {None}:
        reported = enlarge_receive_buffer(transport.get_extra_info("socket"), receive_buffer)
        if reported < receive_buffer:
            logger.info(
                "UDP receive buffer of %s:%s is %d bytes, not the %d asked for: raise "
                "net.core.rmem_max (sysctl) so bursts of answers are not dropped",
                interface.ip,
                port,
                reported // 2,
                receive_buffer,
            )
    app.i_am()
    return app
