"""The adapter against the host double's callback protocol, driven by the real k-diffusion samplers: off is a no-op,
each sampler step is observed once at its main evaluation, detection and mitigation work on the k-diffusion path,
A1111's DDIM path (eps outputs, VP latents) and the Forge-flavoured host."""

import pytest
import torch
from webui_double.helpers import (
    MEMORIZED,
    ORDINARY,
    counting_run_host_reads,
    images,
    memstab_keys,
    mitigation_run,
    parse,
    reproduces,
    run_of,
)
from webui_double.testing import PAPER, assert_agrees  # noqa: E402

pytest_plugins = ["webui_double.testing"]

SAMPLERS = ["Euler", "Euler a", "DPM++ 2M", "Heun", "DPM2", "DDIM", "PLMS"]


def test_off_is_bit_identical_to_no_extension_and_touches_nothing(host):
    from modules import sd_samplers_common, sd_samplers_kdiffusion

    from memstab_webui import patches
    from memstab_webui.registry import RUN

    before = (sd_samplers_common.Sampler.__dict__["callback_state"],
              sd_samplers_kdiffusion.KDiffusionSampler.__dict__["get_sigmas"])
    seen = []

    def spy(params):  # a later callback: sees the after-cfg tensor our (off) hook left
        seen.append(params.x)

    host.callbacks.on_cfg_after_cfg(spy)
    p = host.txt2img(None, prompt=MEMORIZED, sampler_name="Euler a", batch_size=2, steps=8)
    on = host.run(p)
    assert not RUN and not patches.installed()
    assert (sd_samplers_common.Sampler.__dict__["callback_state"],
            sd_samplers_kdiffusion.KDiffusionSampler.__dict__["get_sigmas"]) == before
    assert not any(k.startswith("MemStab") for k in p.extra_generation_params)
    assert host.reported() == []
    # the same job in a runner without our script at all
    p0 = host.txt2img(None, prompt=MEMORIZED, sampler_name="Euler a", batch_size=2, steps=8)
    p0.scripts = host.scripts.ScriptRunner([], False)
    p0.script_args = []
    assert torch.equal(images(on), images(host.run(p0)))


def test_off_callbacks_return_before_reading_params(host):
    """With no guarded job, each hook checks one empty dict and reads nothing else."""
    from memstab_webui import hooks

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"read {name}")

    for fn in (hooks.on_cfg_denoiser, hooks.on_cfg_denoised, hooks.on_cfg_after_cfg):
        fn(Untouchable())


@pytest.mark.parametrize("variant", ["a1111", "forge"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_detects_memorized_not_ordinary(request, variant, sampler):
    host = request.getfixturevalue("host" if variant == "a1111" else "forge_host")
    res = host.run(host.txt2img({"mode": "detect", **PAPER}, prompt=[MEMORIZED, ORDINARY], sampler_name=sampler,
                                batch_size=2, steps=20))
    mem, ordi = (memstab_keys(parse(t)) for t in res.infotexts)
    assert mem["MemStab verdict"] == "memorized" and mem["MemStab severity"] == "strong"
    assert ordi["MemStab verdict"] == "clean"
    res = host.run(host.txt2img({"mode": "detect"}, prompt=[MEMORIZED, ORDINARY], sampler_name=sampler,
                                batch_size=2, steps=20))
    for k in (memstab_keys(parse(t)) for t in res.infotexts):  # calibrated: the level agrees with score and bounds
        assert_agrees(k)
    assert memstab_keys(parse(res.infotexts[0]))["MemStab verdict"] == "memorized"
    assert ("MemStab cond gap" in mem) == (variant == "a1111")  # Forge never calls on_cfg_denoised
    assert host.reported() == []


@pytest.mark.parametrize("variant", ["a1111", "forge"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_mitigation_steers_away_from_the_stored_image_and_leaves_ordinary_images_alone(request, variant, sampler):
    host = request.getfixturevalue("host" if variant == "a1111" else "forge_host")
    off, det, on, res, d_off, d_on = mitigation_run(host, sampler)
    assert torch.equal(det, off), "detect only must not change the image"
    assert sum(d_on) / 3 > sum(d_off) / 3 + 0.8 and all(a >= b - 1e-6 for a, b in zip(d_on, d_off))
    if sampler in ("Euler", "DDIM"):  # the deterministic first-order ones land exactly on it when unguarded
        assert all(reproduces(x) for x in off[:3]) and not any(reproduces(x) for x in on[:3])
    # the double's profile is Euler's: on other samplers its ordinary image may already score above clean
    for i in range(4):
        if det.verdicts[i] == "clean":
            assert torch.equal(on[i], off[i]), "an image the verdict calls clean stays bit-identical"
        else:
            assert int(memstab_keys(parse(res.infotexts[i]))["MemStab mitigated steps"]) > 0
    if sampler in ("Euler", "DDIM"):
        assert det.verdicts[3] == "clean", "with its own sampler's profile the ordinary image is clean"


@pytest.mark.parametrize("sampler,expected_calls", [("Euler", 10), ("Heun", 19), ("DDIM", 9), ("PLMS", 10)])
def test_each_step_observed_once_at_its_main_evaluation(host, sampler, expected_calls):
    """Heun makes 2N-1 model calls, DDIM steps-1 (A1111's timesteps); the guard sees one per sampler step, at the
    sigma the sampler's schedule gives that step."""
    from memstab_webui.passes import Pass

    calls, observed = [], []
    host.callbacks.on_cfg_after_cfg(lambda params: calls.append(1))
    orig = Pass.on_after_cfg

    def spy(self, out):
        b = out.shape[0]
        observed.append(self.sigma[-b:][0].item())
        return orig(self, out)

    Pass.on_after_cfg = spy
    try:
        res = host.run(host.txt2img({"mode": "detect"}, prompt=ORDINARY, sampler_name=sampler, steps=10))
    finally:
        Pass.on_after_cfg = orig
    assert len(calls) == expected_calls
    run = run_of(res)
    (verdict,) = [v for _, _, v in run.results.verdicts]
    if sampler in ("DDIM", "PLMS"):  # PLMS: 9 steps, the first with an extra evaluation
        assert observed == [float(t) for t in range(901, 0, -100)][:9]
        assert verdict.steps == 9
    else:
        assert verdict.steps == 10 and len(observed) == 10
        assert observed == sorted(observed, reverse=True) and len(set(observed)) == 10


def test_ddim_eps_roundtrip_is_bit_identical_for_uncorrected_rows(host):
    """On the timesteps path the guard works on x0_hat = (z - sqrt(1-a) eps)/sqrt(a) and hands eps back; rows it does
    not correct must come back as the very eps."""
    kw = {"prompt": [ORDINARY, ORDINARY], "sampler_name": "DDIM", "batch_size": 2, "steps": 20, "seed": 11}
    off = images(host.run(host.txt2img(None, **kw)))
    on = images(host.run(host.txt2img({"mode": "mitigate"}, **kw)))
    assert torch.equal(on, off)


def test_sigma_next_comes_from_the_recorded_schedule(host):
    from memstab_webui.passes import Pass

    pairs = []
    orig = Pass._next_sigma

    def spy(self, sig):
        out = orig(self, sig)
        pairs.append((float(sig[0]), float(out[0])))
        return out

    Pass._next_sigma = spy
    try:
        host.run(host.txt2img({"mode": "detect"}, prompt=ORDINARY, sampler_name="DPM++ 2M", steps=6))
    finally:
        Pass._next_sigma = orig
    sigs = [a for a, _ in pairs] + [0.0]
    assert [b for _, b in pairs] == pytest.approx(sigs[1:], rel=1e-6)


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DDIM"])
def test_hooks_make_no_host_reads(host, sampler):
    """Per-step work in our hooks never reads a tensor back (each read would stall a GPU queue)."""
    names = ("on_denoiser", "on_denoised", "on_after_cfg", "on_sampler_callback", "record_schedule")
    with counting_run_host_reads(names) as reads:
        res = host.run(host.txt2img({"mode": "mitigate"}, prompt=[MEMORIZED, ORDINARY], batch_size=2,
                                    sampler_name=sampler, steps=20))
    assert reads == []
    assert memstab_keys(parse(res.infotexts[0]))["MemStab verdict"] == "memorized"
