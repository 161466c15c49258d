"""KDiffusionSampler driving the real k-diffusion sampler functions (sample / sample_img2img as in A1111 1.10)."""

import torch
from modules import sd_samplers_common, shared
from modules.sd_samplers_cfg_denoiser import CFGDenoiser
from modules.sd_samplers_common import SamplerData


def _k():
    from memstab_testbed.kdiff import import_k_diffusion

    return import_k_diffusion()


samplers_k_diffusion = [
    ("Euler", "sample_euler", {}),
    ("Euler a", "sample_euler_ancestral", {"uses_ensd": True}),
    ("DPM++ 2M", "sample_dpmpp_2m", {"scheduler": "karras"}),
    ("Heun", "sample_heun", {"second_order": True}),
    ("DPM2", "sample_dpm_2", {"second_order": True, "discard_next_to_last_sigma": True}),
]


class CFGDenoiserKDiffusion(CFGDenoiser):
    pass


class KDiffusionSampler(sd_samplers_common.Sampler):
    def __init__(self, funcname, sd_model, options=None):
        super().__init__(funcname)
        self.options = options or {}
        self.func = getattr(_k().sampling, funcname)
        self.model_wrap_cfg = CFGDenoiserKDiffusion(self)
        ac = sd_model.alphas_cumprod
        self.model_wrap = _k().external.DiscreteSchedule(((1 - ac) / ac) ** 0.5, quantize=True)

    def get_sigmas(self, p, steps):
        discard = self.config is not None and self.config.options.get("discard_next_to_last_sigma", False)
        steps += 1 if discard else 0
        if self.config is not None and self.config.options.get("scheduler") == "karras":
            sigmas = _k().sampling.get_sigmas_karras(n=steps, sigma_min=float(self.model_wrap.sigma_min),
                                                     sigma_max=float(self.model_wrap.sigma_max))
        else:
            sigmas = self.model_wrap.get_sigmas(steps)
        if discard:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        return sigmas

    def _extra_args(self, p, conditioning, unconditional_conditioning):
        return {"cond": conditioning, "image_cond": None, "uncond": unconditional_conditioning,
                "cond_scale": p.cfg_scale, "s_min_uncond": 0.0}

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        steps = steps or p.steps
        sigmas = self.get_sigmas(p, steps)
        x = x * sigmas[0]
        self.initialize(p)
        self.last_latent = x
        self.sampler_extra_args = self._extra_args(p, conditioning, unconditional_conditioning)
        torch.manual_seed(p.seeds[0])  # ancestral noise, deterministic per batch
        return self.launch_sampling(steps, lambda: self.func(self.model_wrap_cfg, x, sigmas,
                                                             extra_args=self.sampler_extra_args, disable=True,
                                                             callback=self.callback_state))

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        sigmas = self.get_sigmas(p, steps)
        sigma_sched = sigmas[steps - t_enc - 1:]
        xi = x + noise * sigma_sched[0]
        self.initialize(p)
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        self.sampler_extra_args = self._extra_args(p, conditioning, unconditional_conditioning)
        torch.manual_seed(p.seeds[0] + 7)
        return self.launch_sampling(t_enc + 1, lambda: self.func(self.model_wrap_cfg, xi, sigma_sched,
                                                                 extra_args=self.sampler_extra_args, disable=True,
                                                                 callback=self.callback_state))


samplers_data_k_diffusion = [
    SamplerData(label, lambda model, funcname=funcname, o=o: KDiffusionSampler(funcname, model, o), [], o)
    for label, funcname, o in samplers_k_diffusion
]
_ = shared
