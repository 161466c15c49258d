"""Install the webui double as ``modules`` (only inside a test), load the extension's script file the way the webui
does, and run jobs through it. ``uninstall`` removes every module it brought in."""

from __future__ import annotations

import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_OWNED = ("modules", "modules_forge", "memstab_webui", "memstab.py", "xyz_grid.py")


def _purge():
    for name in list(sys.modules):
        if name.split(".")[0] in _OWNED:
            del sys.modules[name]


class Host:
    """One started 'webui': its modules, the loaded scripts and a helper to run jobs."""

    def __init__(self, variant: str = "a1111"):
        _purge()
        sys.path.insert(0, str(HERE))
        import modules.shared as shared

        shared.HOST = variant
        if variant in ("forge", "reforge"):  # both ship modules_forge (host-api.md 3.2)
            sys.modules["modules_forge"] = types.ModuleType("modules_forge")
        from host_model import HostModel

        shared.sd_model = HostModel()
        from modules import errors, script_callbacks, scripts

        errors.REPORTED.clear()
        self.variant = variant
        self.shared, self.scripts, self.callbacks, self.errors = shared, scripts, script_callbacks, errors
        import modules.processing as processing

        self.processing = processing
        scripts.scripts_data.clear()
        self.xyz = scripts.load_script(str(HERE / "builtin_scripts" / "xyz_grid.py"))
        self.module = scripts.load_script(str(ROOT / "scripts" / "memstab.py"))
        self.script_class = next(d.script_class for d in scripts.scripts_data if d.module is self.module)
        from .helpers import remember_runs

        remember_runs()
        script_callbacks.ui_settings_callback()
        script_callbacks.before_ui_callback()

    def close(self):
        try:
            self.callbacks.script_unloaded_callback()
        finally:
            if str(HERE) in sys.path:
                sys.path.remove(str(HERE))
            _purge()

    # ------------------------------------------------------------------ jobs
    def runner(self, is_img2img=False, extra_scripts=()):
        from memstab_webui import args as margs

        s = self.script_class()
        s.filename = str(ROOT / "scripts" / "memstab.py")
        s._n_args = len(margs.UI_ORDER)
        return self.scripts.ScriptRunner([s, *extra_scripts], is_img2img)

    def txt2img(self, memstab_args=None, **kw):
        return self._make(self.processing.StableDiffusionProcessingTxt2Img, False, memstab_args, **kw)

    def img2img(self, memstab_args=None, **kw):
        return self._make(self.processing.StableDiffusionProcessingImg2Img, True, memstab_args, **kw)

    def _make(self, cls, is_img2img, memstab_args, extra_scripts=(), **kw):
        """memstab_args: None (the UI defaults, i.e. off), a list (positional, overwrites the first positions as the
        API does) or a dict (the API's dict form)."""
        from memstab_webui import args as margs

        p = cls(**kw)
        p.scripts = self.runner(is_img2img, extra_scripts)
        defaults = margs.ui_defaults(self.shared.opts)
        given = [memstab_args] if isinstance(memstab_args, dict) else list(memstab_args or [])
        p.script_args = given + defaults[len(given):]
        for s in extra_scripts:
            p.script_args += [None] * getattr(s, "_n_args", 0)
        return p

    def run(self, p, new_job=True):
        if new_job:
            self.shared.state.begin()
        return self.processing.process_images(p)

    def reported(self):
        return list(self.errors.REPORTED)
