"""The committed testbed model, its benchmark's quick mode and the demo (the README's main job)."""

import json

import pytest
import torch

from memstab_testbed import data
from memstab_testbed import model as M
from memstab_testbed.metrics import nearest_rmse, rmse
from memstab_testbed.sampling import Sampling, generate

SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def model():
    assert M.WEIGHTS.exists(), f"the committed testbed weights are missing: {M.WEIGHTS}"
    return M.load()


def test_model_memorizes_its_duplicated_captions(model):
    """CFG 7.5, Euler 50: at least 6 memorized captions reproduce their training image (best of 4 seeds)."""
    targets = data.memorized_targets()
    prompts = [t.caption for t in targets for _ in SEEDS]
    images = generate(model, prompts, SEEDS * len(targets), Sampling("euler", 50, 7.5))
    tgt = torch.stack([torch.from_numpy(t.image) for t in targets]).repeat_interleave(len(SEEDS), 0)
    best = rmse(images, tgt).view(len(targets), len(SEEDS)).min(1).values
    assert int((best < 0.15).sum()) >= 6, f"best-of-4 RMSE per memorized caption: {best.tolist()}"


def test_generic_data_has_no_near_duplicates():
    """Fresh draws of the generic families (another seed) stay beyond the reproduction distance of every training image.

    Otherwise a model that merely generalizes would "reproduce" training images and the ordinary-prompt test below
    would measure the data's poverty rather than memorization (measured before the colour field: 40 % of fresh
    draws within RMSE 0.15, the nearest at 0.017).
    """
    _, fresh = data.build_generic_pool(200, seed=1)
    near, _ = nearest_rmse(torch.from_numpy(fresh), data.training_images())
    assert float(near.min()) >= 0.15, f"closest fresh generic sample: RMSE {float(near.min()):.3f}"


def test_the_webui_sized_reference_set_extends_the_benchs_and_stays_apart_from_the_test_prompts():
    refs = data.webui_reference_prompts()
    test = set(data.ordinary_test_prompts()) | set(data.novel_prompts()) | {t.caption for t in data.memorized_targets()}
    assert len(refs) == len(set(refs)) == 50 and refs[:28] == data.reference_prompts()
    assert not set(refs) & test
    assert all(data.family_of(p) in ("shape", "digit") for p in refs[28:])


def test_no_ordinary_prompt_reproduces_a_training_image(model):
    prompts = data.ordinary_test_prompts() + data.novel_prompts() + data.webui_reference_prompts()
    images = generate(model, [p for p in prompts for _ in SEEDS[:2]], SEEDS[:2] * len(prompts),
                      Sampling("euler", 50, 7.5))
    near, _ = nearest_rmse(images, data.training_images())
    assert float(near.min()) >= 0.15, f"closest ordinary generation: RMSE {float(near.min()):.3f}"


def test_bench_quick_meets_its_thresholds():
    from memstab_testbed import bench

    th = json.loads(bench.THRESHOLDS.read_text())["thresholds"]
    assert {"auc_first5", "mr_on", "overhead_ratio"} <= set(th), "quick-mode thresholds must be set"
    report = bench.main(["--quick"])  # raises SystemExit(1) when a headline number regresses
    assert set(report["headline"]) >= {"auc_first5", "tpr1_first5", "wen_auc_first5", "mr_off", "mr_on",
                                       "nonmem_identical_share", "overhead_ratio"}


def test_set_thresholds_moves_each_bound_by_its_margin(tmp_path, monkeypatch):
    from memstab_testbed import bench

    path = tmp_path / "th.json"
    path.write_text(json.dumps({"note": "n", "thresholds": {
        "auc_first5": {"delivered": 0.9, "min": 0.85, "margin": 0.05},
        "mr_on": {"delivered": 0.1, "max": 0.2, "margin": 0.1}}}))
    monkeypatch.setattr(bench, "THRESHOLDS", path)
    bench.set_thresholds({"auc_first5": 0.71234, "mr_on": 0.5})
    th = json.loads(path.read_text())["thresholds"]
    assert th["auc_first5"] == {"delivered": 0.7123, "min": 0.6623, "margin": 0.05}
    assert th["mr_on"] == {"delivered": 0.5, "max": 0.6, "margin": 0.1}
    assert bench.check_thresholds({"auc_first5": 0.66, "mr_on": 0.61}) == ["auc_first5 = 0.6600 < 0.6623",
                                                                            "mr_on = 0.6100 > 0.6"]
    with pytest.raises(SystemExit, match="mr_on would be 1.05"):
        bench.set_thresholds({"auc_first5": 0.7, "mr_on": 0.95})


def test_demo_runs_and_detect_mode_changes_nothing(tmp_path):
    from memstab_testbed import demo

    summary = demo.main(["--out", str(tmp_path), "--steps", "20"])  # asserts detect mode is bit-identical
    assert (tmp_path / "grid.png").exists()
    rows = json.loads((tmp_path / "verdicts.json").read_text())
    assert len(rows) == summary["memorized_total"] + len(data.ordinary_test_prompts()[::3]) * 2
    assert all(r["verdict_mitigate"]["label"] in ("clean", "memorized", "nonfinite") for r in rows)


def test_fidelity_classifier_knows_the_families_of_fresh_draws_and_of_the_memorized_images():
    from memstab_testbed import fidelity

    clf = fidelity.load()
    assert clf.report["heldout_accuracy"] >= 0.95 and clf.report["memorized_targets_in_family"] == 12
    caps, imgs = data.build_generic_pool(200, 99)  # a seed neither its training nor its held-out draws used
    assert fidelity.faithful(clf, torch.from_numpy(imgs), caps).mean() >= 0.93
    targets = data.memorized_targets()
    mem = torch.stack([torch.from_numpy(t.image) for t in targets])
    assert fidelity.faithful(clf, mem, [t.caption for t in targets]).all()
    assert not fidelity.faithful(clf, mem[:1], ["a close-up photo of old coins"]).any(), "a face is no texture"


def test_every_reference_set_of_the_study_stays_apart_from_the_test_and_its_draws_differ():
    from memstab_testbed import refsets

    test = set(data.ordinary_test_prompts()) | set(data.novel_prompts()) | {t.caption for t in data.memorized_targets()}
    sets = refsets.reference_sets(quick=False)
    for rs in sets:
        assert not set(rs["prompts"]) & test, rs["shape"]
        assert len(set(rs["prompts"])) == len(rs["prompts"]) == int(rs["shape"].split(" x ")[0])
        assert len(rs["seeds"]) == int(rs["shape"].split(" x ")[1].split(",")[0])
    for shape in {rs["shape"] for rs in sets}:
        draws = [(tuple(rs["prompts"]), tuple(rs["seeds"])) for rs in sets if rs["shape"] == shape]
        assert len(set(draws)) == len(draws) >= 2, shape
    assert sets[0]["prompts"] == data.reference_prompts() and sets[0]["seeds"] == [1000, 1001]  # the bench's own


def test_the_reference_set_summary_gives_min_median_max_per_shape():
    from memstab_testbed import refsets

    keys = ("copies_memorized", "ordinary_not_clean", "pass_only_copies_memorized", "pass_only_ordinary_not_clean",
            "early_flag_tpr", "early_flag_fpr")
    rows = [{"shape": "a", **dict.fromkeys(keys, v)} for v in (0.5, 0.1, 0.3)]
    rows.append({"shape": "b", **dict.fromkeys(keys, 1.0)})
    out = refsets.summary(rows)
    assert [o["shape"] for o in out] == ["a", "b"] and out[0]["draws"] == 3
    assert out[0]["copies_memorized"] == [0.1, 0.3, 0.5] and out[1]["early_flag_fpr"] == [1.0, 1.0, 1.0]


def test_following_the_report_takes_every_seed_of_the_named_prompts_out_and_nothing_else():
    from types import SimpleNamespace

    from lib_memstab import Recorder
    from memstab_testbed import refsets

    rec = Recorder()
    rec.trajectories = [SimpleNamespace(label=p) for p in ["horse", "star", "horse", "circle", "star"]]
    left = refsets.without(rec, ["horse", "circle"])
    assert [t.label for t in left.trajectories] == ["star", "star"] and len(rec.trajectories) == 5
