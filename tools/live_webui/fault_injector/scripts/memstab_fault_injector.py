"""A test-only webui extension for the live kit (never installed by users): while the file named by the environment
variable MEMSTAB_FAULT_FLAG exists, the guard's per-step call raises, so the kit can check that an exception inside
a hook is logged once, noted in the image's infotext, and that the image still finishes. Link this folder into the
test host's extensions/ beside sd-webui-memstab and start the webui with MEMSTAB_FAULT_FLAG set."""

import os
import sys

from modules import script_callbacks

FLAG = os.environ.get("MEMSTAB_FAULT_FLAG")


def _patch(*_):
    guard = sys.modules.get("lib_memstab.guard")
    if FLAG is None or guard is None or getattr(guard.Guard.observe, "_fault_injector", False):
        return
    original = guard.Guard.observe

    def observe(self, *a, **kw):
        if os.path.exists(FLAG):
            raise RuntimeError("fault injected by the live kit")
        return original(self, *a, **kw)

    observe._fault_injector = True
    guard.Guard.observe = observe


script_callbacks.on_app_started(_patch)
