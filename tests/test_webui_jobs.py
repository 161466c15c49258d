"""Whole jobs through the host double: batches, AND prompts, batch count, hires fix, img2img, interrupt and skip,
ADetailer-style nested passes, crashes, failures inside our hooks, chained patches and missing profiles."""

import pytest
import torch
from webui_double.helpers import MEMORIZED, ORDINARY, images, memstab_keys, parse, run_of
from webui_double.testing import PAPER  # noqa: E402

from memstab_testbed.analytic import stored_image

pytest_plugins = ["webui_double.testing"]


def keys_of(res):
    return [memstab_keys(parse(t)) for t in res.infotexts]


def test_batch_size_and_batch_count_give_each_image_its_own_verdict(host):
    p = host.txt2img({"mode": "detect"}, prompt=[MEMORIZED, ORDINARY, MEMORIZED, ORDINARY], batch_size=2, n_iter=2,
                     steps=12, seed=40)
    res = host.run(p)
    verdicts = [k["MemStab verdict"] for k in keys_of(res)]
    assert verdicts == ["memorized", "clean", "memorized", "clean"]  # seed 43 would not memorize anyway
    # the other call path (Processed.infotext: global index, global seeds) renders the same values
    for i, text in enumerate(res.infotexts):
        assert memstab_keys(parse(res.infotext(p, i))) == memstab_keys(parse(text))
    summary = str(p.extra_generation_params["MemStab"])
    assert [ln.split(": ", 1)[1].split(",")[0] for ln in summary.split("; ")] == verdicts
    assert "40:" in summary and "43:" in summary
    info = __import__("json").loads(res.js())
    assert info["extra_generation_params"]["MemStab"] == summary
    assert info["extra_generation_params"]["MemStab mode"] == "detect"


def test_and_prompts(host):
    res = host.run(host.txt2img({"mode": "detect", **PAPER}, prompt=[f"{ORDINARY} AND {MEMORIZED}", ORDINARY],
                                batch_size=2, steps=12))
    a, b = keys_of(res)
    assert a["MemStab verdict"] == "memorized" and b["MemStab verdict"] == "clean"
    assert "MemStab cond gap" not in a, "with AND the cond rows are not one per image: no gap"
    assert host.reported() == []


# (host, sampler, steps observed in the hires pass of 5 steps at denoise 0.5, in img2img of 20 at 0.5): A1111's
# timesteps path runs fewer model calls than its step count (host-api.md 1.6)
PARTIAL = [("a1111", "Euler", 5, 11), ("a1111", "Heun", 5, 11), ("a1111", "DDIM", 3, 9), ("a1111", "PLMS", 3, 9),
           ("forge", "Euler", 5, 11), ("forge", "DDIM", 3, 9)]


@pytest.mark.parametrize("variant,sampler,hr_steps,_", PARTIAL)
def test_hires_second_pass_is_its_own_segment(request, variant, sampler, hr_steps, _):
    host = request.getfixturevalue("host" if variant == "a1111" else "forge_host")
    p = host.txt2img({"mode": "detect"}, prompt=[MEMORIZED, ORDINARY], batch_size=2, steps=20, enable_hr=True,
                     hr_second_pass_steps=5, denoising_strength=0.5, sampler_name=sampler)
    res = host.run(p)
    a, b = keys_of(res)
    for k in (a, b):
        assert {"MemStab verdict", "MemStab score", "MemStab hires verdict", "MemStab hires score"} <= set(k)
    assert a["MemStab verdict"] == "memorized" and b["MemStab verdict"] == "clean"
    run = run_of(res)
    assert [(q.index, q.hires) for q in run.passes] == [(0, False), (1, True)]
    steps = {prefix: v.steps for _, prefix, v in run.results.verdicts}
    assert steps == {"MemStab": 20 if sampler in ("Euler", "Heun") else 19, "MemStab hires": hr_steps}
    assert images(res).shape[-1] == 16 and host.reported() == []


@pytest.mark.parametrize("variant,sampler,_,i2i_steps", PARTIAL)
def test_img2img_partial_schedule(request, variant, sampler, _, i2i_steps):
    host = request.getfixturevalue("host" if variant == "a1111" else "forge_host")
    init = stored_image(0) * 0.5
    p = host.img2img({"mode": "mitigate"}, prompt=ORDINARY, steps=20, denoising_strength=0.5, init_latent=init,
                     sampler_name=sampler)
    res = host.run(p)
    (v,) = [v for _, _, v in run_of(res).results.verdicts]
    assert v.steps == i2i_steps  # k-diffusion: t_enc + 1 = int(0.5 * 20) + 1, on the tail of a 20-step schedule
    assert keys_of(res)[0]["MemStab verdict"] in ("clean", "memorized")
    assert host.reported() == []


def test_interrupt_and_skip_drop_state_cleanly(host):
    from memstab_webui import patches
    from memstab_webui.registry import RUN

    calls = []

    def interrupter(params):
        calls.append(1)
        if len(calls) == 5:
            host.shared.state.interrupt()

    host.callbacks.on_cfg_after_cfg(interrupter)
    res = host.run(host.txt2img({"mode": "mitigate"}, prompt=MEMORIZED, batch_size=2, n_iter=2, steps=10))
    assert len(res.images) == 2, "the interrupted batch still finishes; the next one does not start"
    for k in keys_of(res):
        assert "interrupted" in k["MemStab note"] and "MemStab verdict" in k
    assert not RUN and not patches.installed() and host.reported() == []

    calls.clear()
    host.callbacks.remove_callbacks_for_function(interrupter)

    def skipper(params):
        calls.append(1)
        if len(calls) == 3:
            host.shared.state.skip()

    host.callbacks.on_cfg_after_cfg(skipper)
    res = host.run(host.txt2img({"mode": "detect"}, prompt=MEMORIZED, n_iter=2, steps=10))
    first, second = keys_of(res)
    assert "interrupted" in first["MemStab note"] and "MemStab note" not in second
    assert [v.steps for _, _, v in run_of(res).results.verdicts] == [3, 10]  # the 3rd step was observed before the skip
    assert not RUN and not patches.installed()


class ADetailerLike:
    """Runs a nested img2img job per image from postprocess_image, like ADetailer (p._ad_inner = True)."""

    _n_args = 0

    def __init__(self, host, with_memstab):
        self.host, self.with_memstab, self.inner = host, with_memstab, []

    def title(self):
        return "ADetailer-like"

    def show(self, is_img2img):
        return self.host.scripts.AlwaysVisible

    def __getattr__(self, name):  # every other hook: nothing
        return lambda *a, **k: None

    def postprocess_image(self, p, pp, *args):
        if getattr(p, "_ad_inner", False):
            return
        args = {"mode": "detect"} if self.with_memstab else None
        q = self.host.img2img(args, prompt=MEMORIZED, steps=8, denoising_strength=0.4, init_latent=pp.image * 0.1)
        if not self.with_memstab:
            q.scripts = self.host.scripts.ScriptRunner([], True)
            q.script_args = []
        q._ad_inner = True
        self.inner.append(self.host.run(q, new_job=False))


def test_adetailer_inner_passes_are_ignored_unless_opted_in(host):
    baseline = keys_of(host.run(host.txt2img({"mode": "detect"}, prompt=ORDINARY, steps=10)))
    for with_memstab in (False, True):
        ad = ADetailerLike(host, with_memstab)
        res = host.run(host.txt2img({"mode": "detect"}, prompt=ORDINARY, steps=10, extra_scripts=[ad]))
        assert keys_of(res) == baseline, "the nested sampling must not leak into the outer verdict"
        assert not any(k.startswith("MemStab") for k in parse(ad.inner[0].infotexts[0]))
    host.shared.opts.data["memstab_adetailer"] = True
    ad = ADetailerLike(host, True)
    res = host.run(host.txt2img({"mode": "detect"}, prompt=ORDINARY, steps=10, extra_scripts=[ad]))
    assert keys_of(res) == baseline
    assert parse(ad.inner[0].infotexts[0])["MemStab verdict"] == "memorized"
    assert host.reported() == []


def test_a_crashed_job_leaves_nothing_active_and_the_next_job_cleans_up(host):
    from memstab_webui import patches
    from memstab_webui.registry import RUN

    model = host.shared.sd_model
    orig, n = model.denoise, [0]

    def failing(*a, **k):
        n[0] += 1
        if n[0] == 4:
            raise RuntimeError("CUDA out of memory (simulated)")
        return orig(*a, **k)

    model.denoise = failing
    try:
        host.run(host.txt2img({"mode": "mitigate"}, prompt=MEMORIZED, steps=10))
        raise AssertionError("the crash must escape process_images")
    except RuntimeError:
        pass
    finally:
        model.denoise = orig
    assert len(RUN) == 1, "postprocess never ran: the entry is left behind..."
    # ...but it is inert: a job without the guard is bit-identical to one in a fresh host
    off = images(host.run(host.txt2img(None, prompt=MEMORIZED, steps=10)))
    assert not RUN and not patches.installed(), "the next job dropped the stale run and the patches"
    res = host.run(host.txt2img({"mode": "detect"}, prompt=MEMORIZED, steps=10))
    assert keys_of(res)[0]["MemStab verdict"] == "memorized" and not RUN
    p0 = host.txt2img(None, prompt=MEMORIZED, steps=10)
    p0.scripts, p0.script_args = host.scripts.ScriptRunner([], False), []
    assert torch.equal(off, images(host.run(p0)))


def test_an_exception_in_our_hook_is_logged_once_noted_and_the_image_finishes(host):
    from lib_memstab import Guard

    kw = {"prompt": MEMORIZED, "steps": 10, "n_iter": 2}
    off = images(host.run(host.txt2img(None, **kw)))
    orig = Guard.observe

    def boom(self, *a, **k):
        raise RuntimeError("boom")

    Guard.observe = boom
    try:
        res = host.run(host.txt2img({"mode": "mitigate"}, **kw))
    finally:
        Guard.observe = orig
    assert torch.equal(images(res), off)
    notes = [k.get("MemStab note") for k in keys_of(res)]
    assert notes == ["error: RuntimeError: boom"] * 2
    ours = [m for m, tb in host.reported() if "MemStab" in m]
    assert len(ours) == 1 and "boom" in host.reported()[0][1], "once per run, with the traceback"


def test_patches_chain_with_another_extensions_wrapper(host):
    from modules import sd_samplers_common

    from memstab_webui import patches

    theirs = []

    class Other:
        _n_args = 0

        def title(self):
            return "other"

        def show(self, is_img2img):
            return host.scripts.AlwaysVisible

        def __getattr__(self, name):
            return lambda *a, **k: None

        def process(self, p, *args):  # runs after ours: wraps on top of our wrapper
            if getattr(sd_samplers_common.Sampler.callback_state, "_other", False):
                return
            prev = sd_samplers_common.Sampler.callback_state

            def wrapped(self, d):
                theirs.append(d["i"])
                return prev(self, d)

            wrapped._other = True
            sd_samplers_common.Sampler.callback_state = wrapped

    res = host.run(host.txt2img({"mode": "detect"}, prompt=MEMORIZED, steps=6, extra_scripts=[Other()]))
    assert keys_of(res)[0]["MemStab verdict"] == "memorized" and theirs == list(range(6))
    assert getattr(sd_samplers_common.Sampler.callback_state, "_other", False), "theirs is left in place"
    assert not patches.installed()
    theirs.clear()
    res = host.run(host.txt2img({"mode": "detect"}, prompt=MEMORIZED, steps=6, extra_scripts=[Other()]))
    assert keys_of(res)[0]["MemStab verdict"] == "memorized" and theirs == list(range(6))
    (v,) = [v for _, _, v in run_of(res).results.verdicts]
    assert v.steps == 6


def test_no_profile_for_the_model_means_a_note_and_no_detection(host):
    from memstab_webui.registry import RUN

    host.shared.sd_model.sd_model_hash = "ffffffffff"
    host.shared.sd_model.sd_checkpoint_info.shorthash = "ffffffffff"
    res = host.run(host.txt2img({"mode": "mitigate"}, prompt=MEMORIZED, steps=6))
    (k,) = keys_of(res)
    assert "not calibrated" in k["MemStab note"] and "ffffffffff" in k["MemStab note"]
    assert "MemStab verdict" not in k and not RUN
    res = host.run(host.txt2img({"mode": "detect", "profile": "analytic"}, prompt=MEMORIZED, steps=6))
    assert keys_of(res)[0]["MemStab verdict"] == "memorized", "a named profile still works"
    res = host.run(host.txt2img({"mode": "detect", "profile": "nope"}, prompt=MEMORIZED, steps=6))
    assert "profile nope not found" in keys_of(res)[0]["MemStab note"]


def test_a_sampler_whose_schedule_is_not_recorded_gets_detection_only(host):
    from modules import sd_samplers, sd_samplers_kdiffusion
    from modules.sd_samplers_common import SamplerData

    class Custom(sd_samplers_kdiffusion.KDiffusionSampler):
        def get_sigmas(self, p, steps):  # an extension sampler with its own schedule code
            return self.model_wrap.get_sigmas(steps)

    data = SamplerData("Custom", lambda model: Custom("sample_euler", model), [], {})
    sd_samplers.all_samplers_map["Custom"] = data
    res = host.run(host.txt2img({"mode": "mitigate"}, prompt=MEMORIZED, sampler_name="Custom", steps=10))
    (k,) = keys_of(res)
    assert k["MemStab verdict"] == "memorized" and "detection only" in k["MemStab note"]
    assert "MemStab mitigated steps" not in k


def test_nan_in_one_image_is_reported_for_that_image_only(host):
    model = host.shared.sd_model
    orig, n = model.denoise, [0]

    def nan_row0(x, sigma, conds):
        n[0] += 1
        out = orig(x, sigma, conds)
        if n[0] >= 4:
            out[0] = float("nan")  # row 0 is image 0's cond row
        return out

    model.denoise = nan_row0
    try:
        res = host.run(host.txt2img({"mode": "mitigate", **PAPER}, prompt=[ORDINARY, ORDINARY], batch_size=2,
                                    steps=8))
    finally:
        model.denoise = orig
    a, b = keys_of(res)
    assert a["MemStab verdict"] == "nonfinite" and b["MemStab verdict"] == "clean"
    assert torch.isfinite(images(res)[1]).all() and host.reported() == []


def test_refiner_switch_continues_the_pass_with_a_note(host):
    from webui_double.host_model import HostModel

    refiner = HostModel()
    refiner.sd_model_hash = "0fedcba987"
    refiner.sd_checkpoint_info.name = "refiner.safetensors"
    p = host.txt2img({"mode": "detect"}, prompt=MEMORIZED, steps=10)
    p.refiner_switch_at, p.refiner_model = 0.5, refiner
    res = host.run(p)
    (k,) = keys_of(res)
    assert parse(res.infotexts[0])["Refiner"] == "refiner.safetensors"
    assert k["MemStab verdict"] == "memorized" and "model switched at step 5 (refiner)" in k["MemStab note"]
    (v,) = [v for _, _, v in run_of(res).results.verdicts]
    assert v.steps == 10 and len(run_of(res).passes) == 1


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
def test_inpainting_mask_blend(host, sampler):
    """Inpainting blends the kept region into x (DDIM, before the model) or into denoised (k-diffusion, after it);
    the guard sees what the sampler uses either way."""
    init = stored_image(0) * 0.5
    mask = torch.zeros(1, 8, 8)
    mask[:, :, :4] = 1.0  # 1 = keep the original latent
    p = host.img2img({"mode": "mitigate"}, prompt=[MEMORIZED, ORDINARY], batch_size=2, steps=20,
                     denoising_strength=0.75, init_latent=init, sampler_name=sampler)
    p.mask, p.nmask = mask, 1 - mask
    res = host.run(p)
    assert all("MemStab verdict" in k for k in keys_of(res)) and host.reported() == []
    run = run_of(res)
    assert run.passes[0].denoiser is None and not run.schedules, "nothing holds the host's sampler after the job"
    assert memstab_keys(parse(res.infotext(p, 0))) == keys_of(res)[0], "rendering again after the job still works"
