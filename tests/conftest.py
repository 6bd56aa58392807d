"""Shared fixtures: a private network, the app's BACnet service and independent BACnet clients.

The whole test process enters a private network namespace at start (as root), so every
stack binds its own 10.77.1.x address on port 47808 and no packet leaves the namespace.
The service under test runs in this process with its real stack; clients are separate
bacpypes3 (or BAC0) stacks on other addresses talking to it over UDP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from asgiref.sync import sync_to_async
from bacpypes3.app import Application
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject

from tests import netns

NETNS_PROBLEM: str | None = "not set up"
SERVICE_HOST = 1


def pytest_configure(config: pytest.Config) -> None:
    global NETNS_PROBLEM
    NETNS_PROBLEM = netns.enter_private_network()


def pytest_report_header(config: pytest.Config) -> str:
    if NETNS_PROBLEM:
        return f"BACnet tests over UDP are SKIPPED: {NETNS_PROBLEM}"
    return f"BACnet tests run in a private network namespace ({netns.SUBNET}.0/24 on lo)"


@pytest.fixture
def private_network() -> None:
    if NETNS_PROBLEM:
        pytest.skip(f"needs a private network namespace: {NETNS_PROBLEM}")


SERVICE_IP = netns.ip(SERVICE_HOST)


@pytest.fixture
def ahu(transactional_db):
    """An hvac_controller virtual device, id 1001, created before the service starts."""
    from discovery.services import virtual_store

    return virtual_store.create_virtual_device(template="hvac_controller", device_id=1001, name="AHU-1")


@pytest.fixture
async def service(private_network, transactional_db, monkeypatch) -> AsyncIterator:
    """The app's BACnet service at 10.77.1.1, installed as this process's service (as `serve` does)."""
    from discovery.services import unified_bacnet_service

    bacnet_service = unified_bacnet_service.UnifiedBACnetService(
        address=netns.address(SERVICE_HOST), watch_interval=0.1
    )
    monkeypatch.setattr(unified_bacnet_service, "_service", bacnet_service)
    await bacnet_service.start_service()
    try:
        yield bacnet_service
    finally:
        await bacnet_service.stop_service()


def make_client_app(host: int, device_id: int | None = None) -> Application:
    """An independent bacpypes3 stack on 10.77.1.<host>."""
    device = DeviceObject(
        objectIdentifier=("device", device_id or 990000 + host),
        objectName=f"test-client-{host}",
        vendorIdentifier=999,
    )
    port = NetworkPortObject(
        f"{netns.address(host)}:47808", objectIdentifier=("network-port", 1), objectName="port"
    )
    return Application.from_object_list([device, port])


@pytest.fixture
async def client_factory(private_network) -> AsyncIterator[Callable[[int], Application]]:
    apps: list[Application] = []

    def factory(host: int) -> Application:
        app = make_client_app(host)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
async def client(client_factory) -> Application:
    app = client_factory(2)
    await asyncio.sleep(0.05)  # let the sockets bind
    return app


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 2.0) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds have passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)


db = sync_to_async  # tests call the ORM through this, never inside the event loop
