"""A private network namespace for running simulated devices without touching a real network.

``enter_private_network(addresses)`` moves this process (and the children it starts
later) into a new network namespace that has only ``lo``, brings ``lo`` up and adds the
given addresses (``10.77.1.101/24`` style) to it with their subnet's broadcast address.
Nothing sent in there leaves it, and the namespace disappears with the process. Linux
only, and only as root.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable

logger = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000


class PrivateNetworkError(RuntimeError):
    """The private network namespace could not be set up."""


def _interfaces(addresses: Iterable[str]) -> list[ipaddress.IPv4Interface]:
    """The distinct interfaces to add, in the order given."""
    unique: dict[ipaddress.IPv4Interface, None] = {}
    for address in addresses:
        unique[ipaddress.IPv4Interface(address)] = None
    return list(unique)


def _unshare_network() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise PrivateNetworkError(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PrivateNetworkError(f"{' '.join(command)} failed: {result.stderr.strip()}")


def enter_private_network(addresses: Iterable[str]) -> None:
    """Enter a new network namespace whose ``lo`` carries ``addresses`` (``A.B.C.D/prefix``).

    Raises ``PrivateNetworkError`` when not root, when ``ip`` is missing or when a step fails.
    """
    interfaces = _interfaces(addresses)
    if os.geteuid() != 0:
        raise PrivateNetworkError("a private network namespace needs root (run as root, or leave it out)")
    ip_command = shutil.which("ip")
    if ip_command is None:
        raise PrivateNetworkError("the 'ip' command (iproute2) is needed to set up a private network")
    _unshare_network()
    _run([ip_command, "link", "set", "lo", "up"])
    for interface in interfaces:
        broadcast = str(interface.network.broadcast_address)
        _run([ip_command, "addr", "add", str(interface), "brd", broadcast, "dev", "lo"])
    logger.info("entered a private network namespace with %s", ", ".join(map(str, interfaces)))
