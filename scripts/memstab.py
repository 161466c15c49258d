"""The webui's entry point: the always-visible "Memorization guard" script. The logic lives in memstab_webui/ (the
webui imports every .py in scripts/, so this is the only one)."""

from modules import scripts

from memstab_webui import TITLE, hooks, script, ui

hooks.register()


class MemStabScript(scripts.Script):
    sorting_priority = 50  # Forge orders always-on scripts by this

    def title(self):
        return TITLE

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return ui.build(self, is_img2img)

    def after_component(self, component, **kwargs):
        ui.capture(self, component, kwargs.get("elem_id"))

    def process(self, p, *args):
        script.process(p, args)

    def process_before_every_sampling(self, p, *args, **kwargs):
        script.before_every_sampling(p)

    def process_before_every_step(self, p, *args, **kwargs):  # reForge only
        script.before_every_step(p, kwargs.get("d"))

    def postprocess_batch(self, p, *args, **kwargs):
        script.postprocess_batch(p)

    def postprocess(self, p, processed, *args):
        script.postprocess(p, processed)
