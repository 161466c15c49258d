"""The guard on a checkpoint that memorizes, inside a running webui (tools/live_webui/memorization_live.py). Needs the
memstab-testbed checkpoint built into the host (tools/live_webui/memorizing_ckpt.py build <webui>); skipped with the
reason unless a live webui is configured (tools/live_webui/host.py) and MEMSTAB_LIVE_MEMORIZING=1 says the host
has it. Two seeds per prompt (about 1.5 minutes on 2 CPU cores); the full measurement is the script's default
(docs/live-memorization.md)."""

import os
import sys
from pathlib import Path

import pytest

KIT = Path(__file__).resolve().parents[2] / "tools" / "live_webui"
sys.path.insert(0, str(KIT))
import host  # noqa: E402

pytestmark = [pytest.mark.live,
              pytest.mark.skipif(not host.configured(), reason=host.SKIP),
              pytest.mark.skipif(not os.environ.get("MEMSTAB_LIVE_MEMORIZING"),
                                 reason="MEMSTAB_LIVE_MEMORIZING=1 is not set (the host does not have the memorizing "
                                        "checkpoint: tools/live_webui/memorizing_ckpt.py build <webui>)")]


def test_memorized_prompts_copy_and_get_a_verdict_through_the_api(live):
    import memorization_live

    rep = memorization_live.main([live.url, "--seeds", "2", "--steps", "20"])
    # measured at Euler 20, 4 seeds (docs/live-memorization.md): strict 0.375, either way 1.000
    assert rep["off_strict"] >= 0.2 and rep["off_loose"] >= 0.9, \
        "the checkpoint no longer reproduces its memorized images in this host"
    assert rep["off_ordinary_strict"] == 0.0
    assert rep["missing_verdicts"] == 0
    assert rep["detect_identical_to_off"] == 1.0
    assert rep["unmitigated_identical"] == 1.0
    assert rep["mitigated_images"] > 0
