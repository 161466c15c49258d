import math

import pytest
import torch
from conftest import REF_SIGMAS, flat_profile, profile_at_z

from lib_memstab import Guard, GuardConfig
from lib_memstab.observation import flat_norm, observe_step

S0, S1 = REF_SIGMAS[0], REF_SIGMAS[1]  # an early step of the reference schedule


def batch(b=3, a=2.0, r=1.0, sigma=S0, shape=(4, 4, 4), seed=0):
    """x and denoised with known norms: rms(denoised) ~ a, rms(x - denoised) / sigma ~ r (random directions)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn((b, *shape), generator=g)
    d = d / flat_norm(d).view(-1, 1, 1, 1) * a
    e = torch.randn((b, *shape), generator=g)
    e = e / flat_norm(e).view(-1, 1, 1, 1) * r * sigma
    return d + e, d


def guard_at(z, mode="mitigate", sigma=S0, sigma_next=S1, b=3, **cfg):
    """A guard whose profile puts image 0 of ``batch()`` at z-scores z; the other images sit on the reference means
    of the update and x0_hat norms (in the region)."""
    x, d = batch(b, sigma=sigma)
    p = profile_at_z(x, d, sigma, sigma_next, z)
    xo, do = batch(b, a=p.mean["x0"][0], r=p.mean["update"][0], sigma=sigma, seed=1)
    x, d = torch.cat([x[:1], xo[1:]]), torch.cat([d[:1], do[1:]])
    cfg.setdefault("mitigation", "paper")  # most tests here check the paper's clamps; repel has its own below
    return Guard(p, GuardConfig(mode=mode, **cfg)), x, d


def test_detect_returns_the_very_tensor_and_off_does_nothing():
    g, x, d = guard_at((20, 0, 20), mode="detect")
    assert g.observe(x, d, S0, S1) is d
    assert g.verdicts()[0].flagged
    off = Guard(flat_profile(), GuardConfig(mode="off"))
    assert off.observe(x, d, S0, S1) is d and off.verdicts() == []


@pytest.mark.parametrize("z,flagged,severity", [
    ((5, 0, 5), True, "mild"), ((5, 0, 20), True, "strong"), ((5, 0, 1), False, "none"),
    ((1, 0, 20), False, "none"), ((2.9, 9, 2.9), False, "none"),
])
def test_detection_needs_update_and_x0_out_of_region(z, flagged, severity):
    g, x, d = guard_at(z, mode="detect", verdict="paper")
    g.observe(x, d, S0, S1)
    v = g.verdicts()[0]
    assert (v.flagged, v.severity) == (flagged, severity)
    assert v.first_step == (0 if flagged else None)
    assert v.score == pytest.approx(z[0], abs=1e-3)
    assert v.z_x0[0] == pytest.approx(z[2], abs=1e-3)


def test_flag_is_latched_with_the_severity_of_its_first_step():
    x, d = batch(1)
    p = profile_at_z(x, d, S0, S1, (5, 0, 5))
    g = Guard(p, GuardConfig(mode="detect"))
    x0, d0 = batch(1, a=p.mean["x0"][0], r=p.mean["update"][0])
    g.observe(x0, d0, S0, S1)  # step 0: on the reference means
    g.observe(x, d, S0, S1)  # step 1: both at z 5 -> flagged mild
    x2, d2 = batch(1, a=2.0 + 20 * 0.05)  # x0 now at z ~ 25 (strong) but the severity is latched
    g.observe(x2, d2, S0, S1)
    v = g.verdicts()[0]
    assert (v.flagged, v.severity, v.first_step) == (True, "mild", 1)
    assert v.z_x0[2] > 14


def test_mitigation_changes_only_flagged_rows_bit_for_bit():
    x, d = batch(4)
    p = profile_at_z(x, d, S0, S1, (20, 0, 20))
    # images 1..3 are brought back into the region: same statistics, scaled inputs
    x_in, d_in = batch(4, a=1.0, r=1.0 - 20 * 0.05 / 1.0)
    x = torch.cat([x[:1], x_in[1:]])
    d = torch.cat([d[:1], d_in[1:]])
    g = Guard(p, GuardConfig(mode="mitigate"))
    out = g.observe(x, d, S0, S1)
    assert out is not d and out.dtype == d.dtype
    assert torch.equal(out[1:], d[1:])
    assert not torch.equal(out[0], d[0])
    vs = g.verdicts()
    assert [v.flagged for v in vs] == [True, False, False, False]
    assert vs[0].mitigated == [0] and vs[0].steps_mitigated == 1


def test_rescale_puts_x0_on_the_reference_mean_when_no_clamp_binds():
    g, x, d = guard_at((5, 0, 5), gamma=1000.0)
    out = g.observe(x, d, S0, S1)
    mean_x0 = g.profile.mean["x0"][0]
    assert float(flat_norm(out[:1])) == pytest.approx(mean_x0, rel=1e-5)
    cos = torch.nn.functional.cosine_similarity(out[:1].flatten(1), d[:1].flatten(1))
    assert float(cos) == pytest.approx(1.0, abs=1e-6)  # direction kept


def _next_latent(x, out):
    return x + (S1 - S0) * (x - out) / S0  # the Euler/DDIM step the sampler will take with ``out``


def _region(p, q, gamma):
    return p.mean[q][0] - gamma * p.std[q][0], p.mean[q][0] + gamma * p.std[q][0]


def test_strong_case_clamps_the_update_then_the_next_latent():
    # with a wide latent region, only the update clamp binds: the step's update lands on the region
    g, x, d = guard_at((15, 0, 30))
    g.profile.std["latent"] = [100.0] * len(g.profile.grid)
    g.profile._tables.clear()
    out = g.observe(x, d, S0, S1)
    assert g.verdicts()[0].severity == "strong"
    lo, hi = _region(g.profile, "update", g.config.gamma)
    rate = float(flat_norm(_next_latent(x[:1], out[:1]) - x[:1])) / abs(S1 - S0)
    assert lo - 1e-4 <= rate <= hi + 1e-4
    # the latent clamp comes last (as in the paper), so the next latent always ends in its region
    g, x, d = guard_at((15, 0, 30))
    out = g.observe(x, d, S0, S1)
    lo, hi = _region(g.profile, "latent", g.config.gamma)
    assert lo - 1e-4 <= float(flat_norm(_next_latent(x[:1], out[:1]))) <= hi + 1e-4


def test_mild_cases_are_corrected_only_early_strong_ones_always():
    late, late_next = REF_SIGMAS[5], REF_SIGMAS[6]
    for z, expect_late in (((5, 0, 5), False), ((5, 0, 20), True)):
        x, d = batch(1, sigma=late)
        p = profile_at_z(x, d, late, late_next, z)
        g = Guard(p, GuardConfig(mode="mitigate", mitigation="paper"))
        out = g.observe(x, d, late, late_next)
        v = g.verdicts()[0]
        assert v.flagged and (v.steps_mitigated == 1) == expect_late
        assert torch.equal(out, d) != expect_late
    # the same mild case early in the schedule is corrected
    g, x, d = guard_at((5, 0, 5))
    g.observe(x, d, S0, S1)
    assert g.verdicts()[0].steps_mitigated == 1


def test_nonfinite_images_are_marked_and_never_corrected():
    g, x, d = guard_at((20, 0, 20), b=2)
    x = x.clone()
    x[1, 0, 0, 0] = math.nan
    d = d.clone()
    d[1] = d[0]  # would be flagged and corrected if it were finite
    out = g.observe(x, d, S0, S1)
    vs = g.verdicts()
    assert vs[1].nonfinite and not vs[1].flagged and vs[1].label == "nonfinite"
    assert torch.equal(out[1], d[1])
    assert vs[0].flagged and not vs[0].nonfinite and torch.isfinite(out[0]).all()


def test_zero_norms_never_divide_by_zero():
    p = flat_profile(update=1.0, latent=1.0, x0=1.0)
    g = Guard(p, GuardConfig(mode="mitigate"))
    z = torch.zeros(2, 4, 4, 4)
    out = g.observe(z, z.clone(), S0, S1)
    assert torch.isfinite(out).all()
    v = g.verdicts()[0]
    assert all(math.isfinite(t) for t in v.z_update + v.z_latent + v.z_x0)


def test_new_shape_or_batch_starts_a_new_segment():
    g = Guard(flat_profile(2.0, 2.0, 2.0), GuardConfig(mode="mitigate"))
    x, d = batch(2)
    for _ in range(3):
        g.observe(x, d, S0, S1)
    x2, d2 = batch(2, shape=(4, 8, 8))
    g.observe(x2, d2, S1, REF_SIGMAS[2])
    x3, d3 = batch(1, shape=(4, 8, 8))
    g.observe(x3, d3, S1, REF_SIGMAS[2])
    vs = g.verdicts()
    assert [(v.segment, v.image, v.steps) for v in vs] == [(0, 0, 3), (0, 1, 3), (1, 0, 1), (1, 1, 1), (2, 0, 1)]


def test_steps_beyond_the_profile_are_flagged_as_extrapolated():
    g = Guard(flat_profile(2.0, 2.0, 2.0), GuardConfig(mode="detect"))
    x, d = batch(1, sigma=40.0)
    g.observe(x, d, 40.0, S0)
    assert g.verdicts()[0].extrapolated
    gs = Guard(flat_profile(2.0, 2.0, 2.0, axis="step", n=3), GuardConfig(mode="detect"))
    for _ in range(4):
        gs.observe(x, d, S0, S1)
    v = gs.verdicts()[0]
    assert v.extrapolated and v.steps == 4


def test_sigma_as_float_scalar_tensor_or_per_image_agree():
    results = []
    for s, sn in ((S0, S1), (torch.tensor(S0), torch.tensor(S1)), (torch.full((3,), S0), torch.full((3,), S1))):
        g, x, d = guard_at((20, 0, 20))
        results.append(g.observe(x, d, s, sn))
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_half_precision_inputs():
    g, x, d = guard_at((20, 0, 20))
    out = g.observe(x.half(), d.half(), S0, S1)
    assert out.dtype == torch.float16
    assert torch.equal(out[1:], d.half()[1:]) and not torch.equal(out[0], d.half()[0])


def test_score_window_and_cond_gap():
    x, d = batch(1)
    p = profile_at_z(x, d, S0, S1, (2, 0, 0))
    g = Guard(p, GuardConfig(mode="detect", score_window=2, verdict="paper"))
    xs = [x, x, batch(1, r=1.0 + 10 * 0.05)[0]]  # the third step has a large update
    for i, xi in enumerate(xs):
        g.observe(xi, d, S0, S1, cond_gap=torch.tensor([float(i)]))
    v = g.verdicts()[0]
    assert v.score == pytest.approx(2, abs=1e-3)  # the large third step is outside the window
    assert v.z_update[2] > 9
    assert v.cond_gap == pytest.approx(0.5)  # mean over the window


def test_memory_is_preallocated_and_bounded():
    g = Guard(flat_profile(2.0, 2.0, 2.0), GuardConfig(mode="mitigate"), steps=50)
    x, d = batch(2)
    g.observe(x, d, S0, S1)
    buf = g.segments[0].trace
    for _ in range(49):
        g.observe(x, d, S0, S1)
    assert g.segments[0].trace is buf  # no per-step growth within the expected length
    for _ in range(60):
        g.observe(x, d, S0, S1)
    assert g.segments[0].trace.shape[0] == 200 and len(g.verdicts()[0].z_update) == 110


def test_step_axis_profile_uses_raw_update_norms():
    x, d = batch(1)
    o = observe_step(x, d, S0, S1)
    p = flat_profile(float(o.update[0]), 0.1, float(o.x0[0]), std=0.05, axis="step")
    g = Guard(p, GuardConfig(mode="detect"))
    g.observe(x, d, S0, S1)
    assert g.verdicts()[0].z_update[0] == pytest.approx(0.0, abs=1e-3)


def test_new_segment_on_request_keeps_verdicts_apart():
    g, x, d = guard_at((20, 0, 20), mode="detect")
    g.observe(x, d, S0, S1)
    g.new_segment()
    g.observe(x * 0 + d, d, S0, S1)  # same shape, a second pass: its own latched state
    vs = g.verdicts()
    assert [(v.segment, v.image) for v in vs][:4] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert vs[0].flagged and not vs[3].flagged


@pytest.mark.parametrize("z,level", [((2.0, 0, 0), "clean"), ((5.0, 0, 0), "suspicious"), ((9.0, 0, 0), "memorized"),
                                     ((9.0, 0, 9.0), "memorized")])
def test_the_final_verdict_agrees_with_its_score(z, level):
    """Calibrated rule: the whole-pass score against the reference runs' own scores; never 'clean' above the
    suspicious threshold, whatever the early (AND) rule did."""
    g, x, d = guard_at(z, mode="detect")
    g.profile.reference_scores = sorted([1.0] * 97 + [3.0, 4.0, 8.0])  # 100 references
    g.observe(x, d, S0, S1)
    v = g.verdicts()[0]
    assert v.thresholds == {"suspicious": 3.0, "memorized": 8.0}  # exceeded by 2 % and 0.5 % (none) of them
    assert v.level == level and v.flagged == (level != "clean") and v.label == level
    assert v.rule == "calibrated" and v.thresholds_from.startswith("reference runs (100)")
    assert v.early_flag == (z[2] > 3) and (v.score > v.thresholds["suspicious"]) == v.flagged
    assert g.verdicts()[1].level == "clean", "the images on the reference means"


def test_a_profile_without_reference_scores_falls_back_to_tau_and_says_so():
    g, x, d = guard_at((5.0, 0, 0), mode="detect")
    assert g.profile.reference_scores == [] and g.profile.lacks()
    g.observe(x, d, S0, S1)
    v = g.verdicts()[0]
    assert v.thresholds == {"suspicious": 3.0, "memorized": 14.0} and v.level == "suspicious"
    assert "calibrate again" in v.thresholds_from and not v.early_flag


@pytest.mark.parametrize("z_update,sigma,fires", [(5.0, S0, True), (3.0, S0, False), (5.0, REF_SIGMAS[5], False)])
def test_the_early_flag_fires_in_its_window_above_its_calibrated_threshold(z_update, sigma, fires):
    """Guard v2's early flag: the early signal against the references' own early scores (100 of them: at most 1 %
    above the threshold, here 4.0), only inside the first early_fraction of the schedule."""
    i = REF_SIGMAS.index(sigma)
    nxt = REF_SIGMAS[i + 1]
    g, x, d = guard_at((z_update, 0, 0), mode="detect", sigma=sigma, sigma_next=nxt)
    g.profile.reference_early = {"update": sorted([1.0] * 98 + [4.0, 6.0])}
    g = Guard(g.profile, g.config)
    g.observe(x, d, sigma, nxt)
    v = g.verdicts()[0]
    assert (v.early_step == 0) == fires and g.verdicts()[1].early_step is None
    assert ("early flag at step 0" in v.summary()) == fires


def gap_profile(reference_scores=None, sigma=S0, sigma_next=S1):
    """Two images at update z 1 and a profile with cond-gap statistics (gap 0.1 +- 0.01) and early-flag thresholds
    at 4 (100 references); a cond gap of 0.2 is then gap z 10."""
    g, x, d = guard_at((1.0, 0, 0), mode="detect", b=2, sigma=sigma, sigma_next=sigma_next)
    p = g.profile
    n = len(p.grid)
    p.mean["gap"], p.std["gap"] = [0.1] * n, [0.01] * n
    p.reference_early = {"update": sorted([1.0] * 98 + [4.0, 6.0]), "max": sorted([1.0] * 98 + [4.0, 6.0])}
    if reference_scores is not None:
        p.reference_scores = reference_scores
    p.__post_init__()  # validate and forget the cached tables
    return p, x, d


def test_the_early_flag_uses_the_cond_gap_where_the_host_gives_it():
    from lib_memstab.rules import early_signal

    p, x, d = gap_profile()
    g = Guard(p, GuardConfig(mode="detect"))
    g.observe(x, d, S0, S1, cond_gap=torch.tensor([0.2, 0.1]))  # image 0: gap z = 10; image 1: on the centre
    v0, v1 = g.verdicts()
    assert v0.early_step == 0 and v1.early_step is None
    assert v0.z_gap[0] == pytest.approx(10.0, rel=1e-3) and v1.z_gap[0] == pytest.approx(0.0, abs=1e-3)
    g2 = Guard(p, g.config)
    g2.observe(x, d, S0, S1)  # no gap (Forge): the update z alone, against the update references
    assert g2.verdicts()[0].early_step is None
    assert float(early_signal(torch.tensor([1.0]), torch.tensor([float("nan")]))) == 1.0


# ---------------------------------------------------------------------------------------------- repel mitigation
def test_repel_removes_the_anchor_component_and_keeps_the_channel_means():
    from lib_memstab.correction import repelled_denoised

    g = torch.Generator().manual_seed(3)
    anchor = torch.randn(2, 4, 8, 8, generator=g)
    other = torch.randn(2, 4, 8, 8, generator=g)
    means = anchor.mean(dim=(2, 3), keepdim=True)
    out = repelled_denoised(anchor, anchor, 1.0)  # the anchor itself: only its channel means remain
    assert torch.allclose(out, means.expand_as(out), atol=1e-5)
    d = anchor + other
    half = repelled_denoised(d, anchor, 0.5)
    full = repelled_denoised(d, anchor, 1.0)
    u = (anchor - means).flatten(1)
    u = u / u.norm(dim=1, keepdim=True)

    def along(v):
        return ((v - v.mean(dim=(2, 3), keepdim=True)).flatten(1) * u).sum(1)

    assert torch.allclose(along(full), torch.zeros(2), atol=1e-4)
    assert torch.allclose(along(half), along(d) / 2, atol=1e-4)
    assert torch.allclose(full.mean(dim=(2, 3)), d.mean(dim=(2, 3)), atol=1e-5)


def test_repel_arms_above_the_suspicious_threshold_latches_its_anchor_and_spares_other_rows():
    x, d = batch(3)
    p = profile_at_z(x, d, S0, S1, (20, 0, 0))  # image 0: update z 20, x0 in region (the AND rule would not fire)
    p.reference_scores = [1.0, 2.0, 3.0, 4.0, 5.0] * 4  # thresholds well below 20, far above the others' z
    xo, do = batch(3, a=p.mean["x0"][0], r=p.mean["update"][0], seed=1)
    x, d = torch.cat([x[:1], xo[1:]]), torch.cat([d[:1], do[1:]])
    g = Guard(p, GuardConfig(mode="mitigate", mitigation="repel"))
    out = g.observe(x, d, S0, S1)
    assert torch.equal(out[1:], d[1:]), "rows that never arm are bit-for-bit the input"
    assert not torch.equal(out[0], d[0])
    anchor = d[:1].clone()
    # the next step: image 0 stays armed even in the region, repelled from the step-0 x0_hat, not from its own
    x2, d2 = batch(3, a=p.mean["x0"][0], r=p.mean["update"][0], seed=2)
    out2 = g.observe(x2, d2, S0, S1)
    from lib_memstab.correction import repelled_denoised

    assert torch.allclose(out2[:1], repelled_denoised(d2[:1], anchor, 1.0), atol=1e-6)
    assert torch.equal(out2[1:], d2[1:])
    v = g.verdicts()
    assert v[0].mitigated == [0, 1] and v[0].steps_mitigated == 2 and v[1].steps_mitigated == 0
    assert v[0].level != "clean", "repel acts exactly where the final verdict is not clean"


def test_repel_needs_no_per_step_allocation_that_grows():
    x, d = batch(2)
    p = profile_at_z(x, d, S0, S1, (20, 0, 0))
    p.reference_scores = [1.0, 2.0] * 10
    g = Guard(p, GuardConfig(mode="mitigate", mitigation="repel"), steps=50)
    g.observe(x, d, S0, S1)
    seg = g.segments[0]
    shape, buf = seg.anchor.shape, seg.trace
    for _ in range(49):
        g.observe(x, d, S0, S1)
    assert seg.anchor.shape == shape == x.shape and seg.trace is buf


def test_repel_also_arms_at_the_early_flag_below_the_suspicious_threshold():
    """The early flag (here the cond gap) arms repel though the update z (1) stays below "suspicious"."""
    p, x, d = gap_profile(sorted([5.0, 6.0] * 10))  # suspicious far above the update z of 1
    g = Guard(p, GuardConfig(mode="mitigate", mitigation="repel"))
    out = g.observe(x, d, S0, S1, cond_gap=torch.tensor([0.2, 0.1]))  # image 0: gap z 10, image 1: 0
    assert not torch.equal(out[0], d[0]) and torch.equal(out[1], d[1])
    v0, v1 = g.verdicts()
    assert v0.early_step == 0 and v0.mitigated == [0] and v0.level == "clean"
    assert v1.mitigated == [] and v1.early_step is None


def test_joint_thresholds_keep_the_stated_share_of_references_above_either():
    """Two references pass the whole-pass score alone and two others the early score alone: at 2 % of 100 the pair
    sits where only two pass either (5, 5), never at (1, 1) where four would (the two shares added)."""
    from lib_memstab.rules import joint_threshold, joint_thresholds

    pairs = [[1.0, 1.0]] * 96 + [[5.0, 1.0], [1.0, 5.0], [6.0, 1.0], [1.0, 6.0]]
    assert joint_threshold(pairs, 0.02) == (5.0, 5.0)
    assert joint_threshold(pairs, 0.0) == (6.0, 6.0)
    assert joint_threshold(pairs, 0.04) == (1.0, 1.0)
    th, eth = joint_thresholds(pairs, 0.02, 0.005)
    assert th == {"suspicious": 5.0, "memorized": 6.0} and eth == {"suspicious": 5.0, "memorized": 6.0}


@pytest.mark.parametrize("gap,level", [(0.1, "clean"), (0.15, "suspicious"), (0.2, "memorized")])
def test_the_final_verdict_also_judges_the_early_score(gap, level):
    """A copy whose update stays in the region but whose cond gap leaves it early is not called clean: the verdict
    is the higher of the whole-pass and early scores' levels, both thresholds from the same references."""
    p, x, d = gap_profile()
    p.reference_pairs = {"update": sorted([[2.0, 2.0]] * 98 + [[3.0, 3.0], [4.0, 4.0]]),
                         "max": sorted([[1.0, 1.0]] * 97 + [[1.5, 4.0], [2.0, 2.0], [3.0, 8.0]])}
    p.__post_init__()
    g = Guard(p, GuardConfig(mode="detect", fpr_early=0.0))  # the early flag itself at the maximum, 6
    g.observe(x, d, S0, S1, cond_gap=torch.tensor([gap, 0.1]))  # gap z (gap - 0.1) / 0.01 = 0, 5, 10
    v, v1 = g.verdicts()
    # the early signal is the larger of the update z (1) and the gap z
    assert v.score == pytest.approx(1.0, abs=1e-3) and v.early_score == pytest.approx(max(1.0, (gap - 0.1) / 0.01),
                                                                                     abs=1e-2)
    assert v.early_thresholds == {"suspicious": 4.0, "memorized": 8.0} and v.thresholds["memorized"] == 3.0
    assert v.level == level and v.flagged == (level != "clean") and v1.level == "clean"
    assert ("early score" in v.summary()) and v.to_dict()["early_thresholds"] == v.early_thresholds
    g2 = Guard(p, GuardConfig(mode="detect"))
    g2.observe(x, d, S0, S1)  # no gap (Forge): the update alone, against the "update" pairs
    w = g2.verdicts()[0]
    assert w.early_score == pytest.approx(1.0, abs=1e-3) and w.early_thresholds["memorized"] == 4.0
    assert w.level == "clean"


def test_an_early_score_outside_the_window_does_not_count():
    late, nxt = REF_SIGMAS[5], REF_SIGMAS[6]
    p, x, d = gap_profile(sigma=late, sigma_next=nxt)
    p.reference_pairs = {"max": sorted([[2.0, 2.0]] * 99 + [[3.0, 3.0]]), "update": [[2.0, 2.0], [3.0, 3.0]]}
    p.__post_init__()
    g = Guard(p, GuardConfig(mode="detect"))
    g.observe(x, d, late, nxt, cond_gap=torch.tensor([0.2, 0.1]))
    v = g.verdicts()[0]
    assert v.z_gap[0] == pytest.approx(10.0, rel=1e-3), "a gap z far above every early threshold"
    assert v.early_score is None and v.early_thresholds is None and v.level == "clean"
