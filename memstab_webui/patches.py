"""Class-level patches of the host's samplers, installed while a guarded job runs and removed after it.

- ``Sampler.callback_state``: the sampler's once-per-step callback; it arms the next model evaluation as the step's
  main one (host-api.md 1.7 C).
- ``KDiffusionSampler.get_sigmas`` / ``CompVisSampler.get_timesteps``: record the schedule, so that sigma_next is
  known at a step's main evaluation.

Every wrapper chains to what was there (another extension's wrapper included) and is gated on a run of ours. If
someone wrapped on top of ours, ours stays in their chain (inert when no run is registered) instead of being torn
out from under them.
"""

from __future__ import annotations

from .registry import RUN

_TARGETS = (("sd_samplers_common", "Sampler", "callback_state"),
            ("sd_samplers_kdiffusion", "KDiffusionSampler", "get_sigmas"),
            ("sd_samplers_timesteps", "CompVisSampler", "get_timesteps"))
_active: dict[tuple, tuple] = {}  # (cls, name) -> (wrapper, previous, previous was in the class's own dict)
_buried: dict[tuple, object] = {}  # ours, still inside someone else's chain


def _make(name, prev):
    if name == "callback_state":
        def wrapper(self, d):
            if RUN:
                run = RUN.get(id(getattr(self, "p", None)))
                if run is not None:
                    run.on_sampler_callback(self, d)
            return prev(self, d)
    else:
        kind = "sigmas" if name == "get_sigmas" else "timesteps"

        def wrapper(self, p, steps, *a, **kw):
            out = prev(self, p, steps, *a, **kw)
            if RUN:
                run = RUN.get(id(p))
                if run is not None:
                    run.record_schedule(self, out, kind)
            return out
    wrapper._memstab = True
    wrapper.__wrapped__ = prev
    return wrapper


def _classes():
    import importlib

    for mod_name, cls_name, attr in _TARGETS:
        try:
            cls = getattr(importlib.import_module(f"modules.{mod_name}"), cls_name)
        except (ImportError, AttributeError):
            continue  # a host without this sampler family
        if hasattr(cls, attr):
            yield cls, attr


def install() -> None:
    for cls, attr in _classes():
        key = (cls, attr)
        if key in _active or key in _buried:
            continue
        prev = getattr(cls, attr)
        own = attr in cls.__dict__
        wrapper = _make(attr, prev)
        setattr(cls, attr, wrapper)
        _active[key] = (wrapper, prev, own)


def uninstall() -> None:
    for key, (wrapper, prev, own) in list(_active.items()):
        cls, attr = key
        if cls.__dict__.get(attr) is wrapper:
            if own:
                setattr(cls, attr, prev)
            else:
                delattr(cls, attr)
        else:
            _buried[key] = wrapper  # someone chained on top of us: stay, gated and inert
        del _active[key]


def installed() -> bool:
    return bool(_active)


def release_if_idle() -> None:
    if not RUN and _active:
        uninstall()
