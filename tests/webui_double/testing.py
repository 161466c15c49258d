"""pytest fixtures for the adapter tests: a calibrated profile for the double's model, and a started host."""

from __future__ import annotations

import pytest
import torch

from lib_memstab import Recorder, make_meta

from . import Host
from .host_model import MODEL_HASH


def calibrate(path):
    """A profile for the double's analytic model: the real Euler sampler, 20 steps, ordinary conditions."""
    from memstab_testbed.analytic import SHAPE, AnalyticModel
    from memstab_testbed.kdiff import import_k_diffusion
    from memstab_testbed.model import sd_alphas_cumprod

    k = import_k_diffusion()
    ac = sd_alphas_cumprod()
    sigmas = k.external.DiscreteSchedule(((1 - ac) / ac).sqrt(), False).get_sigmas(20)
    model = AnalyticModel()
    rec = Recorder()
    for b in range(3):
        conds = list(range(8 * b, 8 * b + 8))
        cfg = model.cfg_denoiser(conds, 7.5)
        step = iter(range(len(sigmas)))

        def den(x, sigma, cfg=cfg, step=step, **_):
            d = cfg(x, sigma)
            i = next(step)
            rec.observe(x, d, sigma[0], sigmas[i + 1])
            return d

        x = torch.stack([torch.randn(SHAPE, generator=torch.Generator().manual_seed(500 + 8 * b + j))
                         for j in range(8)]) * sigmas[0]
        k.sampling.sample_euler(den, x, sigmas, disable=True)
        rec.finish_run()
    prof = rec.build_profile(meta=make_meta(model="analytic", model_hash=MODEL_HASH, sampler="Euler"))
    prof.save(path)
    return prof


@pytest.fixture(scope="session")
def profile_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("memstab_profiles")
    calibrate(d / "analytic.json")
    return d


def _start(variant, profile_dir):
    h = Host(variant)
    h.shared.opts.data["memstab_profile_dir"] = str(profile_dir)
    return h


@pytest.fixture
def host(profile_dir):
    h = _start("a1111", profile_dir)
    yield h
    h.close()


@pytest.fixture
def forge_host(profile_dir):
    h = _start("forge", profile_dir)
    yield h
    h.close()



@pytest.fixture
def reforge_host(profile_dir):
    h = _start("reforge", profile_dir)
    yield h
    h.close()


FIXTURES = {"a1111": "host", "forge": "forge_host", "reforge": "reforge_host"}


ORDINARY_PROMPTS = [str(c) for c in range(101, 131)]  # the double's prompts are condition ids


@pytest.fixture
def cal(tmp_path):
    """A started host with an empty profile folder and a reference prompt file of ordinary conditions."""
    h = Host("a1111")
    folder = tmp_path / "profiles"
    prompts = tmp_path / "ref.txt"
    prompts.write_text("# ordinary conditions\n" + "\n".join(ORDINARY_PROMPTS) + "\n")
    h.shared.opts.data.update(memstab_profile_dir=str(folder), memstab_reference_prompts=str(prompts))
    h.folder, h.prompts, h.tmp = folder, prompts, tmp_path
    yield h
    h.close()


PAPER = {"verdict": "paper"}  # host-protocol tests that need a clean ordinary image use the paper rule: the analytic
# model's ordinary trajectories are nearly deterministic, so the calibrated verdict's thresholds (the references' own
# highest scores, from one sampler at 20 steps) are crossed by ordinary images of other samplers and step counts


def assert_agrees(keys: dict, prefix: str = "MemStab") -> None:
    """A calibrated verdict in the infotext agrees with its own score: above the memorized threshold it says
    memorized, above the suspicious one at least suspicious, and never clean above a threshold."""
    label, score = keys[f"{prefix} verdict"], float(keys[f"{prefix} score"])
    lo, hi = (float(t) for t in keys[f"{prefix} thresholds"].split("/"))
    def level(s):
        return "memorized" if s > hi else "suspicious" if s > lo else "clean"

    ok = {level(score - 0.006), level(score + 0.006), "nonfinite"}  # both are rounded to 2 decimals
    assert label in ok, (label, score, lo, hi)
