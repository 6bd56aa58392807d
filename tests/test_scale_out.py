"""Scale-out: the BACnet service in one process, web workers in others, joined by Redis.

A `manage.py serve` process owns the stack. Notifications from it reach websockets of another
process, and a web worker without the stack has its writes done by the service process.
Redis runs inside the test's private network namespace
(the machine's own Redis on the host's 127.0.0.1 is not reachable from there).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import shutil
import sqlite3
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from discovery.consumers import VirtualDeviceConsumer
from tests.conftest import db
from tests.test_serve_process import (  # noqa: F401 (fixtures)
    clients,
    db_file,
    launch,
    manage,
    manage_env,
    migrated_db,
    start_serving,
)

pytestmark = [pytest.mark.usefixtures("private_network"), pytest.mark.django_db(transaction=True)]

REDIS_PORT = 6391


@pytest.fixture
def redis_url(tmp_path: Path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(REDIS_PORT),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{REDIS_PORT}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_layer(redis_url, settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def test_an_external_write_reaches_a_websocket_of_another_process(
    redis_url,
    redis_layer,
    db_file,  # noqa: F811 (fixture imported above)
    launch,  # noqa: F811
    clients,  # noqa: F811
):
    env = manage_env(db_file, 28) | {"REDIS_URL": redis_url, "BACNET_POLLING": "false"}
    created = manage(
        env,
        "virtual_device",
        "create",
        "--template",
        "hvac_controller",
        "--device-id",
        "1001",
        "--name",
        "AHU-1",
    )
    assert created.returncode == 0, created.stderr
    client = clients(38)
    serve = await start_serving(launch, env, client)

    user = await db(User.objects.create_user)("viewer", password="pw")
    communicator = WebsocketCommunicator(VirtualDeviceConsumer.as_asgi(), "/ws/virtual-devices/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    try:
        await asyncio.sleep(0.2)  # the group membership is in Redis before the write
        await client.write_property(serve.ip, "analog-output,1", "presentValue", 74.0, priority=8)
        message = await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()
    assert message["type"] == "external_write_notification"
    assert message["object_name"] == "Virtual_1001_Temperature_Setpoint"
    assert message["present_value"] == 74.0 and message["source_address"] == "10.77.1.38"


def sign_in(base_url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    """An HTTP client with a signed-in session (the sign-in form, CSRF token and all)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base_url}/accounts/login/", timeout=10).read()
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    opener.open(f"{base_url}/accounts/login/", form.encode(), timeout=10).read()
    assert any(cookie.name == "sessionid" for cookie in jar), "sign-in failed"
    opener.csrf_token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    return opener


def post_json(opener, url: str, fields: dict) -> tuple[int, dict]:
    data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": opener.csrf_token}).encode()
    request = urllib.request.Request(url, data, headers={"Accept": "application/json", "Referer": url})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_a_web_worker_without_the_stack_writes_through_the_service_process(
    redis_url,
    db_file,  # noqa: F811
    launch,  # noqa: F811
    clients,  # noqa: F811
):
    env = manage_env(db_file, 29) | {"REDIS_URL": redis_url, "BACNET_POLLING": "false"}
    for command in (
        (
            "virtual_device",
            "create",
            "--template",
            "hvac_controller",
            "--device-id",
            "1001",
            "--name",
            "AHU-1",
        ),
        ("createsuperuser", "--no-input", "--username", "admin", "--email", "admin@example.com"),
    ):
        result = manage(env | {"DJANGO_SUPERUSER_PASSWORD": "pw"}, *command)
        assert result.returncode == 0, result.stderr
    client = clients(39)
    service_process = await start_serving(launch, env, client)
    web_worker = launch(env | {"USE_UNIFIED_BACNET_SERVICE": "false", "BACNET_ADDRESS": "10.77.1.30/24"})
    assert await web_worker.wait_for_http(), web_worker.stderr

    opener = await asyncio.to_thread(sign_in, web_worker.url, "admin", "pw")
    with sqlite3.connect(db_file) as database:
        (pk,) = database.execute(
            "SELECT id FROM discovery_virtualbacnetobject WHERE object_name = ?",
            ("Virtual_1001_Temperature_Setpoint",),
        ).fetchone()
    url = f"{web_worker.url}/virtual-devices/1001/objects/{pk}/write/"

    status, answer = await asyncio.to_thread(post_json, opener, url, {"value": "74", "priority": "8"})
    assert (status, answer["ok"]) == (200, True), answer
    assert await client.read_property(service_process.ip, "analog-output,1", "presentValue") == 74.0
    status, answer = await asyncio.to_thread(post_json, opener, url, {"value": "99", "priority": "8"})
    assert status == 400 and "Value out of range" in answer["message"]
    with sqlite3.connect(db_file) as database:
        rows = database.execute("SELECT source, user, value FROM discovery_virtualobjectwrite").fetchall()
    assert rows == [("web", "admin", 74.0)]
    assert "BACnet service started" not in web_worker.stderr
