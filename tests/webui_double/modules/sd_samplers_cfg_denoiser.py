"""CFGDenoiser.forward in the order of host-api.md 1.3 (A1111), 3.2 (Forge-flavoured) and 3.3 (reForge: as Forge, but
reassigning params.x / params.sigma in on_cfg_denoiser is ignored)."""

import torch
from modules import script_callbacks, sd_samplers_common, shared
from modules.script_callbacks import AfterCFGCallbackParams, CFGDenoisedParams, CFGDenoiserParams

UNCOND = -(10**9)  # the "negative prompt" condition id


def reconstruct_multicond_batch(c, step):
    """c: per image, a list of (condition id, weight) -> conds_list [[(row, weight)...]...], tensor [n_cond, 1]."""
    conds_list, rows = [], []
    for conds in c:
        entry = []
        for cond_id, weight in conds:
            entry.append((len(rows), weight))
            rows.append(cond_id)
        conds_list.append(entry)
    return conds_list, torch.tensor(rows, dtype=torch.long).view(-1, 1)


def _wrap(t):
    """SDXL's conds are dicts (host-api.md 1.2): crossattn rows plus a pooled vector."""
    if getattr(shared.sd_model, "is_sdxl", False):
        return {"crossattn": t, "vector": t.float().expand(-1, 4)}
    return t


def _unwrap(t):
    return t["crossattn"] if isinstance(t, dict) else t


class HostKDenoiser:
    """The k-diffusion model wrapper: x0 prediction per row; row conditions from the cond tensor."""

    def __init__(self, sd_model):
        self.inner_model = sd_model

    def __call__(self, x, sigma, cond):
        conds = [None if v == UNCOND else v for v in cond[:, 0].tolist()]
        return self.inner_model.denoise(x, sigma, conds)


class CFGDenoiser(torch.nn.Module):
    mask_before_denoising = False
    classic_ddim_eps_estimation = False

    def __init__(self, sampler):
        super().__init__()
        self.sampler = sampler
        self.model_wrap = None
        self.mask = self.nmask = self.init_latent = None
        self.steps = self.total_steps = None
        self.step = 0
        self.image_cfg_scale = None
        self.p = None
        self.forge = shared.HOST in ("forge", "reforge")
        self.reforge = shared.HOST == "reforge"
        self.inner_model = HostKDenoiser(shared.sd_model)

    def combine_denoised(self, x_out, conds_list, uncond, cond_scale):
        denoised_uncond = x_out[-uncond.shape[0]:]
        denoised = torch.clone(denoised_uncond)
        for i, conds in enumerate(conds_list):
            for cond_index, weight in conds:
                denoised[i] += (x_out[cond_index] - denoised_uncond[i]) * (weight * cond_scale)
        return denoised

    def get_pred_x0(self, x_in, x_out, sigma):
        return x_out

    def apply_refiner(self):
        """A1111's refiner switch (by sampling steps): reload the weights mid-run, same denoiser, counters go on."""
        at = getattr(self.p, "refiner_switch_at", None)
        refiner = getattr(self.p, "refiner_model", None)
        if at is None or refiner is None or shared.sd_model is refiner or self.step / self.total_steps < at:
            return
        self.p.extra_generation_params["Refiner"] = refiner.sd_checkpoint_info.name
        self.p.extra_generation_params["Refiner switch at"] = at
        shared.sd_model = self.p.sd_model = refiner
        self.inner_model = type(self.inner_model)(refiner)

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond=0.0, image_cond=None):
        if shared.state.interrupted or shared.state.skipped:
            raise sd_samplers_common.InterruptedException
        self.apply_refiner()
        if self.forge:
            return self._forward_forge(x, sigma, uncond, cond, cond_scale)
        conds_list, tensor = reconstruct_multicond_batch(cond, self.step)
        batch_size = len(conds_list)
        repeats = [len(conds_list[i]) for i in range(batch_size)]
        if self.mask_before_denoising and self.mask is not None:
            x = self.init_latent * self.mask + self.nmask * x
        x_in = torch.cat([torch.stack([x[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [x])
        sigma_in = torch.cat([torch.stack([sigma[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [sigma])
        image_cond_in = torch.zeros(x_in.shape[0], 5, 1, 1)
        params = CFGDenoiserParams(x_in, image_cond_in, sigma_in, shared.state.sampling_step,
                                   shared.state.sampling_steps, _wrap(tensor), _wrap(uncond), self)
        script_callbacks.cfg_denoiser_callback(params)
        x_in, sigma_in = params.x, params.sigma
        tensor, uncond = _unwrap(params.text_cond), _unwrap(params.text_uncond)
        x_out = self.inner_model(x_in, sigma_in, cond=torch.cat([tensor, uncond]))
        script_callbacks.cfg_denoised_callback(CFGDenoisedParams(x_out, shared.state.sampling_step,
                                                                 shared.state.sampling_steps, self.inner_model))
        denoised = self.combine_denoised(x_out, conds_list, uncond, cond_scale)
        if not self.mask_before_denoising and self.mask is not None:
            denoised = self.init_latent * self.mask + self.nmask * denoised
        self.sampler.last_latent = self.get_pred_x0(x_in[-batch_size:], denoised, sigma_in[-batch_size:])
        after = AfterCFGCallbackParams(denoised, shared.state.sampling_step, shared.state.sampling_steps)
        script_callbacks.cfg_after_cfg_callback(after)
        denoised = after.x
        self.step += 1
        return denoised

    def _forward_forge(self, x, sigma, uncond, cond, cond_scale):
        """B rows, the sampler's own latent object in params.x, no on_cfg_denoised; DDIM converted to k-diffusion
        space before the callbacks (classic_ddim_eps_estimation) and eps recomputed after. reForge keeps its local
        x / sigma (reassignment ignored, in-place edits propagate); both re-read the conds."""
        if self.classic_ddim_eps_estimation:
            acd = shared.sd_model.alphas_cumprod
            fake_sigmas = ((1 - acd) / acd) ** 0.5
            real_sigma = fake_sigmas[sigma.round().long().clip(0, int(fake_sigmas.shape[0]) - 1)]
            x = x * ((real_sigma**2.0 + 1.0) ** 0.5)[:, None, None, None]
            sigma = real_sigma
        conds_list, tensor = reconstruct_multicond_batch(cond, self.step)
        params = CFGDenoiserParams(x, torch.zeros(x.shape[0], 5, 1, 1), sigma, shared.state.sampling_step,
                                   shared.state.sampling_steps, _wrap(tensor), _wrap(uncond), self)
        script_callbacks.cfg_denoiser_callback(params)
        if not self.reforge:
            x, sigma = params.x, params.sigma
        tensor, uncond = _unwrap(params.text_cond), _unwrap(params.text_uncond)
        repeats = [len(c) for c in conds_list]
        x_in = torch.cat([torch.stack([x[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [x])
        sigma_in = torch.cat([torch.stack([sigma[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [sigma])
        x_out = HostKDenoiser(shared.sd_model)(x_in, sigma_in, cond=torch.cat([tensor, uncond]))
        denoised = self.combine_denoised(x_out, conds_list, uncond, cond_scale)
        self.sampler.last_latent = denoised
        after = AfterCFGCallbackParams(denoised, shared.state.sampling_step, shared.state.sampling_steps)
        script_callbacks.cfg_after_cfg_callback(after)
        denoised = after.x
        self.step += 1
        if self.classic_ddim_eps_estimation:
            return (x - denoised) / sigma[:, None, None, None]
        return denoised
