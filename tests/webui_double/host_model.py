"""The "checkpoint" the double loads: the analytic memorizing denoiser (memstab_testbed.analytic) behind SD 1.x's
alphas_cumprod, extended to larger latents (hires) by upsampling its patterns."""

from types import SimpleNamespace

from memstab_testbed.analytic import AnalyticModel
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
        return self.analytic.denoise(x, sigma, conds)  # larger latents (hires) see upsampled patterns


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
