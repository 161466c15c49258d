import math

import numpy as np
import pytest
import torch

from lib_memstab import ProfileError, Recorder


def _record(rec, latents, sigmas, labels=None):
    """Feed trajectories whose x0 norms are ``latents`` [n_steps, B] (constant images) at the given sigmas."""
    for i, s in enumerate(sigmas):
        b = latents.shape[1]
        d = torch.tensor(latents[i], dtype=torch.float32).view(b, 1, 1, 1).expand(b, 4, 2, 2).contiguous()
        x = d + s * 0.5
        assert rec.observe(x, d, s, sigmas[i + 1] if i + 1 < len(sigmas) else 0.0) is d
    rec.finish_run(labels)


SIGMAS = [10.0, 5.0, 2.0, 1.0, 0.5]


def test_mean_std_match_numpy_and_axes_agree():
    rng = np.random.default_rng(0)
    vals = rng.uniform(1, 2, (len(SIGMAS), 6))
    rec = Recorder()
    _record(rec, vals[:, :3], SIGMAS)
    _record(rec, vals[:, 3:], SIGMAS)
    p = rec.build_profile(axis="log_sigma", statistic="mean_std")
    assert p.grid == sorted(round(math.log(s), 4) for s in SIGMAS)
    order = np.argsort(np.log(SIGMAS))
    assert np.allclose(p.mean["x0"], vals.mean(1)[order], atol=1e-6)
    assert np.allclose(p.std["x0"], vals.std(1, ddof=1)[order], atol=1e-6)
    assert np.allclose(p.mean["update"], 0.5, atol=1e-6)  # rate = ||x - D|| / sigma
    ps = rec.build_profile(axis="step", statistic="mean_std")
    assert ps.grid == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert np.allclose(ps.mean["x0"], vals.mean(1), atol=1e-6)
    assert np.allclose(ps.mean["update"], [0.5 * abs(a - b) for a, b in zip(SIGMAS, SIGMAS[1:] + [0.0])], atol=1e-6)
    pl2 = rec.build_profile(norm="l2", statistic="mean_std")
    assert np.allclose(pl2.mean["x0"], np.array(p.mean["x0"]) * 4, atol=1e-5)  # sqrt(16 elements)
    assert p.meta["trajectories"] == 6 and p.reference_sigmas == SIGMAS


def test_robust_statistic_resists_a_salted_reference_set():
    rng = np.random.default_rng(1)
    vals = rng.normal(1.0, 0.05, (len(SIGMAS), 40))
    vals[:, :3] = 6.0  # three memorized prompts slipped into the reference set
    rec = Recorder()
    _record(rec, vals, SIGMAS, labels=[f"p{i}" for i in range(40)])
    classic = rec.build_profile(statistic="mean_std")
    robust = rec.build_profile(statistic="median_mad")
    assert max(classic.std["x0"]) > 1.0  # the classic region is blown open by the outliers
    assert max(robust.std["x0"]) < 0.1
    worst = {label: z for _, label, z in rec.outliers(robust)}
    assert {"p0", "p1", "p2"} <= set(worst) and min(worst[k] for k in ("p0", "p1", "p2")) > 50
    assert all(z < 6 for k, z in worst.items() if k not in ("p0", "p1", "p2"))  # chance 3-sigma excursions only
    hidden = {label: z for _, label, z in rec.outliers(classic)}
    assert all(hidden.get(k, 0) < 4 for k in ("p0", "p1", "p2"))  # the classic region all but hides them


def test_nonfinite_trajectories_are_dropped_and_too_few_is_an_error():
    rec = Recorder()
    vals = np.ones((len(SIGMAS), 2))
    vals[2, 1] = np.nan
    _record(rec, vals, SIGMAS)
    assert len(rec.trajectories) == 1
    with pytest.raises(ProfileError, match="at least 2"):
        rec.build_profile()
    with pytest.raises(ValueError, match="axis"):
        rec.build_profile(axis="time")


def test_shape_change_starts_a_new_trajectory():
    rec = Recorder()
    for shape in ((2, 4, 2, 2), (2, 4, 4, 4)):
        x = torch.ones(shape)
        rec.observe(x, x * 0.5, 1.0, 0.5)
    rec.finish_run()
    assert [t.shape for t in rec.trajectories] == [(4, 2, 2)] * 2 + [(4, 4, 4)] * 2


def test_reference_scores_are_cross_fitted_and_sorted():
    """Each reference trajectory is scored against a region built without it, so an odd one out scores high (a
    region that included it would have absorbed it), and the scores are the verdict's calibration."""
    rng = np.random.default_rng(1)
    rec = Recorder()
    rates = rng.uniform(0.45, 0.55, 40)
    rates[7] = 3.0  # one reference with a huge update
    for r in rates:
        for i, s in enumerate(SIGMAS):
            d = torch.ones(1, 4, 2, 2)
            rec.observe(d + s * r, d, s, SIGMAS[i + 1] if i + 1 < len(SIGMAS) else 0.0)
        rec.finish_run()
    p = rec.build_profile(folds=10)
    assert len(p.reference_scores) == 40 and p.reference_scores == sorted(p.reference_scores)
    assert p.reference_scores[-1] > 20 * p.reference_scores[-2], "the odd one out, judged without itself"
    own = Recorder.z_scores(p, rec.trajectories[7])[0].max()
    assert p.reference_scores[-1] >= own * 0.9
    loo = rec.cross_fitted_scores(p, folds=1000)  # leave-one-out when folds exceed the trajectories
    assert len(loo) == 40
    assert p.lacks() == []


def test_a_version_1_profile_loads_and_says_what_it_lacks():
    rec = Recorder()
    _record(rec, np.ones((len(SIGMAS), 3)), SIGMAS)
    d = rec.build_profile().to_dict()
    assert d["version"] == 3 and len(d["reference_scores"]) == 3 and len(d["reference_pairs"]["update"]) == 3
    from lib_memstab import Profile

    v2 = Profile.from_dict({**d, "version": 2, "reference_pairs": {}})  # before the joint verdict
    assert v2.lacks() == ["the early score in the verdict (it predates them: calibrate again)"]
    d["version"] = 1
    del d["reference_scores"]
    old = Profile.from_dict(d)
    assert old.reference_scores == [] and "calibrated verdict thresholds" in old.lacks()[0]
    with pytest.raises(ProfileError, match="sorted"):
        Profile.from_dict({**d, "version": 2, "reference_scores": [2.0, 1.0]})
