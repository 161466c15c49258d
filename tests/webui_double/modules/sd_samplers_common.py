"""Sampler base: callback_state, launch_sampling, initialize, setup_img2img_steps (host-api.md 1.6-1.7); on reForge
callback_state first calls the Script hook process_before_every_step (3.3)."""

from collections import namedtuple

from modules import shared


class InterruptedException(BaseException):
    pass


class SamplerData(namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])):
    def total_steps(self, steps):
        return steps * 2 if self.options.get("second_order", False) else steps


def setup_img2img_steps(p, steps=None):
    if shared.opts.data.get("img2img_fix_steps", False) or steps is not None:
        requested = steps or p.steps
        steps = int(requested / min(p.denoising_strength, 0.999)) if p.denoising_strength > 0 else 0
        t_enc = requested - 1
    else:
        steps = p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
    return steps, t_enc


class Sampler:
    def __init__(self, funcname):
        self.funcname = funcname
        self.func = funcname
        self.model_wrap = self.model_wrap_cfg = None
        self.sampler_extra_args = {}
        self.last_latent = None
        self.p = None
        self.config = None
        self.stop_at = None
        self.eta = None

    def callback_state(self, d):
        if shared.HOST == "reforge" and self.p is not None and self.p.scripts is not None:
            self.p.scripts.process_before_every_step(self.p, d=d)  # reForge only (host-api.md 3.3)
        step = d["i"]
        if self.stop_at is not None and step > self.stop_at:
            raise InterruptedException
        shared.state.sampling_step = step

    def launch_sampling(self, steps, func):
        self.model_wrap_cfg.steps = steps
        self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
        shared.state.sampling_steps = steps
        shared.state.sampling_step = 0
        try:
            return func()
        except InterruptedException:
            return self.last_latent

    def initialize(self, p):
        self.p = p
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.mask = getattr(p, "mask", None)
        self.model_wrap_cfg.nmask = getattr(p, "nmask", None)
        self.model_wrap_cfg.step = 0
        self.model_wrap_cfg.image_cfg_scale = None
        return {}
