"""Benchmark: CPU time to decode one ReadPropertyMultiple answer of a point read, rpm_codec
against bacpypes3 (the APDU decode plus the casts its RPM client does).

No network: the answer is what a simulated device sends for the point properties of
``--objects`` objects (a mix of the template object types), made by rpm_codec's encoder,
which the tests check byte for byte against bacpypes3's.

Usage::

    cd /work/main && .venv/bin/python bench/bench_rpm_codec.py --objects 8 --seconds 2
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


def sample_answer(objects: int) -> tuple[bytes, int]:
    """The answer's service data for ``objects`` objects, and the number of properties in it."""
    from discovery.services.bacnet import rpm_codec
    from discovery.services.bacnet.client import point_properties
    from discovery.simulator.application import _read_result
    from discovery.simulator.objects import build_objects

    built = build_objects(objects)
    answer = []
    for obj in built:
        object_type = str(obj.objectIdentifier[0])
        names = point_properties(object_type)
        answer.append(
            ((object_type, obj.objectIdentifier[1]), [(name, _read_result(obj, name)) for name in names])
        )
    return rpm_codec.encode_answer(answer), sum(len(names) for _, names in answer)


def bacpypes3_decode(data: bytes) -> Callable[[], Any]:
    """What bacpypes3 does with an answer: decode the APDU, then cast every value."""
    from bacpypes3.apdu import APCISequence, ComplexAckPDU
    from bacpypes3.constructeddata import Array
    from bacpypes3.primitivedata import Unsigned
    from bacpypes3.vendor import get_vendor_info

    vendor_info = get_vendor_info(0)

    def decode() -> Any:
        apdu = ComplexAckPDU(14, 1)
        apdu.put_data(data)
        ack = APCISequence.decode(apdu)
        values = []
        for result in ack.listOfReadAccessResults:
            object_class = vendor_info.get_object_class(result.objectIdentifier[0])
            for element in result.listOfResults:
                if element.readResult.propertyAccessError:
                    values.append(element.readResult.propertyAccessError)
                    continue
                datatype = object_class.get_property_type(element.propertyIdentifier)
                if datatype is None:
                    continue
                if issubclass(datatype, Array) and element.propertyArrayIndex is not None:
                    datatype = Unsigned if element.propertyArrayIndex == 0 else datatype._subtype
                values.append(element.readResult.propertyValue.cast_out(datatype))
        return values

    return decode


def per_call(function: Callable[[], Any], seconds: float) -> tuple[float, int]:
    """Mean CPU seconds per call over about ``seconds`` of calls (bounded), and the call count."""
    function()  # warm caches
    calls = 0
    begin = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and calls < 1_000_000:
        function()
        calls += 1
    return (time.process_time() - begin) / calls, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=8, help="objects in the answer (1..50)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement (0.1..60)")
    args = parser.parse_args()
    if not 1 <= args.objects <= 50 or not 0.1 <= args.seconds <= 60:
        parser.error("--objects must be 1..50 and --seconds 0.1..60")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_bms.settings")
    import bacpypes3
    import django

    django.setup()
    from discovery.services.bacnet import rpm_codec

    data, properties = sample_answer(args.objects)
    ours = rpm_codec.decode_results(data)
    assert len(ours) == properties, (len(ours), properties)
    rows = [
        ("decode: rpm_codec.decode_results", per_call(lambda: rpm_codec.decode_results(data), args.seconds)),
        ("decode: bacpypes3 APDU decode + casts", per_call(bacpypes3_decode(data), args.seconds)),
    ]
    print(
        f"# python {platform.python_version()} | bacpypes3 {bacpypes3.__version__} | "
        f"command: {shlex.join(sys.orig_argv)}"
    )
    print(f"# one answer: {args.objects} objects, {properties} properties, {len(data)} bytes")
    print()
    print("| what | calls | CPU us per answer | CPU us per object |")
    print("|---|---:|---:|---:|")
    for name, (seconds, calls) in rows:
        print(f"| {name} | {calls} | {seconds * 1e6:,.1f} | {seconds * 1e6 / args.objects:,.1f} |")
    ratio = rows[1][1][0] / rows[0][1][0]
    print()
    print(f"bacpypes3 takes {ratio:.1f} times the CPU of rpm_codec for this answer")


if __name__ == "__main__":
    main()
