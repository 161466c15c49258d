"""Host flavours beyond A1111 on the double: reForge (un-duplicated rows, reassigned params.x/sigma ignored, the Script
hook process_before_every_step inside Sampler.callback_state: each step counted once), Forge's threefold
process_before_every_sampling with hires (per-pass state unchanged), and the "debug" console log (one summary per
pass, no extra host reads)."""

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
from webui_double.testing import FIXTURES

pytest_plugins = ["webui_double.testing"]


def keys_of(res):
    return [memstab_keys(parse(t)) for t in res.infotexts]


class Spy:
    """Another always-on script: counts the per-pass and per-step Script hooks it is given."""
    _n_args = 0
    filename = "spy.py"

    def __init__(self, scripts):
        self.base = scripts.Script
        self.sampling, self.steps = [], []

    def __getattr__(self, name):
        return getattr(self.base, name).__get__(self)

    def title(self):
        return "spy"

    def show(self, is_img2img):
        from modules import scripts

        return scripts.AlwaysVisible

    def process_before_every_sampling(self, p, *a, **kw):
        self.sampling.append(bool(p.is_hr_pass))

    def process_before_every_step(self, p, *a, d=None, **kw):
        self.steps.append(d["i"])


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DDIM"])
def test_reforge_counts_each_step_once(reforge_host, sampler):
    """reForge delivers every step twice (our callback_state wrapper and its process_before_every_step); the guard
    counts it once and observes each step at its main evaluation."""
    spy = Spy(reforge_host.scripts)
    p = reforge_host.txt2img({"mode": "detect"}, prompt=[MEMORIZED, ORDINARY], batch_size=2, steps=20,
                             sampler_name=sampler, extra_scripts=(spy,))
    res = reforge_host.run(p)
    (q,) = run_of(res).passes
    n = 19 if sampler == "DDIM" else 20  # A1111's timesteps loop (reForge keeps it): steps - 1 when steps divide 1000
    assert len(spy.steps) == n and q.callbacks == n, "one count per sampler step, not two"
    assert q.steps_seen == n and q.evaluations == (39 if sampler == "Heun" else n)
    a, b = keys_of(res)
    assert a["MemStab verdict"] == "memorized" and b["MemStab verdict"] == "clean"
    assert "MemStab cond gap" not in a  # no on_cfg_denoised on reForge
    assert reforge_host.reported() == []


def test_reforge_step_hook_alone_is_enough(reforge_host, monkeypatch):
    """Should our callback_state wrapper be lost (an extension replacing the method without chaining), reForge's
    Script hook still delivers the steps."""
    from memstab_webui import patches

    monkeypatch.setattr(patches, "_TARGETS", tuple(t for t in patches._TARGETS if t[2] != "callback_state"))
    res = reforge_host.run(reforge_host.txt2img({"mode": "detect"}, prompt=[MEMORIZED, ORDINARY], batch_size=2,
                                                steps=20))
    (q,) = run_of(res).passes
    assert q.callbacks == 20 and q.steps_seen == 20
    assert [k["MemStab verdict"] for k in keys_of(res)] == ["memorized", "clean"]


def test_reforge_ignores_reassigned_params_x():
    """The double's reForge flavour follows host-api.md 3.3: a reassigned params.x is not used, in-place is."""
    from webui_double import Host

    for variant, reassigned_used in (("forge", True), ("reforge", False)):
        h = Host(variant)
        try:
            from modules import script_callbacks

            kw = {"prompt": ORDINARY, "steps": 6}
            base = images(h.run(h.txt2img(None, **kw)))
            script_callbacks.on_cfg_denoiser(lambda params: setattr(params, "x", params.x * 0 + 3))
            changed = images(h.run(h.txt2img(None, **kw)))
            assert (not torch.equal(base, changed)) == reassigned_used, variant
        finally:
            h.close()


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
def test_reforge_mitigates(reforge_host, sampler):
    off, det, on, res, d_off, d_on = mitigation_run(reforge_host, sampler)
    assert torch.equal(det, off), "detect only must not change the image"
    assert sum(d_on) / 3 > sum(d_off) / 3 + 0.8
    assert all(reproduces(x) for x in off[:3]) and not any(reproduces(x) for x in on[:3])
    assert torch.equal(on[3], off[3]), "an image that is never flagged stays bit-identical"
    assert int(keys_of(res)[0]["MemStab mitigated steps"]) > 0 and reforge_host.reported() == []


@pytest.mark.parametrize("variant,sampler,hr_steps", [("reforge", "Euler", 5), ("reforge", "DDIM", 3),
                                                      ("forge", "Euler", 5), ("forge", "DDIM", 3)])
def test_hires_passes_and_process_before_every_sampling(request, variant, sampler, hr_steps):
    """Forge calls process_before_every_sampling three times for txt2img + hires (once, then twice before the hires
    pass), reForge once per pass; either way two passes, each judged on its own, steps counted once."""
    host = request.getfixturevalue(FIXTURES[variant])
    spy = Spy(host.scripts)
    p = host.txt2img({"mode": "mitigate"}, prompt=[MEMORIZED, ORDINARY], batch_size=2, steps=20, enable_hr=True,
                     hr_second_pass_steps=5, denoising_strength=0.5, sampler_name=sampler, extra_scripts=(spy,))
    res = host.run(p)
    assert spy.sampling == ([False, True, True] if variant == "forge" else [False, True])
    run = run_of(res)
    assert [(q.index, q.hires) for q in run.passes] == [(0, False), (1, True)]
    assert run.ctx.sampling_starts == ({(0, False): 1, (0, True): 2} if variant == "forge" else
                                   {(0, False): 1, (0, True): 1})
    steps = {prefix: v.steps for _, prefix, v in run.results.verdicts}
    n = 19 if sampler == "DDIM" else 20  # the timesteps loop: steps - 1
    assert steps == {"MemStab": n, "MemStab hires": hr_steps}
    if variant == "reforge":
        assert len(spy.steps) == n + hr_steps and [q.callbacks for q in run.passes] == [n, hr_steps]
    a, b = keys_of(res)
    assert a["MemStab verdict"] == "memorized" and b["MemStab verdict"] == "clean"
    assert int(a["MemStab mitigated steps"]) > 0 and "MemStab hires verdict" in a
    assert images(res).shape[-1] == 16 and host.reported() == []


def test_reforge_calibrates(tmp_path):
    """Calibration's reference runs carry no scripts (p.scripts is None): the callback_state wrapper alone tracks."""
    from webui_double import Host

    h = Host("reforge")
    try:
        from memstab_webui import calibrate as c  # after Host(): it loads the extension afresh

        (tmp_path / "ref.txt").write_text("\n".join(str(i) for i in range(101, 105)))
        h.shared.opts.data.update(memstab_profile_dir=str(tmp_path),
                                  memstab_reference_prompts=str(tmp_path / "ref.txt"))
        rep = c.calibrate(c.parse_request({"n_prompts": 4, "steps": 10, "width": 64, "height": 64}, h.shared.opts))
        assert rep.profile.meta["trajectories"] == 4 and len(rep.profile.reference_sigmas) == 10
        assert h.reported() == []
    finally:
        h.close()


@pytest.mark.parametrize("variant", ["a1111", "forge", "reforge"])
def test_debug_log_summarises_each_pass_without_host_reads(request, variant, capsys):
    host = request.getfixturevalue(FIXTURES[variant])
    names = ("on_denoiser", "on_denoised", "on_after_cfg", "on_sampler_callback", "on_step", "record_schedule",
             "on_sampling_start")
    host.shared.opts.data["memstab_log"] = "debug"
    with counting_run_host_reads(names) as reads:
        host.run(host.txt2img({"mode": "mitigate"}, prompt=[MEMORIZED, ORDINARY], batch_size=2, steps=10,
                              sampler_name="Heun", enable_hr=True, hr_second_pass_steps=4, denoising_strength=0.5))
    assert reads == []
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("[MemStab] debug:")]
    assert len(lines) == 3, out
    assert "guarding job" in lines[0] and "profile analytic" in lines[0] and "mode mitigate" in lines[0]
    first, hires = lines[1:]
    assert first.startswith("[MemStab] debug: batch 1, pass 1: sampler Heun (k-diffusion")
    assert "10 steps observed of 10, 10 sampler callbacks, 19 model evaluations" in first
    assert "pass 2 (hires)" in hires and "4 steps observed of 4, 4 sampler callbacks, 7 model evaluations" in hires
    assert ("process_before_every_sampling x2" in hires) == (variant == "forge")
    assert ("Forge/reForge" in first) == (variant != "a1111")
    assert "profile analytic (log_sigma" in first and "mode mitigate" in first and "schedule recorded" in first
    assert sum(ln.startswith("[MemStab] seed") for ln in out.splitlines()) == 4  # the verdict lines stay


def test_verdicts_level_prints_no_debug(host, capsys):
    host.shared.opts.data["memstab_log"] = "verdicts"
    host.run(host.txt2img({"mode": "detect"}, prompt=ORDINARY, steps=6))
    out = capsys.readouterr().out
    assert "[MemStab] seed" in out and "debug" not in out
