"""Script base class, AlwaysVisible, script loading (module named after the file) and a runner that wraps every
hook call in try/except -> errors.report (host-api.md 2.1-2.4)."""

import importlib.util
import os
from collections import namedtuple

from modules import errors

AlwaysVisible = object()
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data: list = []


class PostprocessImageArgs:
    def __init__(self, image):
        self.image = image


class Script:
    name = None
    section = None
    filename = None
    args_from = args_to = None
    alwayson = False
    is_txt2img = is_img2img = False
    infotext_fields = None
    paste_field_names = None

    def title(self):
        raise NotImplementedError

    def show(self, is_img2img):
        return True

    def ui(self, is_img2img):
        pass

    def elem_id(self, item_id):
        title = "".join(c if c.isalnum() else "_" for c in self.title().lower())
        tab = "img2img" if self.is_img2img else "txt2img"
        return f"script_{tab}_{title}_{item_id}"

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_before_every_step(self, p, *args, **kwargs):  # reForge only: kw d (the sampler callback's dict)
        pass

    def before_hr(self, p, *args):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_image(self, p, pp, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass


def load_script(path):
    name = os.path.basename(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for obj in module.__dict__.values():
        if isinstance(obj, type) and issubclass(obj, Script) and obj is not Script and obj.__module__ == name:
            scripts_data.append(ScriptClassData(obj, path, os.path.dirname(path), module))
    return module


class ScriptRunner:
    PostprocessImageArgs = PostprocessImageArgs

    def __init__(self, scripts=(), is_img2img=False):  # A1111's takes no arguments: an empty runner
        self.alwayson_scripts = []
        pos = 0
        for s in scripts:
            s.is_img2img, s.is_txt2img = is_img2img, not is_img2img
            s.alwayson = s.show(is_img2img) is AlwaysVisible
            n = getattr(s, "_n_args", 0)
            s.args_from, s.args_to = pos, pos + n
            pos += n
            self.alwayson_scripts.append(s)

    def _run(self, name, p, *a, **kw):
        for s in self.alwayson_scripts:
            try:
                getattr(s, name)(p, *a, *p.script_args[s.args_from:s.args_to], **kw)
            except Exception:
                errors.report(f"Error running {name}: {s.filename}", exc_info=True)

    def before_process(self, p):
        self._run("before_process", p)

    def process(self, p):
        self._run("process", p)

    def before_process_batch(self, p, **kw):
        self._run("before_process_batch", p, **kw)

    def process_batch(self, p, **kw):
        self._run("process_batch", p, **kw)

    def process_before_every_sampling(self, p, **kw):
        self._run("process_before_every_sampling", p, **kw)

    def process_before_every_step(self, p, **kw):
        self._run("process_before_every_step", p, **kw)

    def before_hr(self, p):
        self._run("before_hr", p)

    def postprocess_batch(self, p, **kw):
        self._run("postprocess_batch", p, **kw)

    def postprocess_image(self, p, pp):
        self._run("postprocess_image", p, pp)

    def postprocess(self, p, processed):
        self._run("postprocess", p, processed)
