"""The three CFG callbacks, registered once for the process and gated on a run of ours.

With no guarded job (the default), each callback returns after one check of an empty dict and touches nothing, so
images are bit-identical to a webui without the extension. on_cfg_denoiser identifies the run from
``params.denoiser.p`` (A1111 >= 1.8, Forge, reForge); on_cfg_denoised and on_cfg_after_cfg carry no denoiser and
use what on_cfg_denoiser saw in the same model evaluation (the three run back to back in one thread).
"""

from __future__ import annotations

from . import api, patches, settings, xyz
from .registry import RUN, purge_stale

_CURRENT = [None]  # the run whose model evaluation is in flight, or None


def on_cfg_denoiser(params) -> None:
    if not RUN:
        return
    run = None
    try:
        den = getattr(params, "denoiser", None)
        p = getattr(den, "p", None)
        run = RUN.get(id(p))
        if run is None or run.p is not p:
            _CURRENT[0] = None
            _drop_stale()
            return
        _CURRENT[0] = run
        run.on_denoiser(params, den)
    except Exception as e:
        if run is not None:
            run.fail(e, "on_cfg_denoiser")


def _dispatch(params, method: str, where: str) -> None:
    """Hand a CFG callback to the current run, if any (set by on_cfg_denoiser of the same model call)."""
    if not RUN:
        return
    run = _CURRENT[0]
    if run is None:
        return
    try:
        getattr(run, method)(params)
    except Exception as e:
        run.fail(e, where)


def on_cfg_denoised(params) -> None:
    _dispatch(params, "on_denoised", "on_cfg_denoised")


def on_cfg_after_cfg(params) -> None:
    _dispatch(params, "on_after_cfg", "on_cfg_after_cfg")


def _drop_stale() -> None:
    """A sampling that is not ours while runs are registered: drop those of other jobs (crash leftovers)."""
    try:
        from modules import shared

        purge_stale(shared.state.job_timestamp)
        patches.release_if_idle()
    except Exception:
        pass


_CFG = (("on_cfg_denoiser", on_cfg_denoiser), ("on_cfg_denoised", on_cfg_denoised),
        ("on_cfg_after_cfg", on_cfg_after_cfg))


def _registered(script_callbacks, category: str, fn) -> bool:
    cmap = getattr(script_callbacks, "callback_map", None)
    if not isinstance(cmap, dict):
        return bool(getattr(fn, "_memstab_registered", False))
    return any(getattr(c, "callback", None) is fn for c in cmap.get(f"callbacks_{category}", []))


def register() -> None:
    """Idempotent: "Reload custom script bodies" re-executes the script without clearing callbacks."""
    from modules import script_callbacks as sc

    wanted = [*_CFG, ("on_ui_settings", settings.register), ("on_before_ui", xyz.register),
              ("on_app_started", api.register), ("on_script_unloaded", unregister)]
    for reg_name, fn in wanted:
        reg = getattr(sc, reg_name, None)
        if reg is None or _registered(sc, reg_name[3:], fn):
            continue
        try:
            reg(fn, name="memstab")
        except TypeError:  # SD.Next: no name=
            reg(fn)
        fn._memstab_registered = True


def unregister() -> None:
    """on_script_unloaded: remove our callbacks and patches; forget the runs."""
    from modules import script_callbacks as sc

    remove = getattr(sc, "remove_callbacks_for_function", None)
    if remove is not None:
        for _, fn in _CFG:
            remove(fn)
            fn._memstab_registered = False
    RUN.clear()
    _CURRENT[0] = None
    patches.uninstall()
