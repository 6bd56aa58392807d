"""The bacpypes3 application of one simulated device, with the quirks of real field devices.

``SimulatedApplication`` is bacpypes3's ``Application`` with three additions:

* it can go silent (``silent = True``): every incoming request, Who-Is included, is dropped
  and no COV notification goes out, like a controller that lost power or its network;
* when the device does not segment, a response larger than its own maximum APDU is
  replaced by an Abort with reason segmentation-not-supported, as a real non-segmenting
  device answers (bacpypes3 itself only checks the size against the *client's* limit);
* ``protocolServicesSupported`` lists exactly the services it executes (bacpypes3's own
  computation mixes up the confirmed and unconfirmed tables and counts disabled handlers);
* it answers ReadPropertyMultiple requests for named properties of its objects with
  ``rpm_codec`` (the same bytes bacpypes3 sends, checked by tests/test_rpm_codec.py), before
  bacpypes3 decodes them: in the commissioning benchmark bacpypes3's decoding of those
  requests and encoding of their answers took most of the simulator's CPU, so one process
  simulating 50 devices measured itself instead of the product (a field controller has a CPU
  of its own). Every other request (all/required/optional, array indexes, unknown objects,
  values rpm_codec does not encode, answers that need segmenting) is answered by bacpypes3.

``SimulatedApplicationWithoutRPM`` also does not execute ReadPropertyMultiple: a client
gets a Reject with reason unrecognized-service and has to fall back to ReadProperty.
"""

from __future__ import annotations

import logging
from typing import Any

from bacpypes3.apdu import (
    APDU,
    AbortPDU,
    AbortReason,
    APCISequence,
    ComplexAckPDU,
    decode_max_apdu_length_accepted,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint
from bacpypes3.basetypes import EventState, Reliability, Segmentation, ServicesSupported
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.pdu import PDU
from bacpypes3.primitivedata import ObjectIdentifier

from discovery.services.bacnet import rpm_codec
from discovery.services.bacnet.device import services_supported

logger = logging.getLogger(__name__)

# type/flags, invoke id and service choice of an unsegmented ComplexACK
COMPLEX_ACK_HEADER_LENGTH = 3
# type/flags, max segments/max response, invoke id and service choice of a confirmed request
CONFIRMED_REQUEST_HEADER_LENGTH = 4


class SimulatedApplication(Application):
    """bacpypes3's Application that can go silent and enforces its own maximum APDU."""

    silent: bool = False
    quick_rpm: bool = True  # False: bacpypes3 answers every ReadPropertyMultiple

    async def indication(self, apdu: APDU) -> None:  # type: ignore[override]
        """Every incoming request (confirmed or not) passes here; a silent device drops it."""
        if self.silent:
            return
        await super().indication(apdu)

    async def do_WhoIsRequest(self, apdu: APDU) -> None:
        """Answer Who-Is with I-Am unless silent."""
        if self.silent:
            return
        await super().do_WhoIsRequest(apdu)

    def cov_notification(self, cov: Any, apdu: APDU) -> None:
        """Send a COV notification unless silent (a dead device notifies nobody)."""
        if self.silent:
            return
        super().cov_notification(cov, apdu)

    @classmethod
    def from_object_list(cls, *args: Any, **kwargs: Any) -> SimulatedApplication:
        app = super().from_object_list(*args, **kwargs)
        # bacpypes3 builds the access point itself; the subclass only overrides a method
        app.asap.__class__ = QuickReadServiceAccessPoint
        return app

    def quick_answer(self, pdu: PDU) -> ComplexAckPDU | None:
        """The answer to a point read (an unsegmented ReadPropertyMultiple request naming
        properties of existing objects), encoded by rpm_codec; None: bacpypes3 answers."""
        data = pdu.pduData
        device = self.device_object
        if (
            not self.quick_rpm
            or self.silent
            or getattr(self, "do_ReadPropertyMultipleRequest", None) is None
            or device is None
            or len(data) < CONFIRMED_REQUEST_HEADER_LENGTH
            or data[0] & 0xF8  # not a confirmed request, or segmented
            or data[3] != rpm_codec.READ_PROPERTY_MULTIPLE
        ):
            return None
        try:
            specs = rpm_codec.decode_request(bytes(data[CONFIRMED_REQUEST_HEADER_LENGTH:]))
            objects = []
            for object_id, names in specs:
                obj = self.get_object_id(ObjectIdentifier(object_id))
                if obj is None:
                    return None
                objects.append((object_id, [(name, _read_result(obj, name)) for name in names]))
        except rpm_codec.NotSimple:
            return None
        try:
            client_limit = decode_max_apdu_length_accepted(data[1] & 0x0F)
        except (ValueError, IndexError):  # a reserved code: bacpypes3 drops the request
            return None
        answer = rpm_codec.encode_answer(objects)
        limit = min(client_limit, device.maxApduLengthAccepted)
        if len(answer) + COMPLEX_ACK_HEADER_LENGTH > limit:
            return None  # bacpypes3 segments it, or aborts when this device cannot
        ack = ComplexAckPDU(rpm_codec.READ_PROPERTY_MULTIPLE, data[2])
        ack.apduSeg = ack.apduMor = False
        ack.pduDestination = pdu.pduSource
        ack.pduUserData = pdu.pduUserData
        ack.pduNetworkPriority = pdu.pduNetworkPriority
        ack.put_data(answer)
        return ack

    async def response(self, apdu: APDU) -> None:  # type: ignore[override]
        """Send a response, or an abort when it is too big for a device that cannot segment."""
        await super().response(self._abort_if_too_long(apdu))

    def _abort_if_too_long(self, apdu: APDU) -> APDU:
        device = self.device_object
        if not isinstance(apdu, ComplexAckPDU) or device is None:
            return apdu
        if device.segmentationSupported in (Segmentation.segmentedTransmit, Segmentation.segmentedBoth):
            return apdu
        data = apdu.encode().pduData if isinstance(apdu, APCISequence) else apdu.pduData
        length = len(data) + COMPLEX_ACK_HEADER_LENGTH
        if length <= device.maxApduLengthAccepted:
            return apdu
        logger.debug(
            "device %s: %d-octet response exceeds max APDU %d, aborting",
            device.objectIdentifier[1],
            length,
            device.maxApduLengthAccepted,
        )
        abort = AbortPDU(True, apdu.apduInvokeID, AbortReason.segmentationNotSupported)
        abort.pduDestination = apdu.pduDestination
        abort.pduUserData = apdu.pduUserData
        return abort

    def get_services_supported(self) -> ServicesSupported:
        """The services this application executes: those with a ``do_<Request>`` handler."""
        return services_supported(self)


class QuickReadServiceAccessPoint(ApplicationServiceAccessPoint):
    """bacpypes3's access point, except that point reads are answered before bacpypes3
    decodes them (its decoding alone costs more than rpm_codec's whole answer)."""

    async def confirmation(self, pdu: PDU) -> None:
        answer = self.serviceElement.quick_answer(pdu)
        if answer is None:
            await super().confirmation(pdu)
        else:
            await self.request(answer)


def _read_result(obj: Any, attr: str) -> bytes:
    value = stored_value(obj, attr) if attr in obj._elements else None
    if value is None:
        return rpm_codec.error_result("property", "unknown-property")
    return rpm_codec.value_result(obj.get_property_type(attr), value)


def stored_value(obj: Any, attr: str) -> Any:
    """A property's value; read from the instance when stored there (bacpypes3's own attribute
    lookup costs 30 us a time), through bacpypes3 otherwise (computed ones)."""
    value = obj.__dict__.get(attr)
    if value is not None:
        return value
    if attr == "statusFlags" and type(obj).statusFlags is LocalObject.statusFlags:
        return _status_flags(obj)
    return getattr(obj, attr)


def _status_flags(obj: Any) -> list[int]:
    """bacpypes3's statusFlags of a local object, computed from the stored values."""
    stored = obj.__dict__
    event_state, reliability = stored.get("eventState"), stored.get("reliability")
    return [
        int(event_state is not None and event_state != EventState.normal),
        int(reliability is not None and reliability != Reliability.noFaultDetected),
        0,
        int(stored.get("outOfService") == 1),
    ]


class SimulatedApplicationWithoutRPM(SimulatedApplication):
    """A simulated device that does not execute ReadPropertyMultiple (Reject, unrecognized-service)."""

    do_ReadPropertyMultipleRequest = None  # type: ignore[assignment]
