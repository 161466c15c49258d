"""The one broadcast helper (k-diffusion's ``utils.append_dims``): a per-row value [B] against a batch [B, ...]."""

from __future__ import annotations

import torch


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """``v`` with trailing singleton dimensions up to ``ndim`` (a view: no copy, no device read)."""
    extra = ndim - v.ndim
    if extra < 0:
        raise ValueError(f"append_dims: input has {v.ndim} dims, more than the target {ndim}")
    return v[(...,) + (None,) * extra]
