"""The BACnet device simulator: real UDP between simulated devices and independent clients.

Simulated devices bind 10.77.1.21 and up inside the test process's private network
namespace; the client is a plain bacpypes3 stack on 10.77.1.11.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from io import StringIO

import pytest
from bacpypes3.apdu import AbortPDU, ErrorRejectAbortNack, RejectPDU
from bacpypes3.app import Application
from bacpypes3.basetypes import BinaryPV, ServicesSupported
from bacpypes3.local.analog import AnalogInputObject
from bacpypes3.local.binary import BinaryInputObject
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import Null, ObjectIdentifier, Real
from django.core.management import call_command
from django.core.management.base import CommandError

from discovery.simulator import SimulatedDeviceConfig, Simulation, SimulationError, plan_devices
from discovery.simulator import netns as simulator_netns
from discovery.simulator.devices import drift_once
from discovery.simulator.objects import build_objects, iter_object_specs
from tests import netns

FIRST = netns.address(21)
CLIENT_HOST = 11

StartSimulation = Callable[[list[SimulatedDeviceConfig]], Awaitable[Simulation]]


@pytest.fixture
async def simulate(private_network) -> AsyncIterator[StartSimulation]:
    """Start simulations inside the namespace; all are stopped at the end of the test."""
    simulations: list[Simulation] = []

    async def start(configs: list[SimulatedDeviceConfig]) -> Simulation:
        simulation = await Simulation.start(configs)
        simulations.append(simulation)
        return simulation

    yield start
    for simulation in simulations:
        await simulation.stop()


@pytest.fixture
async def reader(client_factory) -> Application:
    app = client_factory(CLIENT_HOST)
    await asyncio.sleep(0.05)  # let the sockets bind
    return app


def device_config(host: int, **changes) -> SimulatedDeviceConfig:
    """One device at 10.77.1.<host>, id 200000 + host, 22 objects, with ``changes`` applied."""
    values = {
        "device_id": 200000 + host,
        "name": f"T-{host}",
        "address": netns.address(host),
        "object_count": 22,
    }
    return SimulatedDeviceConfig(**(values | changes))


async def refused(call: Awaitable) -> ErrorRejectAbortNack:
    """The Error/Reject/Abort a request ends with (a BaseException, so caught explicitly)."""
    try:
        result = await call
    except ErrorRejectAbortNack as err:
        return err
    raise AssertionError(f"expected an error, reject or abort, got {result!r}")


# --- planning (no network) --------------------------------------------------------------------


def test_plan_gives_consecutive_addresses_and_ids_and_the_troublemakers_in_order():
    configs = plan_devices(4, 30, without_rpm=True, large_unsegmented=True, silent_after=2.0, silent_for=3.0)

    assert [c.address for c in configs] == [f"10.77.1.{n}/24" for n in (101, 102, 103, 104)]
    assert [c.device_id for c in configs] == [100001, 100002, 100003, 100004]
    assert [c.port for c in configs] == [47808] * 4
    assert [c.supports_rpm for c in configs] == [False, True, True, True]
    assert [(c.segmentation, c.max_apdu, c.object_count) for c in configs[1:3]] == [
        (False, 480, 520),
        (True, 1476, 30),
    ]
    assert [(c.silent_after, c.silent_for) for c in configs] == [(None, None)] * 2 + [
        (2.0, 3.0),
        (None, None),
    ]
    assert configs[3].quirks == []


def test_plan_with_ports_shares_one_address_and_skips_troublemakers_it_has_no_room_for():
    configs = plan_devices(2, 5, first_address="127.0.0.1/8", ports=True, silent_after=1.0)

    assert [(c.ip, c.port, c.bacnet_address) for c in configs] == [
        ("127.0.0.1", 47809, "127.0.0.1:47809"),
        ("127.0.0.1", 47810, "127.0.0.1:47810"),
    ]
    assert all(c.silent_after is None for c in configs)


def test_plan_refuses_to_run_out_of_the_subnet():
    with pytest.raises(SimulationError, match="not enough addresses"):
        plan_devices(3, 1, first_address="10.77.1.253/24")


def test_objects_cycle_through_the_templates_with_unique_names_and_per_type_instances():
    specs = list(iter_object_specs(24))
    names = [name for name, _, _ in specs]

    assert names[:3] == [
        "temperature_sensor_1_Temperature",
        "temperature_sensor_1_Humidity",
        "hvac_controller_1_Zone_Temperature",
    ]
    assert names[11] == "temperature_sensor_2_Temperature"
    assert len(set(names)) == 24
    analog_inputs = [instance for _, instance, spec in specs if spec["object_type"] == "analog-input"]
    assert analog_inputs == list(range(1, len(analog_inputs) + 1))


class ExtremeRandom(random.Random):
    """Always the largest step and always a toggle."""

    def uniform(self, a: float, b: float) -> float:
        return b

    def random(self) -> float:
        return 0.0


async def test_drift_stays_within_limits_and_toggles_binary_inputs():
    objects = build_objects(11)  # one pass through the templates, no stack
    analog = [obj for obj in objects if isinstance(obj, AnalogInputObject)]
    binary = [obj for obj in objects if isinstance(obj, BinaryInputObject)]
    analog[0].presentValue = Real(249.9)

    drift_once(analog, binary, ExtremeRandom())

    assert [float(obj.presentValue) for obj in analog] == [250.0, 45.5, 72.0]
    assert [obj.presentValue for obj in binary] == [BinaryPV.active]


# --- over UDP ----------------------------------------------------------------------------------


async def test_a_global_who_is_finds_exactly_the_simulated_devices(simulate, reader):
    await simulate(plan_devices(3, 11, first_address=FIRST, large_unsegmented=True))

    i_ams = await reader.who_is(timeout=0.5)

    found = {(i_am.iAmDeviceIdentifier[1], i_am.vendorID, i_am.maxAPDULengthAccepted) for i_am in i_ams}
    assert found == {(100001, 555, 1476), (100002, 555, 480), (100003, 555, 1476)}
    assert {str(i_am.pduSource) for i_am in i_ams} == {netns.ip(21), netns.ip(22), netns.ip(23)}


async def test_rpm_reads_every_object_of_a_normal_device(simulate, reader):
    simulation = await simulate([device_config(21, object_count=24)])
    address = netns.ip(21)

    object_list = await reader.read_property(address, "device,200021", "objectList")
    properties = ["objectName", "presentValue", "statusFlags", "eventState", "outOfService", "description"]
    request = [item for obj in object_list for item in (obj, properties)]
    results = await reader.read_property_multiple(address, request)  # segmented: several kB

    assert len(object_list) == 26  # device, network port and 24 objects
    assert len(results) == 26 * len(properties)
    names = {str(value) for _, prop, _, value in results if str(prop) == "object-name"}
    served = {str(obj.objectName) for obj in simulation.devices[0].app.objectIdentifier.values()}
    assert names == served and "vav_box_2_Damper_State" in names
    assert not any(isinstance(value, ErrorRejectAbortNack) for *_, value in results)
    limits = await reader.read_property_multiple(
        address, ["analog-input,1", ["minPresValue", "maxPresValue"]]
    )
    assert [value for *_, value in limits] == [-40.0, 250.0]


async def test_the_device_without_rpm_rejects_it_and_still_answers_read_property(simulate, reader):
    await simulate(plan_devices(1, 11, first_address=FIRST, without_rpm=True))
    address = netns.ip(21)

    error = await refused(reader.read_property_multiple(address, ["analog-input,1", ["presentValue"]]))
    value = await reader.read_property(address, "analog-input,1", "presentValue")
    services = await reader.read_property(address, "device,100001", "protocolServicesSupported")

    assert isinstance(error, RejectPDU) and str(error.apduAbortRejectReason) == "unrecognized-service"
    assert value == 72.0
    assert services[ServicesSupported.readProperty] == 1
    assert services[ServicesSupported.readPropertyMultiple] == 0


async def test_the_non_segmenting_device_aborts_a_whole_object_list_but_serves_each_index(simulate, reader):
    simulation = await simulate(plan_devices(2, 20, first_address=FIRST, large_unsegmented=True))
    address = netns.ip(22)
    served = list(simulation.device(100002).app.objectIdentifier)

    error = await refused(reader.read_property(address, "device,100002", "objectList"))
    length = await reader.read_property(address, "device,100002", "objectList", 0)
    entries = [await reader.read_property(address, "device,100002", "objectList", i) for i in range(1, 523)]

    assert isinstance(error, AbortPDU) and str(error.apduAbortRejectReason) == "segmentation-not-supported"
    assert length == 522  # 520 objects, the device and its network port
    assert entries == served
    segmentation = await reader.read_property(address, "device,100002", "segmentationSupported")
    assert str(segmentation) == "no-segmentation"


async def test_a_non_segmenting_device_aborts_a_response_above_its_own_480_octets(simulate, reader):
    # ~520 octets: under the client's limit (so bacpypes3 alone would send it), over the device's
    await simulate([device_config(21, object_count=100, segmentation=False)])

    error = await refused(reader.read_property(netns.ip(21), "device,200021", "objectList"))
    names = await reader.read_property_multiple(netns.ip(21), ["analog-input,1", ["objectName"]])

    assert isinstance(error, AbortPDU) and str(error.apduAbortRejectReason) == "segmentation-not-supported"
    assert [value for *_, value in names] == ["temperature_sensor_1_Temperature"]


async def test_a_silent_device_answers_nothing_until_it_resumes(simulate, reader):
    simulation = await simulate([device_config(21)])
    device = simulation.devices[0]
    reader.device_object.apduTimeout = 300  # give up after 0.3 s x 2 tries, no pending transaction
    reader.device_object.numberOfApduRetries = 1

    device.silence()
    error = await refused(reader.read_property(netns.ip(21), "analog-input,1", "presentValue"))
    found = await reader.who_is(timeout=0.3)
    device.resume()

    assert isinstance(error, AbortPDU) and str(error.apduAbortRejectReason) == "no-response"
    assert found == []
    assert await reader.read_property(netns.ip(21), "analog-input,1", "presentValue") == 72.0
    assert len(await reader.who_is(timeout=0.3)) == 1


async def test_the_silent_troublemaker_goes_silent_on_schedule_and_comes_back(simulate, reader):
    configs = plan_devices(3, 5, first_address=FIRST, silent_after=0.3, silent_for=0.6, drift_interval=0)
    simulation = await simulate(configs)
    silent = simulation.device(100003)

    assert not silent.silent
    await asyncio.sleep(0.4)
    assert silent.silent
    assert {i_am.iAmDeviceIdentifier[1] for i_am in await reader.who_is(timeout=0.2)} == {100001, 100002}
    await asyncio.sleep(0.5)
    assert not silent.silent
    assert len(await reader.who_is(timeout=0.2)) == 3


async def test_drift_changes_analog_inputs_over_time(simulate, reader):
    await simulate([device_config(21, drift_interval=0.1)])

    first = await reader.read_property(netns.ip(21), "analog-input,1", "presentValue")
    await asyncio.sleep(0.35)
    second = await reader.read_property(netns.ip(21), "analog-input,1", "presentValue")

    assert first != second
    assert -40.0 <= second <= 250.0


@asynccontextmanager
async def subscribe(client: Application, address: str, obj: str, process_id: int):
    """SubscribeCOV, with the context registered first so the initial notification is kept."""
    device = Address(address)
    subscription = client.change_of_value(device, ObjectIdentifier(obj), process_id, True, 60)
    client._cov_contexts[(device, process_id)] = subscription
    await subscription.refresh_subscription()
    try:
        yield subscription
    finally:
        await subscription.__aexit__(None, None, None)


async def next_present_value(subscription, timeout: float = 3.0):
    async with asyncio.timeout(timeout):
        while True:
            identifier, value = await subscription.get_value()
            if str(identifier) == "present-value":
                return value


async def test_a_cov_subscriber_is_notified_when_drift_moves_an_analog_input(simulate, reader):
    await simulate([device_config(21, drift_interval=0.1)])

    async with subscribe(reader, netns.ip(21), "analog-input,1", 5) as subscription:
        initial = await next_present_value(subscription)
        changed = await next_present_value(subscription)

    assert abs(changed - initial) >= 0.5  # the temperature's COV increment


async def test_multi_state_objects_can_be_subscribed(simulate, reader):
    await simulate([device_config(21, drift_interval=0)])

    async with subscribe(reader, netns.ip(21), "multi-state-value,1", 6) as subscription:
        assert await next_present_value(subscription) == 3
        await reader.write_property(netns.ip(21), "multi-state-value,1", "presentValue", 2, priority=8)
        assert await next_present_value(subscription) == 2


async def test_a_write_at_priority_8_fills_slot_8_and_relinquishing_clears_it(simulate, reader):
    await simulate([device_config(21)])
    address, setpoint = netns.ip(21), "analog-output,1"

    await reader.write_property(address, setpoint, "presentValue", Real(65.0), priority=8)
    written = await reader.read_property(address, setpoint, "priorityArray", 8)
    value = await reader.read_property(address, setpoint, "presentValue")
    await reader.write_property(address, setpoint, "presentValue", Null(()), priority=8)
    cleared = await reader.read_property(address, setpoint, "priorityArray", 8)

    assert (written.real, value) == (65.0, 65.0)
    assert cleared.null is not None
    assert await reader.read_property(address, setpoint, "presentValue") == 72.0  # relinquish default


async def test_devices_sharing_an_address_on_their_own_ports_answer_a_directed_who_is(simulate, reader):
    await simulate(plan_devices(2, 5, first_address=FIRST, ports=True))

    found = await reader.who_is(address=Address(f"{netns.ip(21)}:47810"), timeout=0.3)
    value = await reader.read_property(f"{netns.ip(21)}:47809", "analog-input,1", "presentValue")

    assert [i_am.iAmDeviceIdentifier[1] for i_am in found] == [100002]
    assert value == 72.0


async def test_start_refuses_an_address_already_in_use(simulate):
    await simulate([device_config(21)])

    with pytest.raises(SimulationError, match="10.77.1.21:47808"):
        await Simulation.start([device_config(21, device_id=1)])


# --- the management command ------------------------------------------------------------------


def test_the_command_prints_its_devices_runs_for_the_duration_and_stops(private_network):
    out = StringIO()

    call_command(
        "simulate_devices",
        *("--count", "3", "--objects", "5", "--first-address", netns.address(26)),
        *("--without-rpm", "--silent-after", "30", "--duration", "1"),
        stdout=out,
    )

    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["id", "name", "address", "objects", "quirks"]
    assert lines[1].split()[:4] == ["100001", "SIM-100001", "10.77.1.26", "5"] and "no RPM" in lines[1]
    assert lines[3].split()[:3] == ["100003", "SIM-100003", "10.77.1.28"] and "silent after 30 s" in lines[3]
    assert lines[-2:] == ["Simulating 3 device(s) for 1 s.", "Stopped."]


def test_the_command_refuses_a_private_network_when_not_root(monkeypatch):
    def must_not_unshare() -> None:
        raise AssertionError("unshare attempted")

    monkeypatch.setattr(simulator_netns, "_unshare_network", must_not_unshare)
    monkeypatch.setattr(simulator_netns.os, "geteuid", lambda: 1000)

    with pytest.raises(CommandError, match="--private-network: .*needs root"):
        call_command("simulate_devices", "--private-network", "--duration", "1", stdout=StringIO())


def test_the_command_names_an_address_this_host_does_not_have(private_network):
    with pytest.raises(CommandError, match="10.77.2.5 does not exist"):
        call_command(
            "simulate_devices", "--first-address", "10.77.2.5/24", "--duration", "1", stdout=StringIO()
        )
