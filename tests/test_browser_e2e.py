"""End to end in a real headless Chromium: sign in, create a virtual device, see a BACnet write
arrive live, write and relinquish from the page, and draw a history chart.

Everything runs inside the test's private network namespace: the web server (uvicorn with the
ASGI app) and the BACnet service in this process on one loop, an independent bacpypes3 client,
and Chromium (a child process, so in the same namespace, reaching only 127.0.0.1 there).
Screenshots of the main pages go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from asgiref.sync import sync_to_async
from bacpypes3.primitivedata import Real
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from discovery.models import BACnetDevice, BACnetPoint, BACnetReading, VirtualObjectWrite
from tests.conftest import SERVICE_IP

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer:
    """The ASGI app served by uvicorn on 127.0.0.1 (inside the namespace), on the test's loop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from django_bms.asgi import application

        config = uvicorn.Config(
            application, host="127.0.0.1", port=self.port, lifespan="off", log_config=None
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the test process keeps its own
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(100):
            if self._server.started:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the web server did not start")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
            self._server = None


@pytest.fixture
async def web(service, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    server = WebServer(free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def browser(private_network):
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def make_operator() -> User:
    # transactional tests flush the group that migration 0004 made: make it again if needed
    group, _ = Group.objects.get_or_create(name="operators")
    group.permissions.add(Permission.objects.get(codename="operate_bacnet"))
    user = User.objects.create_user("operator", password="correct horse")
    user.groups.add(group)
    return user


def make_remote_history() -> tuple[int, int]:
    device = BACnetDevice.objects.create(
        device_id=100001, address="10.77.1.21", object_name="AHU-2", vendor_name="Simulated Controls Inc."
    )
    point = BACnetPoint.objects.create(
        device=device,
        object_type="analog-input",
        instance=1,
        object_name="Supply_Temp",
        units="degrees-fahrenheit",
        present_value=55.0,
        present_value_text="55",
        status_flags=[0, 0, 0, 0],
        last_update=timezone.now(),
    )
    now = timezone.now()
    BACnetReading.objects.bulk_create(
        BACnetReading(
            point=point, value=55 + (i % 7), value_text=str(55 + i % 7), timestamp=now - timedelta(minutes=i)
        )
        for i in range(40)
    )
    return device.device_id, point.pk


async def test_an_operator_works_with_a_virtual_device_in_the_browser(web, browser, client):
    await sync_to_async(make_operator)()
    remote_device_id, _ = await sync_to_async(make_remote_history)()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        # sign in
        await page.goto(f"{web.url}/")
        assert "/accounts/login/" in page.url
        await page.fill("input[name=username]", "operator")
        await page.fill("input[name=password]", "correct horse")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{web.url}/")
        await page.wait_for_selector("#connection-status[data-state=live]")
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        # create a virtual device from a template and see its objects
        await page.goto(f"{web.url}/virtual-devices/create/")
        await page.select_option("select[name=template]", "hvac_controller")
        await page.fill("input[name=name]", "AHU-1")
        await page.fill("input[name=device_id]", "1001")
        await page.click("#create-form button[type=submit]")
        await page.wait_for_url(f"{web.url}/virtual-devices/1001/")
        setpoint = page.locator('[data-object-name="Virtual_1001_Temperature_Setpoint"]')
        assert await page.locator("section.object").count() == 3
        assert (await setpoint.locator('[data-field="present-value"]').inner_text()) == "72"
        await page.wait_for_selector("#connection-status[data-state=live]")

        # an independent BACnet client writes: the open page changes without a reload
        await client.write_property(SERVICE_IP, "analog-output,1", "presentValue", 75.0, priority=8)
        await setpoint.locator('[data-field="present-value"]', has_text="75").wait_for(timeout=3000)
        assert await setpoint.locator('[data-slot="8"].winning').inner_text() == "75"
        await page.locator("#write-history tbody tr", has_text="10.77.1.2").first.wait_for(timeout=3000)
        await page.screenshot(path=str(ARTIFACTS / "virtual_device.png"), full_page=True)

        # write at priority 10 from the page: priority 8 still wins over BACnet
        form = setpoint.locator("form.write-form")
        await form.locator("input[name=value]").fill("70")
        await form.locator("input[name=priority]").fill("10")
        async with page.expect_navigation():
            await form.locator("button[data-action=write]").click()
        assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 75.0
        # relinquish priority 8 from the page: the value at 10 takes over
        form = page.locator('[data-object-name="Virtual_1001_Temperature_Setpoint"] form.write-form')
        await form.locator("input[name=priority]").fill("8")
        async with page.expect_navigation():
            await form.locator("button[data-action=relinquish]").click()
        assert await client.read_property(SERVICE_IP, "analog-output,1", "presentValue") == 70.0
        await page.locator(
            '[data-object-name="Virtual_1001_Temperature_Setpoint"] [data-field="present-value"]',
            has_text="70",
        ).wait_for(timeout=3000)
        web_writes = await sync_to_async(
            lambda: list(
                VirtualObjectWrite.objects.filter(source="web").values_list("user", "priority", "value")
            )
        )()
        assert web_writes == [("operator", 8, None), ("operator", 10, 70.0)]

        # the other pages, and a point's history chart
        await page.goto(f"{web.url}/virtual-devices/")
        await page.screenshot(path=str(ARTIFACTS / "virtual_devices.png"), full_page=True)
        await page.goto(f"{web.url}/discovery/")
        await page.screenshot(path=str(ARTIFACTS / "discovery.png"), full_page=True)
        await page.goto(f"{web.url}/devices/{remote_device_id}/")
        await page.click("button[data-history]")
        chart = page.locator("#history-chart svg.history-chart path.line")
        await chart.wait_for(timeout=3000)
        assert (await chart.get_attribute("d")).count("L") == 39
        await page.screenshot(path=str(ARTIFACTS / "device_detail.png"), full_page=True)
    finally:
        await page.goto("about:blank")  # page.close() can hang with this Chromium; close the context
        await context.close()


async def test_the_page_says_when_the_connection_drops_and_reconnects(web, browser):
    await sync_to_async(make_operator)()
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"{web.url}/accounts/login/")
        await page.fill("input[name=username]", "operator")
        await page.fill("input[name=password]", "correct horse")
        await page.click("button[type=submit]")
        await page.wait_for_selector("#connection-status[data-state=live]")
        # the server goes away under the open page (a restart), then comes back
        await web.stop()
        await page.wait_for_selector("#connection-status[data-state=lost]", timeout=5000)
        assert "reconnecting" in await page.locator("#connection-status").inner_text()
        await web.start()
        await page.wait_for_selector("#connection-status[data-state=live]", timeout=15000)
    finally:
        await page.goto("about:blank")
        await context.close()


async def sign_in(page, web: WebServer) -> None:
    await page.goto(f"{web.url}/accounts/login/")
    await page.fill("input[name=username]", "operator")
    await page.fill("input[name=password]", "correct horse")
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    await page.wait_for_selector("#connection-status[data-state=live]")


async def test_an_operator_scans_reads_and_commands_a_real_device_in_the_browser(
    web, browser, service, settings
):
    from discovery.services.poller import Poller
    from discovery.simulator.devices import SimulatedDeviceConfig, Simulation

    settings.BACNET_DISCOVERY_TIMEOUT = 1.0
    settings.BACNET_POLL_NORMAL = 3600  # values arrive by COV only
    await sync_to_async(make_operator)()
    simulation = await Simulation.start(
        [
            SimulatedDeviceConfig(
                device_id=device_id,
                name=f"SIM-{device_id}",
                address=f"10.77.1.{host}/24",
                object_count=11,
                drift_interval=0,
            )
            for device_id, host in ((100001, 21), (100002, 22))
        ]
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    poller = None
    try:
        await sign_in(page, web)
        # scan from the discovery page
        await page.goto(f"{web.url}/discovery/")
        async with page.expect_navigation(timeout=15000):
            await page.click("#scan-button")
        rows = page.locator("#devices tbody tr")
        assert await rows.count() == 2
        assert "SIM-100001" in await rows.first.inner_text()
        # read the points of one device
        await page.click("#devices a:text('100001')")
        async with page.expect_navigation(timeout=15000):
            await page.click("#read-points")
        assert await page.locator("#points tbody tr[data-point-id]").count() == 11
        # a change on the device reaches the open page: COV -> poller -> database -> websocket
        poller = Poller(service.remote, use_cov=True)
        await poller.start()
        for _ in range(100):
            if poller.status()["cov_points"] == 11:
                break
            await asyncio.sleep(0.05)
        sensor = next(
            obj
            for obj in simulation.device(100001).app.iter_objects()
            if str(obj.objectIdentifier[0]) == "analog-input" and obj.objectIdentifier[1] == 1
        )
        sensor.presentValue = Real(66.25)
        point_id = await sync_to_async(
            lambda: (
                BACnetPoint.objects.get(device__device_id=100001, object_type="analog-input", instance=1).pk
            )
        )()
        await page.locator(f'tr[data-point-id="{point_id}"] [data-field="value"]', has_text="66.25").wait_for(
            timeout=5000
        )
        await page.screenshot(path=str(ARTIFACTS / "device_points.png"), full_page=True)
        # command an output at priority 8 from the page, then relinquish it
        setpoint_id = await sync_to_async(
            lambda: (
                BACnetPoint.objects.get(device__device_id=100001, object_type="analog-output", instance=1).pk
            )
        )()
        form = page.locator(f'tr[data-point-id="{setpoint_id}"] form.write-form')
        await form.locator("input[name=value]").fill("68")
        await form.locator("input[name=priority]").fill("8")
        async with page.expect_navigation():
            await form.locator("button:text('Write')").click()
        assert "Wrote 68.0 at priority 8" in await page.locator(".messages").inner_text()
        device_setpoint = next(
            obj
            for obj in simulation.device(100001).app.iter_objects()
            if str(obj.objectIdentifier[0]) == "analog-output" and obj.objectIdentifier[1] == 1
        )
        assert float(device_setpoint.priorityArray[7].real) == 68.0
        form = page.locator(f'tr[data-point-id="{setpoint_id}"] form.write-form')
        await form.locator("input[name=priority]").fill("8")
        async with page.expect_navigation():
            await form.locator("button:text('Relinquish')").click()
        assert device_setpoint.priorityArray[7].null is not None
    finally:
        if poller is not None:
            await poller.stop()
        await page.goto("about:blank")
        await context.close()
        await simulation.stop()
