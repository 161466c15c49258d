"""StableDiffusionProcessing (an unhashable dataclass), process_images with the script lifecycle of host-api.md 2.1,
create_infotext with list/callable values (2.5), Processed with infotext(p, index) and js()."""

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from modules import errors, infotext_utils, scripts, sd_samplers, shared
from modules.sd_samplers_cfg_denoiser import UNCOND


def _scripts(p, name, *a, **kw):
    """A1111 guards every script call with ``if p.scripts is not None``."""
    if p.scripts is not None:
        getattr(p.scripts, name)(p, *a, **kw)


def _noise(seeds, shape):
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@dataclass(repr=False)
class StableDiffusionProcessing:
    prompt: Any = "1"  # a str, or a list of one prompt per image (as prompt-matrix/dynamic prompts do)
    negative_prompt: str = ""
    seed: int = 1
    subseed: int = 1000
    steps: int = 20
    cfg_scale: float = 7.5
    sampler_name: str = "Euler"
    batch_size: int = 1
    n_iter: int = 1
    width: int = 64
    height: int = 64
    denoising_strength: float = 0.75
    scripts: Any = None
    script_args: list = field(default_factory=list)
    extra_generation_params: dict = field(default_factory=dict)
    override_settings: dict = field(default_factory=dict)
    is_api: bool = False

    def __post_init__(self):
        self.iteration = 0
        self.is_hr_pass = False
        self.sd_model = shared.sd_model
        self.all_prompts = self.all_seeds = self.all_subseeds = None
        self.prompts = self.seeds = self.subseeds = None
        self.c = self.uc = None
        self.sampler = None

    @property
    def latent_shape(self):
        return (getattr(self.sd_model, "latent_channels", 4), self.height // 8, self.width // 8)

    def setup_conds(self):
        # a prompt is condition ids joined by " AND "; negative ids are memorized images
        self.c = [[(int(s), 1.0) for s in prompt.split(" AND ")] for prompt in self.prompts]
        self.uc = torch.full((len(self.prompts), 1), UNCOND, dtype=torch.long)


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    hr_scale: int = 2
    hr_second_pass_steps: int = 0
    hr_sampler_name: str | None = None

    def sample(self):
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        x = _noise(self.seeds, self.latent_shape)
        _scripts(self, "process_before_every_sampling", x=x, noise=x, c=self.c, uc=self.uc)
        samples = self.sampler.sample(self, x, self.c, self.uc)
        if not self.enable_hr or shared.state.interrupted:
            return samples
        self.is_hr_pass = True
        _scripts(self, "before_hr")
        k = self.hr_scale
        samples = samples.repeat_interleave(k, -2).repeat_interleave(k, -1)  # the "Latent (nearest)" upscaler
        self.sampler = sd_samplers.create_sampler(self.hr_sampler_name or self.sampler_name, self.sd_model)
        noise = _noise([s + 1 for s in self.seeds], samples.shape[1:])
        _scripts(self, "process_before_every_sampling", x=samples, noise=noise, c=self.c, uc=self.uc)
        if shared.HOST == "forge":  # Forge calls it again after resetting forge_objects (host-api.md 3.1: 3x in all)
            _scripts(self, "process_before_every_sampling", x=samples, noise=noise, c=self.c, uc=self.uc)
        samples = self.sampler.sample_img2img(self, samples, noise, self.c, self.uc,
                                              steps=self.hr_second_pass_steps or self.steps)
        self.is_hr_pass = False
        return samples


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_latent: Any = None

    def sample(self):
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        noise = _noise(self.seeds, self.latent_shape)
        x = self.init_latent.expand(len(self.seeds), *self.latent_shape).clone()
        _scripts(self, "process_before_every_sampling", x=x, noise=noise, c=self.c, uc=self.uc)
        return self.sampler.sample_img2img(self, x, noise, self.c, self.uc)


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                    use_main_prompt=False, index=None, all_negative_prompts=None):
    if index is None:
        index = position_in_batch + iteration * p.batch_size
    generation_params = {"Steps": p.steps, "Sampler": p.sampler_name, "CFG scale": p.cfg_scale,
                         "Seed": all_seeds[index], "Size": f"{p.width}x{p.height}"}
    generation_params.update(p.extra_generation_params)
    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**locals())
        except Exception:
            errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
            generation_params[key] = None
    text = ", ".join([k if k == v else f"{k}: {infotext_utils.quote(v)}"
                      for k, v in generation_params.items() if v is not None])
    return f"{all_prompts[index]}\n{text}".strip()


class Processed:
    def __init__(self, p, images, infotexts):
        self.images, self.infotexts = images, infotexts
        self.extra_generation_params = p.extra_generation_params
        self.all_prompts, self.all_seeds, self.all_subseeds = p.all_prompts, p.all_seeds, p.all_subseeds
        self.batch_size = p.batch_size
        self.index_of_first_image = 0

    def infotext(self, p, index):
        return create_infotext(p, self.all_prompts, self.all_seeds, self.all_subseeds, comments=[],
                               position_in_batch=index % self.batch_size, iteration=index // self.batch_size)

    def js(self):
        obj = {"all_seeds": self.all_seeds, "extra_generation_params": self.extra_generation_params,
               "infotexts": self.infotexts}
        return json.dumps(obj, default=lambda o: None)


def process_images(p):
    """The job wrapper (state.begin) lives in the UI/API call, not here: nested calls (ADetailer) share a job."""
    n = p.n_iter * p.batch_size
    p.all_prompts = list(p.prompt) if isinstance(p.prompt, list) else [p.prompt] * n
    p.all_seeds = [int(p.seed) + i for i in range(n)]
    p.all_subseeds = [int(p.subseed) + i for i in range(n)]
    _scripts(p, "before_process")
    _scripts(p, "process")
    images, infotexts = [], []
    for it in range(p.n_iter):
        p.iteration = it
        if shared.state.interrupted:
            break
        sl = slice(it * p.batch_size, (it + 1) * p.batch_size)
        p.prompts, p.seeds, p.subseeds = p.all_prompts[sl], p.all_seeds[sl], p.all_subseeds[sl]
        kw = {"batch_number": it, "prompts": p.prompts, "seeds": p.seeds, "subseeds": p.subseeds}
        _scripts(p, "before_process_batch", **kw)
        _scripts(p, "process_batch", **kw)
        p.setup_conds()
        samples = p.sample()
        _scripts(p, "postprocess_batch", images=samples, batch_number=it)
        for i, image in enumerate(samples):
            pp = scripts.PostprocessImageArgs(image)
            _scripts(p, "postprocess_image", pp)
            infotexts.append(create_infotext(p, p.prompts, p.seeds, p.subseeds, index=i))
            images.append(pp.image)
        if shared.state.skipped:
            shared.state.skipped = False
        shared.state.nextjob()
    res = Processed(p, images, infotexts)
    _scripts(p, "postprocess", res)
    return res
