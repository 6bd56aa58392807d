"""ReadPropertyMultiple for point reads, encoded and decoded straight from and to bytes.

bacpypes3 decodes an RPM answer through generic Sequence/Choice/Any objects and then casts
every value to its property's datatype: about 0.7 ms of CPU per object of a point read, 16
times what this module takes (bench/bench_rpm_codec.py), and most of a commissioning scan's
CPU. The answers a point read gets have one simple shape (ASHRAE 135
clause 21, ``ReadAccessResult``: an object identifier, then for each property its
identifier, an optional array index and either application-tagged primitive values or an
error class and code). This module encodes the request and decodes that shape directly
into plain Python values, naming enumerations with bacpypes3's own datatypes so the
result is the same as bacpypes3's path gives after ``plain_value``.

The answer's encoder (``encode_answer``) is the other half, used by the device simulator
to answer point reads as quickly as a field controller does.

Anything else (a constructed or context-tagged value, a date, time, octet string or object
identifier value, a proprietary object type or property, a value whose tag does not match
its property's datatype, or malformed data) raises ``NotSimple``; the caller then decodes
the same answer with bacpypes3, so unusual devices lose nothing.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bacpypes3.apdu import ConfirmedRequestPDU, ConfirmedServiceChoice
from bacpypes3.basetypes import ErrorClass, ErrorCode, ObjectType, PropertyIdentifier
from bacpypes3.constructeddata import Array, List
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import (
    BitString,
    Boolean,
    CharacterString,
    Double,
    Enumerated,
    Integer,
    Real,
    Unsigned,
)
from bacpypes3.vendor import get_vendor_info

READ_PROPERTY_MULTIPLE = int(ConfirmedServiceChoice.readPropertyMultiple)
FIRST_PROPRIETARY_OBJECT_TYPE = 128
FIRST_PROPRIETARY_PROPERTY = 512

# application tag numbers (clause 20.2.1.4)
NULL, BOOLEAN, UNSIGNED, SIGNED, REAL, DOUBLE, OCTETS, CHARACTERS, BITS, ENUMERATED = range(10)
CHARSETS = {0: "utf-8", 3: "utf_32be", 4: "utf_16be", 5: "latin_1"}
SPECIAL_PROPERTIES = ("all", "required", "optional")


class NotSimple(ValueError):
    """The answer is not of the simple shape this module decodes: use bacpypes3."""


class RawReadPropertyMultipleRequest(ConfirmedRequestPDU):
    """An RPM request encoded here; its answer is handed back undecoded (see application.py)."""


@dataclass(frozen=True, slots=True)
class PropertyResult:
    """One property of one object in an RPM answer: a plain value, or the error read instead."""

    object_id: tuple[str, int]
    property: str  # the attribute form, e.g. "presentValue"
    array_index: int | None
    value: Any = None
    error: str = ""  # "class: code" when the device answered an error for this property


# --- request ----------------------------------------------------------------------------------


def _context_unsigned(tag_number: int, value: int) -> bytes:
    length = max(1, (value.bit_length() + 7) // 8)
    return bytes([(tag_number << 4) | 0x08 | length]) + value.to_bytes(length, "big")


@functools.cache
def _object_type_number(name: str) -> int:
    return int(ObjectType(name))


@functools.cache
def _property_number(name: str) -> int:
    return int(PropertyIdentifier(name))


def encode_request(
    address: Address, objects: Iterable[tuple[tuple[str, int], Iterable[str]]]
) -> RawReadPropertyMultipleRequest:
    """A ReadPropertyMultiple request for each ((object type, instance), property names)."""
    data = bytearray()
    for (object_type, instance), properties in objects:
        data += b"\x0c" + ((_object_type_number(object_type) << 22) | instance).to_bytes(4, "big")
        data += b"\x1e"  # opening tag 1: listOfPropertyReferences
        for name in properties:
            data += _context_unsigned(0, _property_number(name))
        data += b"\x1f"
    if not data:
        raise ValueError("a ReadPropertyMultiple request needs at least one object")
    request = RawReadPropertyMultipleRequest(READ_PROPERTY_MULTIPLE, destination=address)
    request.put_data(bytes(data))
    return request


def _object_and_opening_tag(data: bytes, pos: int) -> tuple[tuple[str, int], int]:
    """[0] an object identifier, then opening tag [1]: ((type, instance), position after)."""
    tag, context, length, pos = _header(data, pos)
    if not context or tag != 0 or length != 4 or pos + 4 > len(data):
        raise NotSimple("object identifier expected")
    packed = int.from_bytes(data[pos : pos + 4], "big")
    pos += 4
    if packed >> 22 >= FIRST_PROPRIETARY_OBJECT_TYPE:
        raise NotSimple("proprietary object type")
    if not _is_opening(data, pos, 1):
        raise NotSimple("opening tag 1 expected")
    return (_object_type_name(packed >> 22), packed & 0x3FFFFF), pos + 1


def decode_request(data: bytes) -> list[tuple[tuple[str, int], list[str]]]:
    """The ((object type, instance), property names) of a ReadPropertyMultiple request's
    service data; NotSimple for array indexes, all/required/optional and proprietary ones."""
    specs: list[tuple[tuple[str, int], list[str]]] = []
    pos = 0
    while pos < len(data):
        object_id, pos = _object_and_opening_tag(data, pos)
        names = []
        while not _is_closing(data, pos, 1):
            number, pos = _context_value(data, pos, 0)
            if not (_is_closing(data, pos, 1) or (pos < len(data) and data[pos] >> 3 == 0x01)):
                raise NotSimple("array index or malformed reference")
            name = _property_name(number)
            if name in SPECIAL_PROPERTIES:
                raise NotSimple(f"{name} is answered by bacpypes3")
            names.append(name)
        pos += 1
        specs.append((object_id, names))
    if not specs:
        raise NotSimple("no read access specification")
    return specs


# --- answer -----------------------------------------------------------------------------------


def _header(data: bytes, pos: int) -> tuple[int, bool, int, int]:
    """(tag number, context class, length-value-type, position after the header)."""
    try:
        octet = data[pos]
        number = octet >> 4
        pos += 1
        if number == 15:
            number = data[pos]
            pos += 1
        lvt = octet & 0x07
        context = bool(octet & 0x08)
        if lvt == 5:
            extended = data[pos]
            pos += 1
            if extended == 254:
                lvt = int.from_bytes(data[pos : pos + 2], "big")
                pos += 2
            elif extended == 255:
                lvt = int.from_bytes(data[pos : pos + 4], "big")
                pos += 4
            else:
                lvt = extended
    except IndexError:
        raise NotSimple("truncated tag") from None
    return number, context, lvt, pos


def _is_opening(data: bytes, pos: int, number: int) -> bool:
    return pos < len(data) and data[pos] == (number << 4) | 0x0E


def _is_closing(data: bytes, pos: int, number: int) -> bool:
    return pos < len(data) and data[pos] == (number << 4) | 0x0F


def _context_value(data: bytes, pos: int, number: int) -> tuple[int, int]:
    """An unsigned context-tagged value with tag ``number``: (value, position after it)."""
    tag, context, length, pos = _header(data, pos)
    if not context or tag != number or length > 4 or pos + length > len(data):
        raise NotSimple(f"context tag {number} expected")
    return int.from_bytes(data[pos : pos + length], "big"), pos + length


def _primitive(tag: int, lvt: int, content: bytes) -> Any:
    """One application-tagged primitive as a plain value; enumerations stay numbers here."""
    if tag == NULL:
        return None
    if tag == BOOLEAN:
        return bool(lvt)
    if tag in (UNSIGNED, ENUMERATED):
        return int.from_bytes(content, "big")
    if tag == SIGNED:
        return int.from_bytes(content, "big", signed=True)
    if tag == REAL and len(content) == 4:
        return struct.unpack(">f", content)[0]
    if tag == DOUBLE and len(content) == 8:
        return struct.unpack(">d", content)[0]
    if tag == CHARACTERS and content:
        charset = CHARSETS.get(content[0], "utf-8")  # bacpypes3 reads an unknown set as UTF-8
        try:
            return content[1:].decode(charset)
        except UnicodeDecodeError:
            if charset != "utf-8":
                raise NotSimple("undecodable character string") from None
            return content[1:].decode("latin-1")  # as bacpypes3 does
    if tag == BITS and content:
        unused = content[0]
        bits = [(octet >> (7 - i)) & 1 for octet in content[1:] for i in range(8)]
        return bits[: len(bits) - unused] if unused <= len(bits) else []
    raise NotSimple(f"application tag {tag} is not decoded here")


def _values(data: bytes, pos: int) -> tuple[list[tuple[int, Any]], int]:
    """The application-tagged values up to closing tag 4: ([(tag, value)], position after it)."""
    values: list[tuple[int, Any]] = []
    while not _is_closing(data, pos, 4):
        tag, context, lvt, pos = _header(data, pos)
        if context:
            raise NotSimple("constructed or context-tagged value")
        length = 0 if tag == BOOLEAN else lvt
        if pos + length > len(data):
            raise NotSimple("truncated value")
        values.append((tag, _primitive(tag, lvt, data[pos : pos + length])))
        pos += length
    return values, pos + 1


def _error(data: bytes, pos: int) -> tuple[str, int]:
    """An error class and code up to closing tag 5: ("class: code", position after it)."""
    names = []
    for enumeration in (ErrorClass, ErrorCode):
        tag, context, length, pos = _header(data, pos)
        if context or tag != ENUMERATED or pos + length > len(data):
            raise NotSimple("malformed property access error")
        names.append(str(enumeration(int.from_bytes(data[pos : pos + length], "big"))))
        pos += length
    if not _is_closing(data, pos, 5):
        raise NotSimple("closing tag 5 expected")
    return f"{names[0]}: {names[1]}", pos + 1


def decode_results(data: bytes) -> list[PropertyResult]:
    """Every property of every object of a ReadPropertyMultiple-ACK's service data."""
    results: list[PropertyResult] = []
    pos = 0
    while pos < len(data):
        (object_type, instance), pos = _object_and_opening_tag(data, pos)
        while not _is_closing(data, pos, 1):
            if pos >= len(data):
                raise NotSimple("closing tag 1 expected")
            number, pos = _context_value(data, pos, 2)
            index: int | None = None
            if pos < len(data) and data[pos] >> 4 == 3 and data[pos] & 0x08:
                index, pos = _context_value(data, pos, 3)
            prop = _property_name(number)
            if _is_opening(data, pos, 4):
                values, pos = _values(data, pos + 1)
                value = _converter(object_type, prop, index is None, index == 0)(values)
                results.append(PropertyResult((object_type, instance), prop, index, value))
            elif _is_opening(data, pos, 5):
                error, pos = _error(data, pos + 1)
                results.append(PropertyResult((object_type, instance), prop, index, error=error))
            else:
                raise NotSimple("property value or error expected")
        pos += 1
    return results


@functools.cache
def _object_type_name(number: int) -> str:
    return str(ObjectType(number))


@functools.cache
def _property_name(number: int) -> str:
    if number >= FIRST_PROPRIETARY_PROPERTY:
        raise NotSimple("proprietary property")
    return PropertyIdentifier(number).attr


Values = list[tuple[int, Any]]


@functools.cache
def _converter(object_type: str, prop: str, whole: bool, length_only: bool) -> Callable[[Values], Any]:
    """How the decoded values of ``prop`` of ``object_type`` become one plain value."""
    object_class = get_vendor_info(0).get_object_class(ObjectType(object_type))
    datatype = object_class.get_property_type(prop) if object_class else None
    if datatype is None:  # a property bacpypes3 does not know for this type: no value, as there
        return _no_value
    if isinstance(datatype, type) and issubclass(datatype, Array | List):
        if length_only:
            return _single(_element(Unsigned))
        element = _element(datatype._subtype)
        if whole:
            return lambda values: [element(tag, value) for tag, value in values]
        return _single(element)
    return _single(_element(datatype))


def _no_value(values: Values) -> None:
    return None


def _single(element: Callable[[int, Any], Any]) -> Callable[[Values], Any]:
    def one(values: Values) -> Any:
        if len(values) != 1:
            raise NotSimple("one value expected")
        return element(*values[0])

    return one


PRIMITIVE_TAGS: tuple[tuple[type, int], ...] = (
    (Boolean, BOOLEAN),
    (Unsigned, UNSIGNED),
    (Integer, SIGNED),
    (Double, DOUBLE),  # before Real: bacpypes3's Double is a Real
    (Real, REAL),
    (CharacterString, CHARACTERS),
    (BitString, BITS),
)


def _element(datatype: Any) -> Callable[[int, Any], Any]:
    """How one (tag, value) of ``datatype`` becomes a plain value (a null is always None)."""
    if not isinstance(datatype, type):
        return _not_simple_element
    if issubclass(datatype, Enumerated):
        names: dict[int, str] = {}

        def enumerated(tag: int, value: Any) -> Any:
            if tag == NULL:
                return None
            if tag != ENUMERATED:
                raise NotSimple("enumerated value expected")
            name = names.get(value)
            if name is None:
                name = names[value] = str(datatype(value))
            return name

        return enumerated
    for base, expected in PRIMITIVE_TAGS:
        if issubclass(datatype, base):

            def primitive(tag: int, value: Any, expected: int = expected) -> Any:
                if tag == expected:
                    return value
                if tag == NULL:
                    return None
                raise NotSimple(f"application tag {expected} expected, got {tag}")

            return primitive
    return _not_simple_element


def _not_simple_element(tag: int, value: Any) -> Any:
    raise NotSimple("datatype not decoded here")


# --- answer encoding --------------------------------------------------------------------------


def _application_header(tag: int, length: int) -> bytes:
    if length <= 4:
        return bytes([(tag << 4) | length])
    if length < 254:
        return bytes([(tag << 4) | 5, length])
    if length < 65536:
        return bytes([(tag << 4) | 5, 254]) + length.to_bytes(2, "big")
    return bytes([(tag << 4) | 5, 255]) + length.to_bytes(4, "big")


def _application(tag: int, content: bytes) -> bytes:
    return _application_header(tag, len(content)) + content


def _unsigned_content(value: int) -> bytes:
    if value < 0:
        raise NotSimple("negative unsigned value")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def encode_value(datatype: Any, value: Any) -> bytes:
    """``value`` of ``datatype`` as application-tagged data, as bacpypes3 encodes it."""
    if value is None or not isinstance(datatype, type):
        raise NotSimple("no value or no datatype")
    if issubclass(datatype, Array | List):
        return b"".join(encode_value(datatype._subtype, element) for element in value)
    if issubclass(datatype, Enumerated):
        if not isinstance(value, int) or isinstance(value, bool):
            raise NotSimple("enumerated value expected")
        return _application(ENUMERATED, _unsigned_content(int(value)))
    if issubclass(datatype, Boolean):
        return bytes([(BOOLEAN << 4) | (1 if value else 0)])
    if issubclass(datatype, Unsigned):
        return _application(UNSIGNED, _unsigned_content(int(value)))
    if issubclass(datatype, Integer):
        value = int(value)
        magnitude = value if value >= 0 else ~value  # bits besides the sign bit
        return _application(SIGNED, value.to_bytes((magnitude.bit_length() + 8) // 8, "big", signed=True))
    if issubclass(datatype, Double):
        return _application(DOUBLE, struct.pack(">d", float(value)))
    if issubclass(datatype, Real):
        return _application(REAL, struct.pack(">f", float(value)))
    if issubclass(datatype, CharacterString):
        if getattr(value, "_encoding", 0) != 0:
            raise NotSimple("character set other than UTF-8")
        return _application(CHARACTERS, b"\x00" + str(value).encode("utf-8"))
    if issubclass(datatype, BitString):
        bits = list(value)
        octets = bytearray((len(bits) + 7) // 8)
        for position, bit in enumerate(bits):
            if bit:
                octets[position // 8] |= 0x80 >> (position % 8)
        return _application(BITS, bytes([len(octets) * 8 - len(bits)]) + bytes(octets))
    raise NotSimple(f"{datatype.__name__} is not encoded here")


def value_result(datatype: Any, value: Any) -> bytes:
    """A readResult holding a value: [4] the encoded value [4]."""
    return b"\x4e" + encode_value(datatype, value) + b"\x4f"


def error_result(error_class: str, error_code: str) -> bytes:
    """A readResult holding a propertyAccessError: [5] class, code [5]."""
    return (
        b"\x5e"
        + _application(ENUMERATED, _unsigned_content(int(ErrorClass(error_class))))
        + _application(ENUMERATED, _unsigned_content(int(ErrorCode(error_code))))
        + b"\x5f"
    )


def encode_answer(objects: Iterable[tuple[tuple[str, int], Iterable[tuple[str, bytes]]]]) -> bytes:
    """A ReadPropertyMultiple-ACK's service data: for each ((object type, instance), [(property,
    readResult)]), the readResults made by ``value_result`` or ``error_result``."""
    data = bytearray()
    for (object_type, instance), properties in objects:
        data += b"\x0c" + ((_object_type_number(object_type) << 22) | instance).to_bytes(4, "big")
        data += b"\x1e"
        for name, result in properties:
            data += _context_unsigned(2, _property_number(name)) + result
        data += b"\x1f"
    return bytes(data)
