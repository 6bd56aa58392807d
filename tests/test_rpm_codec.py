"""ReadPropertyMultiple through rpm_codec gives the bytes and values bacpypes3 gives.

Over UDP: the product's stack (a BMSApplication, whose answers to rpm_codec requests arrive
undecoded) reads a simulated device, whose point-read answers rpm_codec encodes; the same
requests answered or decoded by bacpypes3 must give the same bytes and the same values.
Without a network: rpm_codec's encoder against bacpypes3's, and damaged answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import struct

import pytest
from bacpypes3.apdu import APCISequence, ComplexAckPDU, SimpleAckPDU
from bacpypes3.basetypes import BinaryPV, EngineeringUnits, StatusFlags
from bacpypes3.constructeddata import ArrayOf
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import (
    BitString,
    Boolean,
    CharacterString,
    Double,
    Integer,
    Real,
    Unsigned,
)

from discovery.services.bacnet import rpm_codec
from discovery.services.bacnet.client import BACnetRequestError, DeviceClient, point_properties
from discovery.services.bacnet.device import DeviceIdentity, open_stack
from discovery.simulator.devices import SimulatedDeviceConfig, Simulation
from tests import netns

DEVICE_ID, DEVICE_HOST = 100001, 21
OBJECTS = 40  # every object type of every template at least once
BATCH = 6


@pytest.fixture
async def simulated_device(private_network):
    config = SimulatedDeviceConfig(
        device_id=DEVICE_ID,
        name="SIM-CODEC",
        address=netns.address(DEVICE_HOST),
        object_count=OBJECTS,
        drift_interval=0,
    )
    simulation = await Simulation.start([config])
    try:
        yield simulation.device(DEVICE_ID)
    finally:
        await simulation.stop()


@pytest.fixture
async def product_stack(private_network):
    """The product's own stack (as the service opens it), without the database."""
    identity = DeviceIdentity(device_id=8888, name="Django_BMS", vendor_id=555, vendor_name="Django BMS")
    app = await open_stack(ipaddress.IPv4Interface(netns.address(1)), 47808, identity)
    try:
        yield app
    finally:
        app.close()


def point_reads(device) -> list[tuple[tuple[str, int], list[str]]]:
    reads = []
    for obj in device.app.iter_objects():
        object_type, instance = str(obj.objectIdentifier[0]), obj.objectIdentifier[1]
        if object_type not in ("device", "network-port"):
            reads.append(((object_type, instance), point_properties(object_type)))
    return reads


def batches(items: list) -> list[list]:
    return [items[start : start + BATCH] for start in range(0, len(items), BATCH)]


async def raw_answer(stack, request: list) -> bytes:
    answer = await stack.request(rpm_codec.encode_request(Address(netns.ip(DEVICE_HOST)), request))
    assert not isinstance(answer, APCISequence), "the product's stack decoded the answer itself"
    return bytes(answer.pduData)


async def test_the_simulator_answers_point_reads_with_the_bytes_bacpypes3_sends(
    simulated_device, product_stack
):
    reads = point_reads(simulated_device)
    assert {object_type for (object_type, _), _ in reads} >= {
        "analog-input",
        "analog-output",
        "analog-value",
        "binary-input",
        "binary-output",
        "multi-state-input",
        "multi-state-value",
    }
    app = simulated_device.app
    quick = []
    original = app.quick_answer
    app.quick_answer = lambda pdu: quick.append(original(pdu)) or quick[-1]
    for batch in batches(reads):
        ours = await raw_answer(product_stack, batch)
        app.quick_rpm = False
        theirs = await raw_answer(product_stack, batch)
        app.quick_rpm = True
        assert ours == theirs
    answered = [answer for answer in quick if answer is not None]
    assert len(answered) == len(batches(reads))  # each batch once by rpm_codec, once by bacpypes3


async def test_point_reads_decode_to_the_values_bacpypes3_decodes(
    simulated_device, product_stack, client, caplog
):
    caplog.set_level(logging.DEBUG, logger="discovery.services.bacnet.client")
    address = netns.ip(DEVICE_HOST)
    identifiers = [identifier for identifier, _ in point_reads(simulated_device)]
    fast = await DeviceClient(product_stack, address).read_objects(identifiers)
    slow = await DeviceClient(client, address).read_objects(identifiers)  # bacpypes3 decodes
    assert "decoded by bacpypes3" not in caplog.text
    assert [(o.object_type, o.instance, o.properties, o.errors) for o in fast] == [
        (o.object_type, o.instance, o.properties, o.errors) for o in slow
    ]
    by_id = {(o.object_type, o.instance): o.properties for o in fast}
    for obj in simulated_device.app.iter_objects():
        key = (str(obj.objectIdentifier[0]), obj.objectIdentifier[1])
        if key not in by_id:
            continue
        properties = by_id[key]
        assert properties["objectName"] == str(obj.objectName)
        assert properties["statusFlags"] == list(obj.statusFlags)
        if key[0] == "analog-input":
            assert properties["units"] == str(obj.units)
            assert properties["presentValue"] == struct.unpack(">f", struct.pack(">f", obj.presentValue))[0]
        if key[0].startswith("binary"):
            assert properties["presentValue"] in ("active", "inactive")
        if key[0].startswith("multi-state"):
            assert properties["stateText"] == [str(text) for text in obj.stateText]


async def test_values_rpm_codec_does_not_decode_are_decoded_by_bacpypes3(
    simulated_device, product_stack, client, caplog
):
    caplog.set_level(logging.DEBUG, logger="discovery.services.bacnet.client")
    address = netns.ip(DEVICE_HOST)
    output = next(
        (str(o.objectIdentifier[0]), o.objectIdentifier[1])
        for o in simulated_device.app.iter_objects()
        if str(o.objectIdentifier[0]) == "analog-output"
    )
    binary = next(
        (str(o.objectIdentifier[0]), o.objectIdentifier[1])
        for o in simulated_device.app.iter_objects()
        if str(o.objectIdentifier[0]) == "binary-input"
    )
    request = [(output, ["presentValue", "priorityArray"]), (binary, ["units", "presentValue"])]
    fast = await DeviceClient(product_stack, address).read_multiple(request)
    assert "decoded by bacpypes3" in caplog.text  # priorityArray: a list of choices
    slow = await DeviceClient(client, address).read_multiple(request)
    assert fast == slow
    results = {(r.object_id, r.property): r for r in fast}
    assert len(results[(output, "priorityArray")].value) == 16
    assert results[(binary, "units")].error == "property: unknown-property"
    assert results[(binary, "presentValue")].value in ("active", "inactive")


async def test_an_answer_too_large_for_one_apdu_arrives_segmented_and_is_decoded(
    simulated_device, product_stack, client, caplog
):
    caplog.set_level(logging.DEBUG, logger="discovery.services.bacnet.client")
    address = netns.ip(DEVICE_HOST)
    reads = point_reads(simulated_device)  # about 4 kB: the simulator leaves it to bacpypes3
    fast = await DeviceClient(product_stack, address).read_multiple(reads)
    slow = await DeviceClient(client, address).read_multiple(reads)
    assert len(fast) == sum(len(names) for _, names in reads) and fast == slow
    assert "decoded by bacpypes3" not in caplog.text  # the reassembled answer, by rpm_codec


@pytest.mark.parametrize(
    ("answer_with", "message"),
    [
        ("simple-ack", "SimpleAckPDU is no answer to ReadPropertyMultiple"),
        ("garbage", "undecodable answer"),
    ],
)
async def test_an_answer_that_is_no_rpm_answer_is_a_typed_error(
    product_stack, client_factory, answer_with, message
):
    odd_device = client_factory(30)  # a device that answers point reads wrongly

    async def answer_wrongly(apdu):
        if answer_with == "simple-ack":
            await odd_device.response(SimpleAckPDU(context=apdu))
        else:
            ack = ComplexAckPDU(context=apdu)
            ack.put_data(b"\x0c\x00")  # cut off inside the first object identifier
            await odd_device.response(ack)

    odd_device.do_ReadPropertyMultipleRequest = answer_wrongly
    await asyncio.sleep(0.05)
    reader = DeviceClient(product_stack, netns.ip(30), timeout=2.0)
    with pytest.raises(BACnetRequestError, match=message) as raised:
        await reader.read_multiple([(("analog-input", 1), ["presentValue"])])
    assert (raised.value.error_class, raised.value.error_code) == ("communication", "invalid-tag")


@pytest.mark.parametrize(
    "apdu",
    [
        bytes([0x00, 0x0F, 0x01, 0x0E]),  # reserved max-APDU code, no service data
        bytes([0x00, 0x0F, 0x02, 0x0E]) + b"\x0c\x00\x00\x00\x01\x1e\x09\x55\x1f",
        bytes([0x00, 0x05, 0x03, 0x0E]) + b"\x0c\x00\x00\x00",  # cut off after the object
        bytes([0x00, 0x05, 0x04, 0x0E]) + b"\x1e\x1f\xff\xff",
    ],
)
async def test_a_malformed_point_read_leaves_the_simulated_device_answering(
    simulated_device, product_stack, apdu
):
    app, outcomes = simulated_device.app, []
    original = app.quick_answer

    def spy(pdu):
        try:
            outcomes.append(original(pdu))
        except Exception as exc:
            outcomes.append(exc)
            raise
        return outcomes[-1]

    app.quick_answer = spy
    bvll = b"\x81\x0a" + (len(apdu) + 6).to_bytes(2, "big") + b"\x01\x04"  # unicast, NPDU, reply
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind((netns.ip(31), 47808))
        sender.sendto(bvll + apdu, (netns.ip(DEVICE_HOST), 47808))
        await asyncio.sleep(0.1)
    assert outcomes[0] is None  # left to bacpypes3, which drops or rejects it
    answer = await raw_answer(product_stack, [(("analog-input", 1), ["presentValue"])])
    assert rpm_codec.decode_results(answer)[0].property == "presentValue"


# --- without a network --------------------------------------------------------------------------

ENCODED_LIKE_BACPYPES3 = [
    (CharacterString, ""),
    (CharacterString, "Zone temperature °C"),
    (CharacterString, "x" * 300),
    (CharacterString, "y" * 70000),
    (Unsigned, 0),
    (Unsigned, 255),
    (Unsigned, 256),
    (Unsigned, 2**32 - 1),
    (Integer, 0),
    (Integer, -1),
    (Integer, 127),
    (Integer, 128),
    (Integer, -129),
    (Integer, -(2**31)),
    (Real, 21.5),
    (Real, -0.0),
    (Double, 1e300),
    (Boolean, True),
    (Boolean, False),
    (StatusFlags, [0, 1, 0, 0]),
    (BitString, []),
    (BitString, [1] * 9),
    (EngineeringUnits, EngineeringUnits.degreesCelsius),
    (BinaryPV, BinaryPV.active),
    (ArrayOf(CharacterString), ["Off", "Low", "High"]),
]


@pytest.mark.parametrize(("datatype", "value"), ENCODED_LIKE_BACPYPES3)
def test_values_are_encoded_as_bacpypes3_encodes_them(datatype, value):
    theirs = datatype(value).encode()
    if isinstance(theirs, list) and not hasattr(theirs, "encode"):  # an array: a list of tag lists
        theirs = b"".join(bytes(element.encode().pduData) for element in theirs)
    else:
        theirs = bytes(theirs.encode().pduData)
    assert rpm_codec.encode_value(datatype, datatype(value)) == theirs


def sample_answer() -> bytes:
    return rpm_codec.encode_answer(
        [
            (
                ("analog-input", 1),
                [
                    ("objectName", rpm_codec.value_result(CharacterString, "Zone Temp")),
                    ("presentValue", rpm_codec.value_result(Real, 21.5)),
                    ("statusFlags", rpm_codec.value_result(StatusFlags, StatusFlags([0, 0, 1, 0]))),
                    ("units", rpm_codec.value_result(EngineeringUnits, EngineeringUnits.degreesCelsius)),
                    ("description", rpm_codec.error_result("property", "unknown-property")),
                ],
            ),
            (
                ("multi-state-value", 4194302),
                [
                    ("presentValue", rpm_codec.value_result(Unsigned, 2)),
                    ("stateText", rpm_codec.value_result(ArrayOf(CharacterString), ["Off", "On"])),
                ],
            ),
        ]
    )


def test_an_answer_decodes_to_plain_values():
    results = rpm_codec.decode_results(sample_answer())
    assert [(r.object_id, r.property, r.array_index, r.value, r.error) for r in results] == [
        (("analog-input", 1), "objectName", None, "Zone Temp", ""),
        (("analog-input", 1), "presentValue", None, 21.5, ""),
        (("analog-input", 1), "statusFlags", None, [0, 0, 1, 0], ""),
        (("analog-input", 1), "units", None, "degrees-celsius", ""),
        (("analog-input", 1), "description", None, None, "property: unknown-property"),
        (("multi-state-value", 4194302), "presentValue", None, 2, ""),
        (("multi-state-value", 4194302), "stateText", None, ["Off", "On"], ""),
    ]


def test_a_damaged_answer_raises_not_simple_and_nothing_else():
    answer = sample_answer()
    rng = random.Random(4242)
    damaged = [answer[:cut] for cut in range(1, len(answer))]
    for _ in range(2000):
        mutated = bytearray(answer)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        damaged.append(bytes(mutated))
    outcomes = {"decoded": 0, "not simple": 0}
    for data in damaged:
        try:
            rpm_codec.decode_results(data)
            outcomes["decoded"] += 1
        except rpm_codec.NotSimple:
            outcomes["not simple"] += 1
    assert outcomes["not simple"] >= len(answer) - 1  # every truncation at least


def test_a_value_of_the_wrong_type_is_not_decoded_here():
    wrong = rpm_codec.encode_answer(
        [(("analog-input", 1), [("presentValue", rpm_codec.value_result(CharacterString, "warm"))])]
    )
    with pytest.raises(rpm_codec.NotSimple):
        rpm_codec.decode_results(wrong)


def test_a_request_decodes_to_what_was_asked_and_anything_else_is_left_to_bacpypes3():
    asked = [(("analog-input", 1), ["objectName", "presentValue"]), (("device", 100001), ["objectList"])]
    request = rpm_codec.encode_request(Address("10.77.1.21"), asked)
    assert rpm_codec.decode_request(bytes(request.pduData)) == asked

    for special in ("all", "required", "optional"):
        data = rpm_codec.encode_request(Address("10.77.1.21"), [(("analog-input", 1), [special])]).pduData
        with pytest.raises(rpm_codec.NotSimple):
            rpm_codec.decode_request(bytes(data))
    with_index = bytes(request.pduData)[:7] + b"\x19\x01" + bytes(request.pduData)[7:]  # [1] index 1
    with pytest.raises(rpm_codec.NotSimple):
        rpm_codec.decode_request(with_index)
    for cut in range(1, len(request.pduData)):  # a cut request is refused, or is a whole first part
        try:
            assert rpm_codec.decode_request(bytes(request.pduData)[:cut]) == asked[:1]
        except rpm_codec.NotSimple:
            pass
