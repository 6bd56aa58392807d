"""The seed's integration scenario, with BAC0 (what many integrators script with) as the client."""

import pytest

from discovery.models import VirtualObjectWrite
from tests import netns
from tests.conftest import SERVICE_IP, db

pytestmark = pytest.mark.django_db(transaction=True)


async def test_bac0_discovers_reads_and_writes_the_setpoint(ahu, service):
    BAC0 = pytest.importorskip("BAC0")
    BAC0.log_level("error")

    async with BAC0.start(ip=netns.address(4)) as bacnet:
        answers = await bacnet.who_is(timeout=2)
        assert [answer.iAmDeviceIdentifier[1] for answer in answers] == [8888]

        zone_temperature = await bacnet.read(f"{SERVICE_IP} analogInput 1 presentValue")
        assert zone_temperature == pytest.approx(71.5)

        assert await bacnet._write(f"{SERVICE_IP} analogOutput 1 presentValue 75.0 - 8") is not False
        assert await bacnet.read(f"{SERVICE_IP} analogOutput 1 presentValue") == pytest.approx(75.0)

    write = await db(VirtualObjectWrite.objects.select_related("virtual_object").get)()
    assert write.virtual_object.object_name == "Virtual_1001_Temperature_Setpoint"
    assert (write.value, write.priority, write.source) == (75.0, 8, "external_bacnet_write")
    assert write.source_address == netns.ip(4)
