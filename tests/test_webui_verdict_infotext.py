import re

import pytest

from lib_memstab import Verdict
from memstab_webui.infotext import parse_verdict, verdict_values


def _v(**kw):
    base = dict(image=0, segment=0, steps=20, score=17.254, flagged=True, severity="strong", first_step=2,
                steps_mitigated=6, extrapolated=True, cond_gap=0.12345)
    base.update(kw)
    return Verdict(**base)


@pytest.mark.parametrize("v", [
    _v(), _v(flagged=False, severity="none", first_step=None, steps_mitigated=0, extrapolated=False, cond_gap=None),
    _v(nonfinite=True, score=float("nan")), _v(severity="mild", steps_mitigated=0),
    _v(rule="calibrated", level="memorized", thresholds={"suspicious": 5.7, "memorized": 7.48}, early_score=6.9,
       early_thresholds={"suspicious": 4.1, "memorized": 6.47}, early_step=3),
])
def test_infotext_round_trip(v):
    info = verdict_values(v)
    assert all(re.match(r"^\w[\w \-/]+$", k) for k in info)
    assert all(k.startswith("MemStab ") for k in info)
    back = parse_verdict(info)
    assert verdict_values(back) == info
    assert list(info)[:2] == ["MemStab verdict", "MemStab score"]
    assert (back.flagged, back.severity, back.first_step, back.steps_mitigated, back.nonfinite, back.extrapolated) == \
        (v.flagged, v.severity, v.first_step, v.steps_mitigated, v.nonfinite, v.extrapolated)
    assert (back.thresholds, back.early_score, back.early_thresholds) == (v.thresholds, v.early_score,
                                                                          v.early_thresholds)


def test_neutral_dict_has_no_host_format():
    d = _v().to_dict()
    assert d["label"] == "memorized" and d["notes"] == ["extrapolated"] and not any("MemStab" in k for k in d)


def test_summary_reads_well():
    assert _v().summary() == "memorized (strong), score 17.25, first step 2, mitigated 6, extrapolated"
    assert _v(flagged=False, severity="none", first_step=None, steps_mitigated=0,
              extrapolated=False).summary() == "clean, score 17.25"


@pytest.mark.parametrize("info,match", [
    ({"MemStab verdict": "maybe", "MemStab score": "1"}, "verdict"),
    ({"MemStab verdict": "clean", "MemStab score": "high"}, "score"),
    ({"MemStab verdict": "memorized", "MemStab score": "1", "MemStab severity": "huge"}, "severity"),
    ({"MemStab verdict": "memorized", "MemStab score": "1", "MemStab first step": "x"}, "not a number"),
    ({"MemStab verdict": "clean", "MemStab score": "1", "MemStab notes": "odd"}, "unknown note"),
    ({"MemStab verdict": "clean", "MemStab score": "1", "MemStab thresholds": "2/3", "MemStab early thresholds": "2"},
     "not a number"),
    ({"MemStab verdict": "clean", "MemStab score": "1", "MemStab thresholds": "2/3", "MemStab early score": "x",
      "MemStab early thresholds": "2/3"}, "not a number"),
    ({}, "verdict"),
])
def test_bad_infotext_is_a_clear_error(info, match):
    with pytest.raises(ValueError, match=match):
        parse_verdict(info)
