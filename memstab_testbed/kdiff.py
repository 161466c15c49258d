"""Import the real ``k_diffusion`` package without its training-only dependencies.

``k_diffusion/__init__`` imports its evaluation and utils modules, which need torchvision, clean-fid and CLIP; none of
that is needed to sample, and PyPI's torchvision does not import beside this machine's torch. Stub those three only
for the import, then remove the stubs so that nothing else sees them.
"""

from __future__ import annotations

import importlib.util
import sys
import types

_STUBS = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional",
          "cleanfid", "cleanfid.inception_torchscript", "clip"]


def import_k_diffusion():
    if "k_diffusion" in sys.modules:
        return sys.modules["k_diffusion"]
    missing = set()
    for top in ("torchvision", "cleanfid", "clip"):
        try:
            if top not in sys.modules and importlib.util.find_spec(top) is None:
                missing.add(top)
        except (ImportError, ValueError):
            missing.add(top)
    stubs = [n for n in _STUBS if n.split(".")[0] in missing]
    for n in stubs:
        sys.modules[n] = types.ModuleType(n)
    if "torchvision" in missing:
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]
    if "cleanfid" in missing:
        sys.modules["cleanfid.inception_torchscript"].InceptionV3W = object
    try:
        import k_diffusion
    finally:
        for n in stubs:
            sys.modules.pop(n, None)
    return k_diffusion
