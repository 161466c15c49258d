"""End to end: the real k-diffusion Euler sampler on the analytic memorizing denoiser, calibrated on ordinary
conditions, then judged on memorized and on other ordinary conditions (disjoint seeds and conditions)."""

import pytest
import torch

from lib_memstab import Guard, GuardConfig, Recorder
from memstab_testbed.analytic import SHAPE, AnalyticModel, stored_image
from memstab_testbed.model import sd_alphas_cumprod

MEMORIZED = [-1, -2, -3, -4] * 4
ORDINARY = list(range(100, 116))
SEEDS = list(range(16))


@pytest.fixture(scope="module")
def setup():
    from memstab_testbed.kdiff import import_k_diffusion

    k = import_k_diffusion()
    ac = sd_alphas_cumprod()
    sigmas = k.external.DiscreteSchedule(((1 - ac) / ac).sqrt(), False).get_sigmas(20)
    model = AnalyticModel()

    def run(conds, seeds, hook=None):
        x = torch.stack([torch.randn(SHAPE, generator=torch.Generator().manual_seed(s)) for s in seeds]) * sigmas[0]
        cfg = model.cfg_denoiser(conds, 7.5)
        step = iter(range(len(sigmas)))

        def denoiser(x, sigma, **_):  # what a host's CFG wrapper does: one call per Euler step
            d = cfg(x, sigma)
            i = next(step)
            return d if hook is None else hook(x, d, sigma[0], sigmas[i + 1])

        return k.sampling.sample_euler(denoiser, x, sigmas, disable=True)

    rec = Recorder()
    for b in range(4):
        run(list(range(8 * b, 8 * b + 8)), list(range(1000 + 8 * b, 1008 + 8 * b)), rec.observe)
        rec.finish_run()
    return run, rec.build_profile()


def reproduced(images, conds):
    return [float((images[i] - stored_image(-c - 1)).pow(2).mean().sqrt()) < 0.15 for i, c in enumerate(conds)]


def test_guard_flags_memorized_generations_and_not_ordinary_ones(setup):
    run, profile = setup
    off = reproduced(run(MEMORIZED, SEEDS), MEMORIZED)
    assert sum(off) >= 8, "the analytic model must reproduce its stored images at CFG 7.5"
    g = Guard(profile, GuardConfig(mode="detect"))
    run(MEMORIZED, SEEDS, g.observe)
    flagged = [v.flagged for v in g.verdicts()]
    assert all(f for f, r in zip(flagged, off) if r), "every reproduced image must be flagged"
    g = Guard(profile, GuardConfig(mode="detect"))
    run(ORDINARY, SEEDS, g.observe)
    assert not any(v.flagged for v in g.verdicts())


def test_mitigation_reduces_reproduction_and_leaves_ordinary_images_bit_identical(setup):
    run, profile = setup
    off = sum(reproduced(run(MEMORIZED, SEEDS), MEMORIZED))
    g = Guard(profile, GuardConfig(mode="mitigate"))
    on = sum(reproduced(run(MEMORIZED, SEEDS, g.observe), MEMORIZED))
    assert on < off / 2
    assert sum(v.steps_mitigated > 0 for v in g.verdicts()) >= off
    g = Guard(profile, GuardConfig(mode="mitigate"))
    assert torch.equal(run(ORDINARY, SEEDS, g.observe), run(ORDINARY, SEEDS))
