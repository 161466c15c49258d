"""Detection and reproduction metrics, written out so that their conventions are explicit."""

from __future__ import annotations

import numpy as np
import torch


def auc(pos, neg) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def roc_points(pos, neg) -> list[tuple[float, float]]:
    """(FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1); a sample is positive when score >= threshold."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    pts = [(0.0, 0.0)]
    for th in sorted(set(pos.tolist()) | set(neg.tolist()), reverse=True):
        pts.append((float((neg >= th).mean()), float((pos >= th).mean())))
    if pts[-1] != (1.0, 1.0):
        pts.append((1.0, 1.0))
    return pts


def tpr_at_fpr(pos, neg, fpr: float = 0.01, rule: str = "nearest") -> float:
    """TPR at a target FPR. ``nearest``: the ROC point whose FPR is nearest the target (Ren, Jeon, Asthana; the best
    TPR among equally near points). ``below``: the last point with FPR strictly below the target (Wen et al.)."""
    pts = roc_points(pos, neg)
    if rule == "below":
        return max(t for f, t in pts if f < fpr)
    best = min(abs(f - fpr) for f, _ in pts)
    return max(t for f, t in pts if abs(abs(f - fpr) - best) < 1e-12)


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row RMSE between [N, ...] tensors (pixels in [-1, 1])."""
    return (a - b).flatten(1).pow(2).mean(1).sqrt()


def nearest_rmse(images: torch.Tensor, train: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the RMSE to its nearest training image and that image's index."""
    flat = images.flatten(1).double()
    best = torch.full((len(images),), float("inf"), dtype=torch.float64)
    idx = torch.zeros(len(images), dtype=torch.long)
    for start in range(0, len(train), chunk):
        t = train[start:start + chunk].flatten(1).double()
        d = torch.cdist(flat, t)
        v, j = d.min(1)
        better = v < best
        best = torch.where(better, v, best)
        idx = torch.where(better, j + start, idx)
    return (best / flat.shape[1] ** 0.5).float(), idx


def _blur(x: torch.Tensor) -> torch.Tensor:
    """A small blur: the 3x3 binomial kernel, edges replicated."""
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).to(x)
    c = x.shape[1]
    x = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(x, k.expand(c, 1, 3, 3), groups=c)


def loose_rmse(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the RMSE to its nearest target after both are blurred and the image gets the brightness and
    contrast (one gain and one offset, least squares) that fit it best to that target; and the target's index.

    A copy the guard merely brightened or faded is still a copy to a user; this counts it as one."""
    g, t = _blur(images.float()).flatten(1), _blur(targets.float()).flatten(1)  # [N, P], [M, P]
    gc, tc = g - g.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    var_g = gc.pow(2).mean(1, keepdim=True).clamp_min(1e-8)  # [N, 1]
    cov = (gc @ tc.T / g.shape[1]).clamp_min(0)  # [N, M]; a negative gain (an inverted image) is no copy
    # residual of the best fit a*g + b to t: var(t) - cov^2 / var(g)
    resid = (tc.pow(2).mean(1)[None, :] - cov.pow(2) / var_g).clamp_min(0)
    best, idx = resid.sqrt().min(1)
    return best, idx
