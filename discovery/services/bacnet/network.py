"""Where the stack binds: resolve the configured address and make sure it can be used.

bacpypes3 does not fail on a bad address (it retries forever) and binds with SO_REUSEPORT
(a second process on the same address and port starts silently and takes part of the
traffic). These checks run before the stack binds and turn both into clear errors.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import socket
import struct
from pathlib import Path

logger = logging.getLogger(__name__)

_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: beyond net.core.rmem_max, root only


class BindError(RuntimeError):
    """The stack cannot bind where it was asked to; the message says why."""


def _interface_ipv4(name: str) -> ipaddress.IPv4Interface | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        packed = struct.pack("256s", name.encode()[:15])
        try:
            address = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, packed)[20:24])
            netmask = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), _SIOCGIFNETMASK, packed)[20:24])
        except OSError:
            return None
    return ipaddress.IPv4Interface(f"{address}/{netmask}")


def _default_route_interface() -> str | None:
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return fields[0]
    return None


def primary_interface() -> ipaddress.IPv4Interface:
    """The IPv4 address/prefix of the interface holding the default route (else any non-loopback)."""
    candidates = []
    default = _default_route_interface()
    if default:
        candidates.append(default)
    candidates += [name for _, name in socket.if_nameindex() if name not in candidates]
    for name in candidates:
        interface = _interface_ipv4(name)
        if interface is not None and not interface.ip.is_loopback:
            return interface
    return ipaddress.IPv4Interface("127.0.0.1/8")


def resolve_bind_address(setting: str) -> ipaddress.IPv4Interface:
    """Parse BACNET_ADDRESS ("a.b.c.d/prefix"; empty = primary interface) and check it is ours."""
    if not setting.strip():
        interface = primary_interface()
        logger.info("BACNET_ADDRESS not set: using the primary interface address %s", interface)
        return interface
    try:
        interface = ipaddress.IPv4Interface(setting.strip())
    except ValueError:
        raise BindError(
            f"BACNET_ADDRESS={setting!r} is not an IPv4 address with a prefix, e.g. 192.168.1.20/24"
        ) from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((str(interface.ip), 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise BindError(
                    f"BACNET_ADDRESS {interface.ip} does not exist on this host; "
                    "set it to one of this machine's addresses"
                ) from None
            raise BindError(f"cannot bind {interface.ip}: {exc.strerror}") from None
    return interface


def ensure_port_free(address: str, port: int) -> None:
    """Refuse to start when another socket already holds ``address:port``.

    The probe binds without SO_REUSEPORT, so it fails whenever anything (another Django BMS,
    a BACnet tool) holds the port, even one that bound with SO_REUSEPORT itself.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BindError(
                    f"BACnet address {address}:{port} is already in use by another process "
                    "(another Django BMS service or BACnet tool?); stop it or choose another "
                    "BACNET_ADDRESS / BACNET_DEFAULT_PORT"
                ) from None
            raise BindError(f"cannot bind {address}:{port}: {exc.strerror}") from None


def enlarge_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a ``size``-byte receive buffer; return what the kernel reports (Linux reports
    twice the size it was asked for, for its bookkeeping). Without root the kernel caps the
    request at net.core.rmem_max."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
