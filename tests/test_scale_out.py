"""Scale-out: the BACnet service in one process, browsers on another, joined by Redis.

A `manage.py serve` process owns the stack; this test process plays a web worker whose
websocket consumer listens on the Redis channel layer. An external BACnet write to the serve
process must reach that websocket. Redis runs inside the test's private network namespace
(the machine's own Redis on the host's 127.0.0.1 is not reachable from there).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
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
