"""The "checkpoint" the double loads: the analytic memorizing denoiser (memstab_testbed.analytic) behind SD 1.x's
alphas_cumprod, extended to larger latents (hires) by upsampling its patterns."""

import math
from types import SimpleNamespace

import torch

from memstab_testbed.analytic import AnalyticModel, smooth_pattern, stored_image
from memstab_testbed.model import sd_alphas_cumprod

MODEL_HASH = "a1b2c3d4e5"


class HostModel:
    latent_channels = 4
    is_sdxl = False
    scale_factor = 0.18215  # A1111's LatentDiffusion: the VAE latent scale (SDXL: 0.13025)

    def __init__(self):
        self.alphas_cumprod = sd_alphas_cumprod()
        self.analytic = AnalyticModel()
        self.sd_model_hash = MODEL_HASH
        self.sd_checkpoint_info = SimpleNamespace(shorthash=MODEL_HASH, sha256=MODEL_HASH + "f" * 54,
                                                  name="analytic.safetensors")

    def denoise(self, x, sigma, conds):
        if tuple(x.shape[-2:]) == (8, 8):
            return self.analytic.denoise(x, sigma, conds)
        return _denoise_scaled(self.analytic, x, sigma, conds)


def _denoise_scaled(an, x, sigma, conds):
    k = x.shape[-1] // 8

    def up(t):
        return t.repeat_interleave(k, -2).repeat_interleave(k, -1)

    s2 = an.s**2
    sig = sigma.reshape(-1, 1, 1, 1).to(x)
    shrink = s2 / (s2 + sig**2)
    out = torch.empty_like(x)
    for i, c in enumerate(conds):
        xi, sh, sg = x[i], shrink[i], sig[i]
        if c is None:
            out[i] = xi * sh
            continue
        m = up(smooth_pattern(abs(c) + (1000 if c < 0 else 0))).to(x)
        broad = m + (xi - m) * sh
        if c >= 0:
            out[i] = broad
            continue
        y = up(stored_image(-c - 1)).to(x)
        d = xi[0].numel()
        ll_y = -((xi - y) ** 2).sum() / (2 * sg**2) - d * torch.log(sg)
        ll_b = -((xi - m) ** 2).sum() / (2 * (s2 + sg**2)) - 0.5 * d * torch.log(s2 + sg**2)
        w = torch.sigmoid(ll_y - ll_b + math.log(an.pi / (1 - an.pi)))
        out[i] = w * y + (1 - w) * broad
    return out


class SDXLModel(HostModel):
    """SDXL as the host shows it: is_sdxl, its VAE scale, dict conds (the CFG denoiser wraps them), 1024 px."""
    is_sdxl = True
    scale_factor = 0.13025

    def __init__(self, short="5e6f7a8b9c"):
        super().__init__()
        self.sd_model_hash = short
        self.sd_checkpoint_info = SimpleNamespace(shorthash=short, sha256=short + "0" * 54, name="sdxl.safetensors")


class Flux16Model(HostModel):
    """A 16-channel latent model (SD3/Flux on Forge): only shrinks towards zero (the guard must not judge it)."""
    latent_channels = 16
    scale_factor = 0.3611

    def __init__(self):
        super().__init__()
        self.sd_model_hash = "16c0ffee00"
        self.sd_checkpoint_info = SimpleNamespace(shorthash="16c0ffee00", sha256="16c0ffee00" + "0" * 54,
                                                  name="flux.safetensors")

    def denoise(self, x, sigma, conds):
        s2 = self.analytic.s**2
        return x * (s2 / (s2 + sigma.reshape(-1, 1, 1, 1).to(x) ** 2))
