"""The smoke matrix of tools/live_webui/smoke.py as pytest tests against a running AUTOMATIC1111 webui started with
--api and this extension linked (tools/live_webui/setup.sh builds one). Run in order: check 3 calibrates the profile
that checks 4-10 use. Skipped with the reason unless MEMSTAB_LIVE_URL is set (e.g. http://127.0.0.1:7861);
MEMSTAB_LIVE_LOG may name the server's log file, so that each check also scans it for tracebacks naming the
extension's files."""

import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.live,
              pytest.mark.skipif(not os.environ.get("MEMSTAB_LIVE_URL"),
                                 reason="MEMSTAB_LIVE_URL is not set (no live webui to test against)")]


@pytest.fixture(scope="module")
def smoke():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "live_webui"))
    import smoke as smoke_mod

    return smoke_mod.Smoke(os.environ["MEMSTAB_LIVE_URL"], os.environ.get("MEMSTAB_LIVE_LOG") or None)

CHECKS = [
    (1, "c1"), (2, "c2"), (3, "c3"), (4, "c4"), (5, "c5"),
    (6, "c6"), (7, "c7"), (8, "c8"), (9, "c9"), (10, "c10"), (11, "c11"), (12, "c12"), (13, "c13"),
]


@pytest.mark.parametrize("num,method", CHECKS, ids=[f"check{n}" for n, _ in CHECKS])
def test_smoke_check(smoke, num, method):
    if num == 13 and not os.environ.get("MEMSTAB_LIVE_FAULT_FLAG"):
        pytest.skip("MEMSTAB_LIVE_FAULT_FLAG is not set (the host runs without tools/live_webui/fault_injector)")
    smoke.log.read_new()
    ok, details = getattr(smoke, method)()
    tb = smoke.log.memstab_tracebacks(smoke.log.read_new()) if smoke.log.path else []
    assert not tb, "tracebacks naming memstab in the server log:\n" + "\n\n".join(tb)
    assert ok, "\n".join(details)
