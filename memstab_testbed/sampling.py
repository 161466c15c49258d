"""Drive the testbed model the way the webui does.

- k-diffusion samplers (the real package) through a CFG denoiser with the webui's row layout ([cond rows, uncond
  rows]); the guard is called once per step, at the step's main model evaluation (the first evaluation after the
  previous step's callback), never at a second-order sampler's auxiliary evaluation.
- DDIM through the timesteps path exactly as A1111's ``sd_samplers_timesteps_impl.ddim``: VP latents, integer
  timesteps ``range(0, 1000, 1000 // steps) + 1`` and eps outputs; the guard sees them converted to k-diffusion space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lib_memstab.schedules import denoised_to_eps, sigma_of_alpha_cumprod, vp_to_kdiff

from .kdiff import import_k_diffusion

K = import_k_diffusion()

# name -> (k-diffusion function, Karras schedule)
KDIFF_SAMPLERS = {
    "euler": ("sample_euler", False),
    "euler_a": ("sample_euler_ancestral", False),
    "dpmpp_2m_karras": ("sample_dpmpp_2m", True),
    "heun": ("sample_heun", False),
    "lms": ("sample_lms", False),
}
SAMPLERS = [*KDIFF_SAMPLERS, "ddim"]

# hook(x, denoised, sigma, sigma_next, cond_gap) -> denoised, in k-diffusion space
StepHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Sampling:
    sampler: str = "euler"
    steps: int = 50
    cfg: float = 7.5
    cfg_delay: float = 0.0  # share of the first steps sampled without guidance (Jain et al., CVPR 2025)

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}; got {self.sampler!r}")

    def scale_at(self, step: int) -> float:
        return 0.0 if step < round(self.cfg_delay * self.steps) else self.cfg


class _EpsModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, context):
        return self.model(x, t, context)


def kdiff_denoiser(model):
    """A1111's CompVisDenoiser: D(x, sigma) = x - sigma * eps(x / sqrt(1 + sigma^2), t(sigma))."""
    return K.external.DiscreteEpsDDPMDenoiser(_EpsModel(model), model.alphas_cumprod, quantize=False)


def initial_noise(seeds: list[int], shape=(3, 16, 16)) -> torch.Tensor:
    """Unit-variance noise, one generator per seed, as the webui draws it per image."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def schedule(model, sampler: str, steps: int) -> torch.Tensor:
    den = kdiff_denoiser(model)
    if KDIFF_SAMPLERS[sampler][1]:
        return K.sampling.get_sigmas_karras(steps, float(den.sigma_min), float(den.sigma_max))
    return den.get_sigmas(steps)


def _rms(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).pow(2).mean(1).sqrt()


@torch.no_grad()
def generate(model, prompts: list[str], seeds: list[int], s: Sampling = Sampling(), hook: StepHook | None = None,
             conds: torch.Tensor | None = None, switch: tuple[int, torch.Tensor] | None = None) -> torch.Tensor:
    """Images in [-1, 1], one per (prompt, seed) pair. ``hook`` sees every step once and may replace denoised.
    ``switch`` = (step, conds): condition on these from that step on (k-diffusion samplers; a bench oracle)."""
    cond = model.encode(prompts) if conds is None else conds
    uncond = model.encode([""] * len(prompts))
    noise = initial_noise(seeds)
    torch.manual_seed(int(np.sum(seeds)) % (2**31))  # ancestral noise: reproducible, same with the guard on or off
    if s.sampler == "ddim":
        if switch is not None:
            raise ValueError("switch is implemented for the k-diffusion samplers only")
        return _ddim(model, noise, cond, uncond, s, hook).clamp(-1, 1)
    return _kdiff(model, noise, cond, uncond, s, hook, switch).clamp(-1, 1)


def _kdiff(model, noise, cond, uncond, s: Sampling, hook, switch=None):
    den = kdiff_denoiser(model)
    sigmas = schedule(model, s.sampler, s.steps)
    state = {"step": 0, "main": True}

    def cfg_model(x, sigma, **_):
        b = x.shape[0]
        c = switch[1] if switch is not None and state["step"] >= switch[0] else cond
        out = den(torch.cat([x, x]), torch.cat([sigma, sigma]), context=torch.cat([c, uncond]))
        dc, du = out[:b], out[b:]
        d = du + (dc - du) * s.scale_at(state["step"])
        if state["main"]:  # the step's main evaluation; a second-order sampler's extra one comes after the callback
            state["main"] = False
            if hook is not None:
                gap = _rms(dc - du) / sigma
                d = hook(x, d, sigma, sigmas[state["step"] + 1], gap)
        return d

    def callback(info):
        state["step"] = info["i"] + 1
        state["main"] = True

    fn = getattr(K.sampling, KDIFF_SAMPLERS[s.sampler][0])
    return fn(cfg_model, noise * sigmas[0], sigmas, callback=callback, disable=True)


def ddim_timesteps(steps: int) -> np.ndarray:
    return np.arange(0, 1000, 1000 // steps) + 1


def _ddim(model, noise, cond, uncond, s: Sampling, hook):
    ac = model.alphas_cumprod.double()
    ts = ddim_timesteps(s.steps)
    alphas = ac[ts]
    alphas_prev = ac[np.concatenate([[0], ts[:-1]])]
    z = noise
    b = z.shape[0]
    for i in range(len(ts) - 1):
        index = len(ts) - 1 - i
        t = torch.full((b,), int(ts[index]))
        eps = model(torch.cat([z, z]), torch.cat([t, t]), torch.cat([cond, uncond]))
        ec, eu = eps[:b], eps[b:]
        e = eu + (ec - eu) * s.scale_at(i)
        a_t, a_prev = float(alphas[index]), float(alphas_prev[index])
        pred_x0 = (z - (1 - a_t) ** 0.5 * e) / a_t**0.5
        if hook is not None:  # the guard works in k-diffusion space (lib_memstab.schedules)
            sig, sig_next = (sigma_of_alpha_cumprod(torch.tensor(a, dtype=torch.float64)).float()
                             for a in (a_t, a_prev))
            x = vp_to_kdiff(z, a_t)
            pred_x0 = hook(x, pred_x0, sig, sig_next, _rms(ec - eu))
            e = denoised_to_eps(x, pred_x0, sig)
        z = a_prev**0.5 * pred_x0 + (1 - a_prev) ** 0.5 * e
    return z
