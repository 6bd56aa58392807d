"""The bacpypes3 application of the local device.

It keeps bacpypes3's read, discovery and COV services and replaces its write services:
WriteProperty and WritePropertyMultiple are decoded here and handed to the write path,
so every write from the network is validated, persisted and acknowledged the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bacpypes3.apdu import (
    APCISequence,
    ComplexAckPDU,
    IAmRequest,
    ReadPropertyMultipleRequest,
    ReadPropertyRequest,
    SimpleAckPDU,
    WritePropertyMultipleError,
    WritePropertyMultipleRequest,
    WritePropertyRequest,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint
from bacpypes3.basetypes import (
    COVSubscription,
    DeviceAddress,
    ErrorType,
    ListOfCOVSubscription,
    ObjectPropertyReference,
    Recipient,
    RecipientProcess,
)
from bacpypes3.comm import ServiceAccessPoint
from bacpypes3.constructeddata import Array
from bacpypes3.errors import DecodingError, ExecutionError, InvalidTag, ObjectError, PropertyError
from bacpypes3.primitivedata import ObjectIdentifier

from discovery.services.bacnet.objects import from_bacnet_value
from discovery.services.bacnet.point_state import WRITABLE_PROPERTIES, WriteRejected
from discovery.services.bacnet.rpm_codec import RawReadPropertyMultipleRequest

logger = logging.getLogger(__name__)

WILDCARD_DEVICE = 4194303

# (identifier, property, value, priority, requester address) -> None; raises WriteRejected
WriteHandler = Callable[[tuple[str, int], str, Any, "int | None", str], Awaitable[None]]


class RawAnswerServiceAccessPoint(ApplicationServiceAccessPoint):
    """bacpypes3's service access point, except that the answer to a request encoded by
    rpm_codec reaches the application undecoded: rpm_codec decodes it far faster."""

    async def sap_response(self, apdu: Any) -> None:
        if isinstance(apdu, ComplexAckPDU) and not isinstance(apdu, APCISequence) and self._raw(apdu):
            await ServiceAccessPoint.sap_response(self, apdu)
        else:
            await super().sap_response(apdu)

    def _raw(self, apdu: ComplexAckPDU) -> bool:
        for request, _ in self.serviceElement._requests.get(apdu.pduSource, ()):
            if request.apduInvokeID == apdu.apduInvokeID:
                return isinstance(request, RawReadPropertyMultipleRequest)
        return False


class BMSApplication(Application):
    """bacpypes3's Application with the write services routed to ``write_handler`` and the
    answers to rpm_codec's requests left undecoded."""

    write_handler: WriteHandler | None = None
    i_am_listeners: set[Callable[[IAmRequest], None]]  # told of every I-Am as it arrives

    @classmethod
    def from_object_list(cls, *args: Any, **kwargs: Any) -> BMSApplication:
        app = super().from_object_list(*args, **kwargs)
        # bacpypes3 builds the access point itself; the subclass only overrides a method
        app.asap.__class__ = RawAnswerServiceAccessPoint
        app.i_am_listeners = set()
        return app

    async def do_IAmRequest(self, apdu: IAmRequest) -> None:
        await super().do_IAmRequest(apdu)  # checks the required parameters first
        for listener in tuple(self.i_am_listeners):
            try:
                listener(apdu)
            except Exception:
                logger.exception("An I-Am listener failed")

    def _unwildcard(self, object_identifier: ObjectIdentifier) -> ObjectIdentifier:
        """Device instance 4194303 means "the device that receives this"."""
        if object_identifier[1] == WILDCARD_DEVICE and str(object_identifier[0]) == "device":
            return self.device_object.objectIdentifier
        return object_identifier

    def _resolve(self, object_identifier: ObjectIdentifier) -> Any:
        return self.get_object_id(self._unwildcard(object_identifier))

    async def do_ReadPropertyRequest(self, apdu: ReadPropertyRequest) -> None:
        apdu.objectIdentifier = self._unwildcard(apdu.objectIdentifier)
        await super().do_ReadPropertyRequest(apdu)

    async def do_ReadPropertyMultipleRequest(self, apdu: ReadPropertyMultipleRequest) -> None:
        for spec in apdu.listOfReadAccessSpecs:
            spec.objectIdentifier = self._unwildcard(spec.objectIdentifier)
        await super().do_ReadPropertyMultipleRequest(apdu)

    async def _write_one(
        self,
        object_identifier: ObjectIdentifier,
        property_identifier: Any,
        array_index: int | None,
        encoded_value: Any,
        priority: int | None,
        source_address: str,
    ) -> None:
        """Decode and perform one write; raise ExecutionError with the BACnet error."""
        obj = self._resolve(object_identifier)
        if obj is None:
            raise ObjectError("unknown-object")
        attr = property_identifier.attr
        if attr not in obj._elements or inspect.getattr_static(obj, attr, None) is None:
            raise PropertyError("unknown-property")
        if obj is self.device_object or attr not in WRITABLE_PROPERTIES:
            raise PropertyError("write-access-denied")
        property_type = obj.get_property_type(attr)
        if array_index is not None and not issubclass(property_type, Array):
            raise PropertyError("property-is-not-an-array")
        try:
            decoded = encoded_value.cast_out(property_type, null=True)
        except (InvalidTag, DecodingError, TypeError, ValueError):
            raise PropertyError("invalid-data-type") from None
        if self.write_handler is None:
            raise PropertyError("write-access-denied")
        identifier = (str(obj.objectIdentifier[0]), obj.objectIdentifier[1])
        try:
            await self.write_handler(identifier, attr, from_bacnet_value(decoded), priority, source_address)
        except WriteRejected as rejected:
            raise ExecutionError(rejected.error_class, rejected.error_code) from None

    async def do_WritePropertyRequest(self, apdu: WritePropertyRequest) -> None:
        await self._write_one(
            apdu.objectIdentifier,
            apdu.propertyIdentifier,
            apdu.propertyArrayIndex,
            apdu.propertyValue,
            apdu.priority,
            str(apdu.pduSource),
        )
        await self.response(SimpleAckPDU(context=apdu))

    async def do_WritePropertyMultipleRequest(self, apdu: WritePropertyMultipleRequest) -> None:
        """Apply the writes in order; stop at the first failure and say which one it was."""
        for spec in apdu.listOfWriteAccessSpecs:
            for prop in spec.listOfProperties:
                try:
                    await self._write_one(
                        spec.objectIdentifier,
                        prop.propertyIdentifier,
                        prop.propertyArrayIndex,
                        prop.value,
                        prop.priority,
                        str(apdu.pduSource),
                    )
                except ExecutionError as error:
                    reference = ObjectPropertyReference(
                        objectIdentifier=spec.objectIdentifier,
                        propertyIdentifier=prop.propertyIdentifier,
                    )
                    if prop.propertyArrayIndex is not None:
                        reference.propertyArrayIndex = prop.propertyArrayIndex
                    await self.response(
                        WritePropertyMultipleError(
                            errorType=ErrorType(errorClass=error.errorClass, errorCode=error.errorCode),
                            firstFailedWriteAttempt=reference,
                            context=apdu,
                        )
                    )
                    return
        await self.response(SimpleAckPDU(context=apdu))

    def get_active_cov_subscriptions(self) -> ListOfCOVSubscription:
        """The device's activeCovSubscriptions (bacpypes3 leaves the list empty)."""
        subscriptions = []
        loop = asyncio.get_running_loop()
        for detection in self._cov_detections.values():
            for cov in detection.cov_subscriptions:
                remaining = 0
                if cov.cancel_handle is not None:
                    remaining = max(0, round(cov.cancel_handle.when() - loop.time()))
                subscriptions.append(
                    COVSubscription(
                        recipient=RecipientProcess(
                            recipient=Recipient(address=DeviceAddress(cov.client_addr)),
                            processIdentifier=cov.proc_id,
                        ),
                        monitoredPropertyReference=ObjectPropertyReference(
                            objectIdentifier=cov.obj_id, propertyIdentifier="presentValue"
                        ),
                        issueConfirmedNotifications=bool(cov.confirmed),
                        timeRemaining=remaining,
                    )
                )
        return ListOfCOVSubscription(subscriptions)

    async def confirmation(self, apdu: Any) -> None:
        # An answer can arrive just after its request was given up (time-out, shutdown) and before
        # bacpypes3 forgets the request: setting the cancelled future's result would raise.
        try:
            await super().confirmation(apdu)
        except asyncio.InvalidStateError:
            logger.debug("Late answer to a request that was given up: %r", apdu)

    async def indication(self, apdu: Any) -> None:
        # A malformed or hostile request must never take the service down.
        try:
            await super().indication(apdu)
        except Exception:
            logger.warning("Dropped a request that could not be handled: %r", apdu, exc_info=True)
