"""The database-level tests again, on PostgreSQL (the scale-out database).

The suite runs in a private network namespace that cannot reach the machine's PostgreSQL at
127.0.0.1:5432, so this test runs those test files in a child process put back into the host's
network namespace (as root, with nsenter), against a database of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns

ROOT = Path(__file__).resolve().parent.parent
DATABASE_TESTS = [
    "tests/test_point_state.py",
    "tests/test_remote_store.py",
    "tests/test_commands.py",
    "tests/test_admin.py",
]
POSTGRES_URL = os.environ.get("BMS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/bms")


def in_host_network(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    fd = netns.HOST_NETNS_FD
    return subprocess.run(
        ["nsenter", f"--net=/proc/self/fd/{fd}", *command],
        pass_fds=(fd,),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(os.environ.get("BMS_TESTS_HOST_NETWORK") is not None, reason="this is the inner run")
def test_the_database_tests_pass_on_postgresql():
    if netns.HOST_NETNS_FD is None or shutil.which("nsenter") is None:
        pytest.skip("needs root, nsenter and the host network namespace kept at start-up")
    env = dict(os.environ, DATABASE_URL=POSTGRES_URL, BMS_TESTS_HOST_NETWORK="1")
    probe = in_host_network(
        [
            sys.executable,
            "-c",
            f"import psycopg; psycopg.connect({POSTGRES_URL.rsplit('/', 1)[0] + '/postgres'!r})",
        ],
        env,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {probe.stderr.strip().splitlines()[-1:]}")
    run = in_host_network(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--create-db", *DATABASE_TESTS],
        env,
        timeout=600,
    )
    summary = run.stdout.strip().splitlines()[-1:] if run.stdout.strip() else []
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert summary and " passed" in summary[0] and "failed" not in summary[0], summary
