"""Four external clients writing one object at once: nothing acknowledged is lost."""

import asyncio

import pytest
from bacpypes3.apdu import ErrorRejectAbortNack

from discovery.models import VirtualBACnetObject, VirtualObjectWrite
from tests.conftest import SERVICE_IP, db

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 4
WRITES_PER_CLIENT = 250
SETPOINT = "Virtual_1001_Temperature_Setpoint"


def value_for(client_index: int, write_index: int) -> float:
    # distinct values inside 55..85 that a 32-bit Real carries exactly
    return 55.0 + client_index * 7.5 + write_index / 64


async def test_every_acknowledged_write_is_stored_and_the_last_one_wins(ahu, service, client_factory):
    clients = [client_factory(10 + i) for i in range(CLIENTS)]
    await asyncio.sleep(0.05)
    acknowledged: list[float] = []  # in the order the acknowledgements arrived
    failures: list[str] = []

    async def writer(index: int) -> None:
        for n in range(WRITES_PER_CLIENT):
            value = value_for(index, n)
            try:
                await clients[index].write_property(
                    SERVICE_IP, "analog-output,1", "presentValue", value, priority=8
                )
            except ErrorRejectAbortNack as error:
                failures.append(str(error))
                continue
            acknowledged.append(value)

    async with asyncio.timeout(120):
        await asyncio.gather(*(writer(i) for i in range(CLIENTS)))

    assert failures == []
    assert len(acknowledged) == CLIENTS * WRITES_PER_CLIENT
    rows = await db(
        lambda: list(
            VirtualObjectWrite.objects.filter(virtual_object__object_name=SETPOINT)
            .order_by("id")
            .values_list("value", flat=True)
        )
    )()
    assert sorted(rows) == sorted(acknowledged)
    stored = await db(VirtualBACnetObject.objects.get)(object_name=SETPOINT)
    assert stored.present_value == acknowledged[-1] == rows[-1]
    assert stored.priority_array[7] == acknowledged[-1]
    assert await clients[0].read_property(SERVICE_IP, "analog-output,1", "presentValue") == acknowledged[-1]
