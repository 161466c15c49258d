"""Host event -> observation: the three norms of the paper, per image, measured from one sampler step.

Everything is in k-diffusion's parametrisation, x = x0 + sigma * eps, where DDIM (eta = 0) is exactly Euler:
x_next = x + (sigma_next - sigma) * (x - denoised) / sigma. So the update the sampler is about to make is known at
this step, before the sampler moves, from the CFG-combined denoised output alone.

Norms are RMS (per element) by default, so that one profile serves other resolutions; "l2" is the paper's flat norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NORMS = ("rms", "l2")


def flat_norm(v: torch.Tensor, norm: str = "rms") -> torch.Tensor:
    """Per-image norm of a [B, ...] tensor, in float32 whatever the input dtype (fp16 sums overflow)."""
    n = v.detach().float().flatten(1).norm(dim=1)
    return n / math.sqrt(v[0].numel()) if norm == "rms" else n


def as_sigma(sigma, like: torch.Tensor) -> torch.Tensor:
    """A per-image float32 noise level on ``like``'s device from a float, a 0-dim or a [B] tensor; never synced."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=like.device).reshape(-1)
    return s.expand(like.shape[0]) if s.numel() == 1 else s


@dataclass
class StepObservation:
    """The norms at one step, each [B] float32 on the latent's device."""

    update: torch.Tensor  # ||x_next - x||: the implied update of a deterministic (Euler/DDIM) step
    rate: torch.Tensor  # ||x - denoised|| / sigma = update / |sigma_next - sigma|: independent of the step size
    latent: torch.Tensor  # ||x||
    x0: torch.Tensor  # ||denoised||, the predicted clean latent
    sigma: torch.Tensor
    sigma_next: torch.Tensor
    finite: torch.Tensor  # bool: every element of x and denoised is finite


def observe_step(x: torch.Tensor, denoised: torch.Tensor, sigma, sigma_next, norm: str = "rms") -> StepObservation:
    s = as_sigma(sigma, x)
    sn = as_sigma(sigma_next, x)
    latent = flat_norm(x, norm)
    x0 = flat_norm(denoised, norm)
    rate = flat_norm(x.float() - denoised.float(), norm) / s.clamp_min(1e-12)
    update = rate * (s - sn).abs()
    finite = torch.isfinite(latent) & torch.isfinite(x0)
    return StepObservation(update, rate, latent, x0, s, sn, finite)
