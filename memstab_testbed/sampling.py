"""Drive the testbed model the way the webui does: k-diffusion samplers through a CFG denoiser with A1111's row
layout ([cond rows..., uncond rows...]), and DDIM through the timesteps (VP) path."""

from __future__ import annotations

import torch

from .kdiff import import_k_diffusion

K = import_k_diffusion()

KDIFF_SAMPLERS = {
    "euler": ("sample_euler", False),
    "euler_a": ("sample_euler_ancestral", False),
    "dpmpp_2m_karras": ("sample_dpmpp_2m", True),
    "heun": ("sample_heun", False),
    "lms": ("sample_lms", False),
}


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
    """Unit-variance noise, one generator per seed, as the webui does per image."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


class CFGDenoiser(torch.nn.Module):
    """Classifier-free guidance with the webui's row layout: the model sees [x (cond rows), x (uncond rows)]."""

    def __init__(self, denoiser, cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float):
        super().__init__()
        self.inner, self.cond, self.uncond, self.cfg_scale = denoiser, cond, uncond, cfg_scale

    def forward(self, x, sigma):
        b = x.shape[0]
        out = self.inner(torch.cat([x, x]), torch.cat([sigma, sigma]), context=torch.cat([self.cond, self.uncond]))
        d_cond, d_uncond = out[:b], out[b:]
        return d_uncond + (d_cond - d_uncond) * self.cfg_scale


@torch.no_grad()
def generate(model, prompts: list[str], seeds: list[int], sampler: str = "euler", steps: int = 50,
             cfg: float = 7.5, callback=None) -> torch.Tensor:
    """Images in [-1, 1], one per (prompt, seed) pair."""
    fn_name, karras = KDIFF_SAMPLERS[sampler]
    den = kdiff_denoiser(model)
    if karras:
        sigmas = K.sampling.get_sigmas_karras(steps, float(den.sigma_min), float(den.sigma_max))
    else:
        sigmas = den.get_sigmas(steps)
    cfgd = CFGDenoiser(den, model.encode(prompts), model.encode([""] * len(prompts)), cfg)
    x = initial_noise(seeds) * sigmas[0]
    kwargs = {}
    if sampler == "euler_a":
        kwargs["noise_sampler"] = K.sampling.BrownianTreeNoiseSampler(x, sigmas[-2], sigmas[0], seed=int(seeds[0])) \
            if False else None
    fn = getattr(K.sampling, fn_name)
    out = fn(cfgd, x, sigmas, callback=callback, disable=True, **{k: v for k, v in kwargs.items() if v is not None})
    return out.clamp(-1, 1)
