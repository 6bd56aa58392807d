"""A private network namespace for BACnet tests (see shared BACNET_NOTES.md).

``enter_private_network()`` moves this process (and the children it starts later) into a
new network namespace with only ``lo``, brings it up and adds ``10.77.1.1-40/24`` to it,
so several stacks can each bind their own address on port 47808 and broadcast to each
other. Nothing leaves the namespace; it disappears with the process.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

CLONE_NEWNET = 0x40000000
SUBNET = "10.77.1"
PREFIX = 24
HOSTS = 40


def address(host: int) -> str:
    """``10.77.1.<host>/24``: an address inside the private namespace."""
    return f"{SUBNET}.{host}/{PREFIX}"


def ip(host: int) -> str:
    return f"{SUBNET}.{host}"


# The host's network namespace, kept open so a child can go back to it (to reach the machine's
# PostgreSQL, for example): `nsenter --net=/proc/self/fd/<HOST_NETNS_FD>` with that fd passed on.
HOST_NETNS_FD: int | None = None


def enter_private_network() -> str | None:
    """Enter the namespace; return None on success, or the reason it could not be done."""
    global HOST_NETNS_FD
    if os.environ.get("BMS_TESTS_HOST_NETWORK"):
        return "BMS_TESTS_HOST_NETWORK is set (this run uses the host's network: no BACnet tests)"
    if os.geteuid() != 0:
        return "not root: cannot create a private network namespace"
    HOST_NETNS_FD = os.open("/proc/self/ns/net", os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
    commands = [["ip", "link", "set", "lo", "up"]]
    commands += [
        ["ip", "addr", "add", address(host), "brd", f"{SUBNET}.255", "dev", "lo"]
        for host in range(1, HOSTS + 1)
    ]
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return None
