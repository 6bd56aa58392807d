"""The bacpypes3 application of one simulated device, with the quirks of real field devices.

``SimulatedApplication`` is bacpypes3's ``Application`` with three additions:

* it can go silent (``silent = True``): every incoming request, Who-Is included, is dropped
  and no COV notification goes out, like a controller that lost power or its network;
* when the device does not segment, a response larger than its own maximum APDU is
  replaced by an Abort with reason segmentation-not-supported, as a real non-segmenting
  device answers (bacpypes3 itself only checks the size against the *client's* limit);
* ``protocolServicesSupported`` lists exactly the services it executes (bacpypes3's own
  computation mixes up the confirmed and unconfirmed tables and counts disabled handlers).

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
    ComplexAckPDU,
)
from bacpypes3.app import Application
from bacpypes3.basetypes import Segmentation, ServicesSupported

from discovery.services.bacnet.device import services_supported

logger = logging.getLogger(__name__)

# type/flags, invoke id and service choice of an unsegmented ComplexACK
COMPLEX_ACK_HEADER_LENGTH = 3


class SimulatedApplication(Application):
    """bacpypes3's Application that can go silent and enforces its own maximum APDU."""

    silent: bool = False

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

    async def response(self, apdu: APDU) -> None:  # type: ignore[override]
        """Send a response, or an abort when it is too big for a device that cannot segment."""
        await super().response(self._abort_if_too_long(apdu))

    def _abort_if_too_long(self, apdu: APDU) -> APDU:
        device = self.device_object
        if not isinstance(apdu, ComplexAckPDU) or device is None:
            return apdu
        if device.segmentationSupported in (Segmentation.segmentedTransmit, Segmentation.segmentedBoth):
            return apdu
        length = len(apdu.encode().pduData) + COMPLEX_ACK_HEADER_LENGTH
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


class SimulatedApplicationWithoutRPM(SimulatedApplication):
    """A simulated device that does not execute ReadPropertyMultiple (Reject, unrecognized-service)."""

    do_ReadPropertyMultipleRequest = None  # type: ignore[assignment]
