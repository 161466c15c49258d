"""One job's run: host events in, passes out. It routes each host event to the current pass (memstab_webui.passes),
keeps the sampler schedules the patches record, and owns the job's Results (memstab_webui.infotext), to which each
pass is handed as it ends. Registered for its p through memstab_webui.registry.

Used for guarded jobs (an observer factory that makes Guards) and for calibration (one that makes recorders), with
the same step identification.
"""

from __future__ import annotations

import dataclasses

import torch

from lib_memstab import Guard
from lib_memstab.schedules import timestep_sigma

from .infotext import Results
from .passes import Failures, JobContext, Pass


def guard_observers(profile, config):
    """The observer factory of a guarded job: one Guard per pass; a pass without a recorded schedule only detects
    (mitigation needs sigma_next)."""
    def make(steps, can_mitigate):
        c = config if can_mitigate or config.mode != "mitigate" else dataclasses.replace(config, mode="detect")
        return Guard(profile, c, steps=steps)

    return make


class Run:
    def __init__(self, p, job: str, make_observer, norm: str, label: str, verbosity: str = "errors", args=None):
        self.p = p  # held: the id(p) key must not be reused while the entry exists
        self.job = job
        self.args = args  # the parsed script arguments of a guarded job (None for calibration)
        self.ctx = JobContext(p, make_observer, norm, Failures(), verbosity, label)
        self.passes: list[Pass] = []
        self.current: Pass | None = None
        self.schedules: dict[int, tuple] = {}  # id(sampler) -> (sampler, kind, tensor)
        self.results = Results(verbosity)

    @property
    def failure(self) -> str | None:
        return self.ctx.failures.first

    @property
    def unsupported(self):
        return self.ctx.unsupported[0] if self.ctx.unsupported else None

    # ---------------------------------------------------------------- host events
    def record_schedule(self, sampler, values, kind: str) -> None:
        try:
            self.schedules[id(sampler)] = (sampler, kind, torch.as_tensor(values).detach())
        except Exception as e:
            self.fail(e, "recording the schedule")

    def schedule_for(self, sampler, ac) -> torch.Tensor | None:
        """The sampler's noise levels, ascending, float32 (sigmas, or the timesteps' sigmas)."""
        hit = self.schedules.get(id(sampler))
        if hit is None or hit[0] is not sampler:
            return None
        _, kind, t = hit
        if kind == "timesteps":
            if ac is None:
                return None
            t = timestep_sigma(t, ac)
        return torch.sort(t.float().reshape(-1)).values

    def pass_for(self, denoiser) -> Pass:
        cur = self.current
        if cur is not None and cur.denoiser is denoiser:
            return cur
        it = getattr(self.p, "iteration", 0)
        index = sum(1 for q in self.passes if q.iteration == it)
        cur = Pass(self.ctx, denoiser, index, self.schedule_for)
        self.passes.append(cur)
        self.results.pending.append(cur.close)
        self.current = cur
        return cur

    def on_denoiser(self, params, denoiser) -> None:
        self.pass_for(denoiser).on_denoiser(params)

    def on_denoised(self, params) -> None:
        cur = self.current
        if cur is not None and cur.main:
            cur.on_denoised(params.x)

    def on_after_cfg(self, params) -> None:
        cur = self.current
        if cur is not None and cur.main:
            params.x = cur.on_after_cfg(params.x)

    def on_sampler_callback(self, sampler, d) -> None:
        """One sampler step: arms the next model evaluation as the step's main one.

        Two routes deliver it: our wrapper of ``Sampler.callback_state`` (every host) and, on reForge, the Script hook
        ``process_before_every_step``, which reForge calls at the top of that same callback_state, with the same ``d``.
        A step counts once: the second delivery of one ``d`` (same object) is ignored, whichever route comes first."""
        cur = self.current
        if cur is None or getattr(cur.denoiser, "sampler", sampler) is not sampler or d is cur.last_d:
            return
        cur.last_d = d
        cur.callbacks += 1
        cur.armed = True

    def on_step(self, d) -> None:
        """reForge's process_before_every_step(p, d=d): the step of p's current sampler."""
        cur = self.current
        if cur is not None:
            self.on_sampler_callback(getattr(cur.denoiser, "sampler", None), d)

    def on_sampling_start(self) -> None:
        """process_before_every_sampling: counted per (batch, pass kind) for the debug log, nothing else. Forge calls
        it three times for txt2img + hires (once, then twice before the hires pass); passes are keyed on the CFG
        denoiser, so repeated calls create no state."""
        key = (getattr(self.p, "iteration", 0), bool(getattr(self.p, "is_hr_pass", False)))
        starts = self.ctx.sampling_starts
        starts[key] = starts.get(key, 0) + 1

    # ---------------------------------------------------------------- failures and the end
    def fail(self, exc: BaseException, where: str) -> None:
        """Log once per run with the traceback; note it on the images of the pass; that pass stops observing."""
        msg = self.ctx.failures.note(exc, where, "the image will finish without the guard for this pass")
        cur = self.current
        if cur is not None and not cur.finished:
            cur.disable(msg)
        else:
            self.results.note_job(msg)

    def note_interrupted(self) -> None:
        for q in self.passes:
            if not q.finished:
                q.notes.append("interrupted")

    def finalize(self) -> None:
        self.results.finalize()

    def release(self) -> None:
        """After the job: keep the results (Processed.infotext may render again later), drop what holds the host's
        samplers and tensors alive (p keeps this run reachable through its infotext values)."""
        self.results.finalize()
        for q in self.passes:
            q.release()
        self.schedules.clear()
        self.current = None
