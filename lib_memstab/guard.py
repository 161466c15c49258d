"""Observation -> verdict -> correction, once per sampler step, for one batch of images.

Everything per step stays on the latent's device: decisions are masks (``torch.where``), per-step numbers go into a
preallocated buffer, and nothing is read back on the host until ``verdicts()``. A hook that synchronised the device
every step would stall the GPU queue (the webui itself moved its NaN check out of the step loop for this reason).
"""

from __future__ import annotations

import math

import torch

from .config import GuardConfig
from .correction import corrected_denoised, repelled_denoised
from .dims import append_dims
from .observation import as_sigma, observe_step
from .profile import Profile
from .rules import EARLY_FRACTION, early_flag, early_kind, early_signal, threshold_at
from .verdict import Verdict, final_verdict, verdict_thresholds

_INITIAL_CAPACITY = 64


class _Segment:
    """The state of one sampling pass over one latent shape (a hires second pass is a new segment)."""

    def __init__(self, shape: torch.Size, device: torch.device, capacity: int, index: int):
        b = shape[0]
        self.shape, self.index, self.steps = shape, index, 0
        # per step: z update/latent/x0, active, cond gap, cond gap z
        self.trace = torch.full((capacity, 6, b), math.nan, device=device)
        self.flagged = torch.zeros(b, dtype=torch.bool, device=device)
        self.strong = torch.zeros(b, dtype=torch.bool, device=device)
        self.first = torch.full((b,), -1, dtype=torch.long, device=device)
        self.mitigated = torch.zeros(b, dtype=torch.long, device=device)
        self.early_hit = torch.zeros(b, dtype=torch.bool, device=device)  # guard v2's early flag, latched
        self.early_first = torch.full((b,), -1, dtype=torch.long, device=device)
        # the early score (max of the early signal over the early window), for each kind, for the final verdict
        self.early_max = torch.full((2, b), -math.inf, device=device)  # [update alone, max with the cond gap]
        self.gap_steps = 0  # steps with a cond-gap z: the "max" kind applies when every step had one
        self.nonfinite = torch.zeros(b, dtype=torch.bool, device=device)
        self.extrapolated = torch.zeros(b, dtype=torch.bool, device=device)
        self.armed = torch.zeros(b, dtype=torch.bool, device=device)  # repel mitigation, latched
        self.anchor: torch.Tensor | None = None  # x0_hat at arming: one latent per image, allocated once

    def row(self) -> torch.Tensor:
        """The trace row for the next step; grows by doubling (rarely) so that no step allocates."""
        if self.steps == self.trace.shape[0]:
            self.trace = torch.cat([self.trace, torch.full_like(self.trace, math.nan)])
        return self.trace[self.steps]


class Guard:
    """Per-run state for one batch: call ``observe`` once per sampler step at the step's main model evaluation."""

    def __init__(self, profile: Profile, config: GuardConfig | None = None, steps: int | None = None):
        self.profile = profile
        self.config = config or GuardConfig()
        self.segments: list[_Segment] = []
        self._capacity = max(8, int(steps)) if steps else _INITIAL_CAPACITY
        self._early = profile.early_limit(self.config.early_fraction)
        # guard v2's early flag: thresholds on the references' early scores, in the window they were measured in
        self._early_flag_limit = profile.early_limit(float(profile.meta.get("early_fraction", EARLY_FRACTION)))
        self._t_early = {k: threshold_at(v, self.config.fpr_early) for k, v in profile.reference_early.items()
                         if len(v) >= 2}
        # repel mitigation arms at the early flag (on the testbed the only signal that fires while a copy can still
        # be steered: docs/findings.md) or where the final verdict will not be clean: with the calibrated verdict,
        # as soon as the update z passes its "suspicious" threshold (the score is the max over the pass) or, inside
        # the early window, the early signal passes its own; with the paper's rule, when the AND flag fires
        self._t_arm = {}
        for kind in ("update", "max"):
            th, eth, _ = verdict_thresholds(profile, self.config, kind)
            self._t_arm[kind] = (th["suspicious"], math.inf if eth is None else eth["suspicious"])
        self._force_new = False

    # ------------------------------------------------------------------ the per-step call
    def observe(self, x: torch.Tensor, denoised: torch.Tensor, sigma, sigma_next,
                cond_gap: torch.Tensor | None = None) -> torch.Tensor:
        """Record this step and return the denoised latent the sampler should use.

        x: the sampler's current latent [B, C, H, W] (k-diffusion space); denoised: the CFG-combined x0_hat;
        sigma / sigma_next: this step's noise levels (floats, 0-dim or [B] tensors on the latent's device);
        cond_gap: optional [B] ||D_cond - D_uncond|| / sigma. In "detect" mode the very ``denoised`` is returned; in
        "mitigate" mode rows that need nothing are bit-for-bit the input's.
        """
        cfg = self.config
        if cfg.mode == "off":
            return denoised
        seg = self._segment_for(x)
        i = seg.steps
        p = self.profile
        obs = observe_step(x, denoised, sigma, sigma_next, p.norm)
        key = p.key_of(obs.sigma, i)
        mean, std, outside = p.lookup(key)  # [Q, B]: update, latent, x0 (and the cond gap where calibrated)
        update = obs.rate if p.axis == "log_sigma" else obs.update
        z = (torch.stack([update, obs.latent, obs.x0]) - mean[:3]).abs() / std[:3]  # [3, B]
        z_upd, z_x0 = z[0], z[2]

        # the early flag (the paper's rule, lib_memstab.rules), latched at its first step: it arms mitigation
        finite = obs.finite
        new = ~seg.flagged & finite & early_flag(z_upd, z_x0, cfg.tau_mild)
        seg.strong |= new & (z_x0 > cfg.tau_strong)
        seg.first = torch.where(new, torch.full_like(seg.first, i), seg.first)
        seg.flagged |= new
        seg.nonfinite |= ~finite
        seg.extrapolated |= outside

        row = seg.row()
        row[0:3] = z
        z_gap = None
        if cond_gap is not None:
            gap = torch.as_tensor(cond_gap, dtype=torch.float32, device=x.device).reshape(-1)
            row[4] = gap
            if p.has_gap:  # one-sided: a memorized prompt widens the gap
                z_gap = row[5] = (gap - mean[3]) / std[3]
        kind = early_kind(z_gap is not None)
        seg.gap_steps += z_gap is not None
        signal = early_signal(z_upd, z_gap) if z_gap is not None else z_upd
        window = finite & p.is_early(key, self._early_flag_limit)
        seg.early_max = torch.where(window, torch.maximum(seg.early_max, torch.stack([z_upd, signal])),
                                    seg.early_max)
        if kind in self._t_early:
            hit = ~seg.early_hit & window & (signal > self._t_early[kind])
            seg.early_first = torch.where(hit, torch.full_like(seg.early_first, i), seg.early_first)
            seg.early_hit |= hit
        seg.steps += 1
        if cfg.mode != "mitigate":
            return denoised

        if cfg.mitigation == "repel":
            if cfg.verdict == "paper":
                arm = seg.flagged
            else:
                t_pass, t_early = self._t_arm[kind]
                arm = seg.early_hit | (finite & (z_upd > t_pass)) | (window & (signal > t_early))
            return self._repel(seg, row, denoised, arm)
        early = p.is_early(key, self._early)
        active = seg.flagged & finite & (z_upd > cfg.tau_mild) & (seg.strong | early)
        row[3] = active.float()
        seg.mitigated += active.long()
        next_key = p.key_of(as_sigma(sigma_next, x), i + 1)
        next_mean, next_std, _ = p.lookup(next_key)
        fixed = corrected_denoised(x, denoised, obs, mean[:3], std[:3], next_mean[1], next_std[1], cfg.gamma,
                                   seg.strong, p.axis == "log_sigma", p.norm)
        return torch.where(append_dims(active, denoised.ndim), fixed.to(denoised.dtype), denoised)

    def _repel(self, seg: _Segment, row: torch.Tensor, denoised: torch.Tensor, arm: torch.Tensor) -> torch.Tensor:
        """Latch the rows that arm now with their x0_hat as anchor, then repel every armed row from its anchor."""
        if seg.anchor is None:  # one latent per image per segment: replaced each step at the same size, never grown
            seg.anchor = torch.zeros_like(denoised, dtype=torch.float32)
        new = arm & ~seg.armed
        seg.anchor = torch.where(append_dims(new, denoised.ndim), denoised.float(), seg.anchor)
        seg.armed |= new
        row[3] = seg.armed.float()
        seg.mitigated += seg.armed.long()
        fixed = repelled_denoised(denoised, seg.anchor, self.config.repel_strength)
        return torch.where(append_dims(seg.armed, denoised.ndim), fixed.to(denoised.dtype), denoised)

    def new_segment(self) -> None:
        """Start a new segment at the next ``observe`` even if the latent shape is unchanged (a host's second pass,
        e.g. hires fix at the same size or a refiner restart): it gets its own verdicts and its own latched state."""
        self._force_new = True

    def _segment_for(self, x: torch.Tensor) -> _Segment:
        if not self.segments or self.segments[-1].shape != x.shape or self._force_new:
            self._force_new = False
            self.segments.append(_Segment(x.shape, x.device, self._capacity, len(self.segments)))
        return self.segments[-1]

    # ------------------------------------------------------------------ results (the one host read-back)
    def verdicts(self) -> list[Verdict]:
        """One verdict per image per segment, in segment order. The final verdict (lib_memstab.rules) is judged on
        the whole pass; the early flag is what the guard latched while sampling."""
        out = []
        cfg = self.config
        window = cfg.score_window
        # once per call, not per image (the joint thresholds scan the reference pairs)
        thresholds = {kind: verdict_thresholds(self.profile, cfg, kind) for kind in ("update", "max")}
        for seg in self.segments:
            n = seg.steps
            flat = torch.cat([seg.trace[:n].flatten(), seg.flagged.float(), seg.strong.float(), seg.first.float(),
                              seg.mitigated.float(), seg.nonfinite.float(), seg.extrapolated.float(),
                              seg.early_hit.float(), seg.early_first.float(), seg.early_max.flatten()]).cpu()
            b = seg.shape[0]
            trace = flat[: n * 6 * b].view(n, 6, b)
            flags = flat[n * 6 * b:].view(10, b)
            kind = early_kind(n > 0 and seg.gap_steps == n)
            early_scores = flags[9 if kind == "max" else 8]
            w = n if window == "all" else min(int(window), n)
            for j in range(b):
                zu = trace[:, 0, j]
                gap = trace[:w, 4, j]
                gap = gap[torch.isfinite(gap)]
                early = bool(flags[0, j])
                final = final_verdict(zu.tolist(), self.profile, cfg, float(early_scores[j]), kind, thresholds[kind])
                out.append(Verdict(
                    image=j, segment=seg.index, steps=n, flagged=final.pop("flagged", early),
                    severity=("strong" if flags[1, j] else "mild") if early else "none",
                    first_step=int(flags[2, j]) if early else None, steps_mitigated=int(flags[3, j]),
                    nonfinite=bool(flags[4, j]), extrapolated=bool(flags[5, j]),
                    cond_gap=float(gap.mean()) if gap.numel() else None,
                    z_update=zu.tolist(), z_latent=trace[:, 1, j].tolist(), z_x0=trace[:, 2, j].tolist(),
                    z_gap=trace[:, 5, j].tolist(), early_step=int(flags[7, j]) if flags[6, j] else None,
                    mitigated=[k for k in range(n) if trace[k, 3, j] == 1], **final))
        return out
