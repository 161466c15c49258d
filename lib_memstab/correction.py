"""Verdict -> correction: the paper's mitigation, expressed as a replacement for the CFG-combined ``denoised``.

The paper corrects the sampler's proposal z' (the next latent): rescale x0_hat to the reference mean norm; for strong
cases clamp the update norm into the region; clamp the latent norm. Every host lets an extension change ``denoised``,
so the corrected proposal is turned back into the ``denoised`` that makes a deterministic (Euler / DDIM) step land on
it: x_next = r x + (1 - r) D with r = sigma_next / sigma, hence D' = (x_next' - r x) / (1 - r). For other samplers
the same D' is a first-order approximation of the paper's step.
"""

from __future__ import annotations

import torch

from .dims import append_dims
from .observation import StepObservation, flat_norm

_EPS = 1e-12


def clamp_norm(v: torch.Tensor, norm_v: torch.Tensor, low: torch.Tensor, high: torch.Tensor):
    """Rescale each row of ``v`` so that its norm lies in [low, high]; returns (v', factor). Direction is kept."""
    target = torch.minimum(torch.maximum(norm_v, low.clamp_min(0)), high)
    factor = target / norm_v.clamp_min(_EPS)
    factor = torch.where(norm_v > _EPS, factor, torch.ones_like(factor))  # a zero vector has no direction to scale
    return v * append_dims(factor, v.ndim), factor


def corrected_denoised(x: torch.Tensor, denoised: torch.Tensor, obs: StepObservation, mean: torch.Tensor,
                       std: torch.Tensor, latent_next_mean: torch.Tensor, latent_next_std: torch.Tensor,
                       gamma: float, strong: torch.Tensor, update_is_rate: bool, norm: str) -> torch.Tensor:
    """The corrected denoised (float32) for every row; the caller keeps it only where mitigation is active.

    mean/std: [3, B] reference statistics of (update, latent, x0) at this step; latent_next_*: [B] reference latent
    statistics at sigma_next, the region the next latent must land in.
    """
    xf, d = x.float(), denoised.float()

    def col(v):
        return append_dims(v, xf.ndim)

    s, sn = obs.sigma, obs.sigma_next
    # (a) rescale x0_hat to the reference mean norm
    d1 = d * col(mean[2] / obs.x0.clamp_min(_EPS))
    # (b) strong only: bring the implied update's norm into the region
    step = (sn - s) / s.clamp_min(_EPS)
    u = (xf - d1) * col(step)
    u_norm = flat_norm(u, norm)
    width = (sn - s).abs() if update_is_rate else torch.ones_like(s)
    u_low, u_high = (mean[0] - gamma * std[0]) * width, (mean[0] + gamma * std[0]) * width
    u_clamped, fu = clamp_norm(u, u_norm, u_low, u_high)
    fu = torch.where(strong, fu, torch.ones_like(fu))
    u2 = torch.where(col(strong), u_clamped, u)
    # (c) bring the implied next latent's norm into the region at sigma_next (none at the final step, sigma_next = 0)
    xn = xf + u2
    xn_clamped, fz = clamp_norm(xn, flat_norm(xn, norm), latent_next_mean - gamma * latent_next_std,
                                latent_next_mean + gamma * latent_next_std)
    has_next = sn > 0
    fz = torch.where(has_next, fz, torch.ones_like(fz))
    xn2 = torch.where(col(has_next), xn_clamped, xn)
    # the denoised that makes x_next = r x + (1 - r) D land on xn2
    r = sn / s.clamp_min(_EPS)
    denom = 1 - r
    solvable = denom > 1e-6
    d_solved = (xn2 - col(r) * xf) / col(denom.clamp_min(1e-6))
    changed = ((fu != 1) | (fz != 1)) & solvable
    out = torch.where(col(changed), d_solved, d1)
    return torch.where(torch.isfinite(out), out, d)


def _centred(v: torch.Tensor) -> torch.Tensor:
    """Each channel of each row minus its spatial mean: the image's content without its overall colour."""
    return v - v.mean(dim=tuple(range(2, v.ndim)), keepdim=True)


def repelled_denoised(denoised: torch.Tensor, anchor: torch.Tensor, strength: float) -> torch.Tensor:
    """Self-repulsion (float32): remove ``strength`` times the component of x0_hat along the anchor, the x0_hat the
    guard saw when it armed. A memorized prompt's denoiser keeps predicting that image at every later step, so the
    removal acts every step to the end; both are centred per channel, so the image keeps its overall colour.

    Per row: D' = D - s <c(D), u> u with u = c(A) / ||c(A)|| and c() the per-channel centring.
    """
    d = denoised.float()
    u = _centred(anchor.float()).flatten(1)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(_EPS)
    coef = (_centred(d).flatten(1) * u).sum(1, keepdim=True)
    out = d - strength * (coef * u).view_as(d)
    return torch.where(torch.isfinite(out), out, d)
