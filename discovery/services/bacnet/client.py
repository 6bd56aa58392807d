"""Client operations on remote devices: Who-Is, device information, object lists, points, writes.

These functions talk to the network through a bacpypes3 application and return plain data;
they never touch the database. Every BACnet failure comes back as ``BACnetRequestError``
(an ordinary ``Exception`` carrying the error class/code, reject or abort reason), never as
bacpypes3's ``ErrorRejectAbortNack``, which is a ``BaseException``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bacpypes3.apdu import (
    AbortPDU,
    APCISequence,
    ComplexAckPDU,
    ErrorRejectAbortNack,
    ReadPropertyMultipleACK,
    RejectPDU,
)
from bacpypes3.basetypes import PropertyIdentifier
from bacpypes3.constructeddata import Array, Choice, List
from bacpypes3.errors import DecodingError, InvalidTag
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import BitString, Boolean, Enumerated, Null, ObjectIdentifier, Unsigned

from discovery.services.bacnet import rpm_codec

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEVICE_PROPERTIES = (
    "objectName",
    "vendorName",
    "modelName",
    "firmwareRevision",
    "protocolRevision",
)
ANALOG = ("analog-input", "analog-output", "analog-value")
BINARY = ("binary-input", "binary-output", "binary-value")
MULTISTATE = ("multi-state-input", "multi-state-output", "multi-state-value")
COMMANDABLE = ("analog-output", "binary-output", "multi-state-output")
# Bytes a ReadPropertyMultiple answer takes per object (names, units, value, flags, texts) and
# per property when only a few are read; batches are sized so the answer fits one APDU.
RPM_BYTES_PER_OBJECT = 160
RPM_BYTES_PER_VALUE = 12
RPM_MAX_BATCH = 50


class BACnetRequestError(Exception):
    """A request that failed: an Error, Reject or Abort from the device, or no answer."""

    def __init__(
        self, kind: str, message: str, error_class: str = "", error_code: str = "", reason: str = ""
    ) -> None:
        super().__init__(message)
        self.kind = kind  # "error" | "reject" | "abort" | "timeout" | "unknown-device"
        self.error_class = error_class
        self.error_code = error_code
        self.reason = reason

    @property
    def is_timeout(self) -> bool:
        return self.kind == "timeout" or self.reason in ("no-response", "tsm-timeout", "server-timeout")

    def describe(self) -> str:
        if self.is_timeout:
            return "timeout: the device did not answer"
        if self.kind == "error":
            return f"{self.error_class}: {self.error_code}"
        if self.kind in ("reject", "abort"):
            return f"{self.kind}: {self.reason}"
        return str(self)

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "error_class": self.error_class,
            "error_code": self.error_code,
            "reason": self.reason,
            "message": self.describe(),
        }


def _from_nack(nack: ErrorRejectAbortNack) -> BACnetRequestError:
    if isinstance(nack, RejectPDU):
        reason = str(nack.apduAbortRejectReason)
        return BACnetRequestError("reject", f"rejected: {reason}", reason=reason)
    if isinstance(nack, AbortPDU):
        reason = str(nack.apduAbortRejectReason)
        return BACnetRequestError("abort", f"aborted: {reason}", reason=reason)
    error_type = getattr(nack, "errorType", None)
    holder = error_type if error_type is not None else nack
    error_class = str(getattr(holder, "errorClass", "") or "")
    error_code = str(getattr(holder, "errorCode", "") or "")
    return BACnetRequestError("error", f"{error_class}: {error_code}", error_class, error_code)


async def guarded(awaitable: Awaitable[T], timeout: float) -> T:
    """Await a bacpypes3 request; turn its Error/Reject/Abort or a time-out into BACnetRequestError."""
    try:
        async with asyncio.timeout(timeout):
            result = await awaitable
    except ErrorRejectAbortNack as nack:
        raise _from_nack(nack) from None
    except TimeoutError:
        raise BACnetRequestError("timeout", f"no answer within {timeout:g} s") from None
    if isinstance(result, ErrorRejectAbortNack):
        raise _from_nack(result)
    return result


@dataclass
class IAm:
    device_id: int
    address: str
    vendor_id: int
    max_apdu: int
    segmentation: str


async def who_is(
    app: Any,
    *,
    low_limit: int | None = None,
    high_limit: int | None = None,
    address: str | None = None,
    timeout: float = 3.0,
    exclude_device_id: int | None = None,
    on_i_am: Callable[[IAm], None] | None = None,
) -> list[IAm]:
    """Send a Who-Is (global, ranged or directed) and collect the I-Am answers for ``timeout`` s.

    ``on_i_am`` is called once per device as soon as its I-Am arrives (with a BMSApplication;
    with another application, when the listening ends), so work on a device can start while
    the others are still being listened for.
    """
    target = Address(address) if address else None
    station = target if target is not None and (target.is_localstation or target.is_remotestation) else None
    heard: set[int] = set()

    def answered(answer: Any) -> IAm | None:
        """The I-Am as an IAm if it answers this Who-Is (as bacpypes3 matches them), else None."""
        device_id = int(answer.iAmDeviceIdentifier[1])
        if device_id == exclude_device_id or (station is not None and answer.pduSource != station):
            return None
        if low_limit is not None and not low_limit <= device_id <= high_limit:
            return None
        return IAm(
            device_id=device_id,
            address=str(answer.pduSource),
            vendor_id=int(answer.vendorID),
            max_apdu=int(answer.maxAPDULengthAccepted),
            segmentation=str(answer.segmentationSupported),
        )

    def tell(iam: IAm) -> None:
        if on_i_am is not None and iam.device_id not in heard:
            heard.add(iam.device_id)
            on_i_am(iam)

    def listener(answer: Any) -> None:
        iam = answered(answer)
        if iam is not None:
            tell(iam)

    listeners = getattr(app, "i_am_listeners", None) if on_i_am is not None else None
    if listeners is not None:
        listeners.add(listener)
    try:
        answers = await app.who_is(low_limit, high_limit, target, timeout=timeout)
    finally:
        if listeners is not None:
            listeners.discard(listener)
    found: dict[int, IAm] = {}
    for answer in answers:
        iam = answered(answer)
        if iam is not None:
            found[iam.device_id] = iam
            tell(iam)
    return sorted(found.values(), key=lambda iam: iam.device_id)


def plain_value(value: Any) -> Any:
    """A decoded BACnet primitive as a plain Python value (enumerations by name)."""
    if value is None or isinstance(value, Null):
        return None
    if isinstance(value, Choice):  # e.g. a PriorityValue: the chosen element
        return plain_value(getattr(value, value._choice)) if value._choice else None
    if isinstance(value, Enumerated):
        return str(value)
    if isinstance(value, Boolean):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return value


@dataclass
class RemoteObject:
    """What was read of one object of a remote device."""

    object_type: str
    instance: int
    properties: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def point_properties(object_type: str) -> list[str]:
    """The properties read for each point, by object type."""
    names = ["objectName", "description", "presentValue", "statusFlags"]
    if object_type in ANALOG:
        names.append("units")
    if object_type in BINARY:
        names += ["inactiveText", "activeText"]
    if object_type in MULTISTATE:
        names.append("stateText")
    if object_type in ("analog-value", "binary-value", "multi-state-value"):
        names.append("relinquishDefault")  # present only when the value object is commandable
    return names


class DeviceClient:
    """Requests to one remote device, at most ``max_in_flight`` at a time."""

    def __init__(
        self,
        app: Any,
        address: str,
        *,
        max_apdu: int = 1476,
        can_segment: bool = True,
        supports_rpm: bool | None = None,
        max_in_flight: int = 4,
        timeout: float = 6.0,
    ) -> None:
        self.app = app
        self.address = Address(address)
        self.max_apdu = max_apdu
        self.can_segment = can_segment
        self.supports_rpm = supports_rpm
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Send ``request()`` once a slot is free (made only then, so a cancelled wait leaks nothing)."""
        async with self._slots:
            return await guarded(request(), self.timeout)

    async def read(self, object_id: str | ObjectIdentifier, prop: str, index: int | None = None) -> Any:
        object_id = ObjectIdentifier(object_id)
        return await self._call(lambda: self.app.read_property(self.address, object_id, prop, index))

    async def write(self, object_id: str, prop: str, value: Any, priority: int | None = None) -> None:
        """Write ``value``; the stack converts it to the property's datatype first."""
        try:
            target = ObjectIdentifier(object_id)
            await self._call(
                lambda: self.app.write_property(self.address, target, prop, value, priority=priority)
            )
        except (ValueError, TypeError) as exc:
            raise BACnetRequestError(
                "invalid-value", f"cannot send {value!r} as {prop} of {object_id}: {exc}"
            ) from None

    async def read_device_info(self, device_id: int) -> dict[str, Any]:
        """objectName, vendorName, modelName, firmwareRevision, protocolRevision."""
        device = f"device,{device_id}"
        if self.supports_rpm is not False:
            try:
                results = await self.read_multiple([(("device", device_id), DEVICE_PROPERTIES)])
                self.supports_rpm = True
                return {result.property: result.value for result in results if not result.error}
            except BACnetRequestError as error:
                if not _rpm_unsupported(error):
                    raise
                self.supports_rpm = False
        info: dict[str, Any] = {}
        for prop in DEVICE_PROPERTIES:
            try:
                info[prop] = plain_value(await self.read(device, prop))
            except BACnetRequestError as error:
                if error.is_timeout:
                    raise
        return info

    async def read_object_list(self, device_id: int) -> list[tuple[str, int]]:
        """The device's objectList: whole when it fits, else element by element."""
        device = f"device,{device_id}"
        whole_fits = True
        if not self.can_segment:
            length = int(await self.read(device, "objectList", 0))
            # an object identifier is 5 bytes encoded; leave room for the headers
            whole_fits = length * 5 + 20 <= self.max_apdu
        if whole_fits:
            try:
                return [_oid(item) for item in await self.read(device, "objectList")]
            except BACnetRequestError as error:
                if error.kind != "abort" or error.is_timeout:
                    raise
                logger.info("objectList of device %s too large to read whole: %s", device_id, error)
            length = int(await self.read(device, "objectList", 0))
        reads = [self.read(device, "objectList", index) for index in range(1, length + 1)]
        return [_oid(item) for item in await asyncio.gather(*reads)]

    def rpm_batch_size(self, properties: list[str] | None = None) -> int:
        """Objects per ReadPropertyMultiple so that the answer fits one APDU (no segmentation:
        unsegmented answers are the robust path, and batches run side by side instead)."""
        per_object = RPM_BYTES_PER_VALUE * len(properties) + 8 if properties else RPM_BYTES_PER_OBJECT
        return max(1, min(RPM_MAX_BATCH, (self.max_apdu - 40) // per_object))

    async def read_objects(
        self, identifiers: Iterable[tuple[str, int]], properties: list[str] | None = None
    ) -> list[RemoteObject]:
        """Read ``properties`` (default: the point properties) of each object.

        ReadPropertyMultiple in batches that fit the device, up to ``max_in_flight`` at a time,
        or ReadProperty one by one when the device does not support RPM. Raises ``PartialRead``
        (holding what was read) when the device stops answering part-way.
        """
        objects = [RemoteObject(object_type, instance) for object_type, instance in identifiers]
        if not objects:
            return []
        batch = self.rpm_batch_size(properties)
        chunks = [objects[start : start + batch] for start in range(0, len(objects), batch)]
        done: list[RemoteObject] = []
        if self.supports_rpm is not False:
            try:
                await self._rpm_batch(chunks[0], properties)  # also tells whether RPM is served
            except BACnetRequestError as error:
                if not _rpm_unsupported(error):
                    raise PartialRead(done, error) from None
                logger.info("Device at %s does not support ReadPropertyMultiple", self.address)
                self.supports_rpm = False
            else:
                done += chunks[0]
                results = await asyncio.gather(
                    *(self._rpm_batch(chunk, properties) for chunk in chunks[1:]), return_exceptions=True
                )
                failure: BACnetRequestError | None = None
                for chunk, result in zip(chunks[1:], results, strict=True):
                    if isinstance(result, BACnetRequestError):
                        failure = failure or result
                    elif isinstance(result, BaseException):
                        raise result
                    else:
                        done += chunk
                if failure is not None:
                    raise PartialRead(done, failure)
                return done
        try:
            await asyncio.gather(*(self._read_with_rp(obj, properties) for obj in objects))
        except BACnetRequestError as error:
            raise PartialRead([o for o in objects if o.properties], error) from None
        return objects

    async def _rpm_batch(self, objects: list[RemoteObject], properties: list[str] | None) -> None:
        """One batch; split in two when the device aborts it as too long, retried once on a time-out."""
        for attempt in (1, 2):
            try:
                await self._read_with_rpm(objects, properties)
                self.supports_rpm = True
                return
            except BACnetRequestError as error:
                if error.kind == "abort" and not error.is_timeout and len(objects) > 1:
                    half = len(objects) // 2
                    await self._rpm_batch(objects[:half], properties)
                    await self._rpm_batch(objects[half:], properties)
                    return
                if not error.is_timeout or attempt == 2:
                    raise

    async def _read_with_rpm(self, objects: list[RemoteObject], properties: list[str] | None) -> None:
        results = await self.read_multiple(
            [
                ((obj.object_type, obj.instance), properties or point_properties(obj.object_type))
                for obj in objects
            ]
        )
        by_id = {(obj.object_type, obj.instance): obj for obj in objects}
        for result in results:
            obj = by_id.get(result.object_id)
            if obj is None:
                continue
            if result.error:
                obj.errors[result.property] = result.error
            else:
                obj.properties[result.property] = result.value

    async def read_multiple(
        self, request: Iterable[tuple[tuple[str, int], Iterable[str]]]
    ) -> list[rpm_codec.PropertyResult]:
        """One ReadPropertyMultiple: each ((object type, instance), property names) -> plain values."""
        answer = await self._call(lambda: self.app.request(rpm_codec.encode_request(self.address, request)))
        if isinstance(answer, ComplexAckPDU) and not isinstance(answer, APCISequence):  # undecoded
            try:
                return rpm_codec.decode_results(bytes(answer.pduData))
            except rpm_codec.NotSimple as reason:
                logger.debug("RPM answer from %s decoded by bacpypes3: %s", self.address, reason)
                try:
                    answer = APCISequence.decode(answer)
                except Exception as exc:  # what bacpypes3 answers a malformed packet with
                    raise BACnetRequestError(
                        "error", f"undecodable answer: {exc}", "communication", "invalid-tag"
                    ) from None
        if not isinstance(answer, ReadPropertyMultipleACK):
            raise BACnetRequestError(
                "error",
                f"{type(answer).__name__} is no answer to ReadPropertyMultiple",
                "communication",
                "invalid-tag",
            )
        return await self._bacpypes3_results(answer)

    async def _bacpypes3_results(self, answer: ReadPropertyMultipleACK) -> list[rpm_codec.PropertyResult]:
        """The results of an answer bacpypes3 decoded, cast as bacpypes3's own RPM client does."""
        vendor_info = await self.app.get_vendor_info(device_address=self.address)
        results = []
        for access_result in answer.listOfReadAccessResults:
            object_id = _oid(access_result.objectIdentifier)
            object_class = vendor_info.get_object_class(access_result.objectIdentifier[0])
            for element in access_result.listOfResults or []:
                prop = PropertyIdentifier(element.propertyIdentifier).attr
                index = element.propertyArrayIndex
                error = element.readResult.propertyAccessError
                if error:
                    message = f"{error.errorClass}: {error.errorCode}"
                    results.append(rpm_codec.PropertyResult(object_id, prop, index, error=message))
                    continue
                datatype = object_class.get_property_type(prop) if object_class else None
                if datatype is not None and issubclass(datatype, Array) and index is not None:
                    datatype = Unsigned if index == 0 else datatype._subtype
                try:
                    value = None if datatype is None else element.readResult.propertyValue.cast_out(datatype)
                except (DecodingError, InvalidTag, TypeError, ValueError) as exc:
                    message = f"undecodable value: {exc}"
                    results.append(rpm_codec.PropertyResult(object_id, prop, index, error=message))
                    continue
                if isinstance(value, Array | List | BitString):  # as rpm_codec gives them
                    value = [plain_value(item) for item in value]
                results.append(rpm_codec.PropertyResult(object_id, prop, index, plain_value(value)))
        return results

    async def _read_with_rp(self, obj: RemoteObject, properties: list[str] | None) -> None:
        object_id = f"{obj.object_type},{obj.instance}"
        for prop in properties or point_properties(obj.object_type):
            try:
                obj.properties[prop] = await self.read(object_id, prop)
            except BACnetRequestError as error:
                if error.is_timeout:
                    raise
                obj.errors[prop] = error.describe()


class PartialRead(Exception):
    """A point read that stopped part-way; ``objects`` holds what was read."""

    def __init__(self, objects: list[RemoteObject], error: BACnetRequestError) -> None:
        super().__init__(str(error))
        self.objects = objects
        self.error = error


def _oid(value: Any) -> tuple[str, int]:
    return (str(value[0]), int(value[1]))


def _rpm_unsupported(error: BACnetRequestError) -> bool:
    return (error.kind == "reject" and error.reason == "unrecognized-service") or (
        error.kind == "error" and error.error_code in ("service-request-denied", "unrecognized-service")
    )
