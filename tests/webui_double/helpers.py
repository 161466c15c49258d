"""Small helpers shared by the adapter tests."""

from __future__ import annotations

import contextlib

import torch

from memstab_testbed.analytic import stored_image

MEMORIZED = "-1"  # the double's prompts are condition ids: negative = a memorized training image
ORDINARY = "101"


def parse(text: str) -> dict:
    from modules import infotext_utils

    return infotext_utils.parse_generation_parameters(text)


def images(res) -> torch.Tensor:
    return torch.stack([im for im in res.images if isinstance(im, torch.Tensor)])


_RUNS: dict = {}  # id(Results) -> (Results, Run): every run registered while the tests ran


def remember_runs():
    """Called by the double's Host once it has loaded the extension (a fresh memstab_webui for every Host)."""
    from memstab_webui.registry import Registration

    if getattr(Registration.open, "_test_memo", False):
        return
    original = Registration.open

    def open_(self):
        _RUNS[id(self.run.results)] = (self.run.results, self.run)
        return original(self)

    open_._test_memo = True
    Registration.open = open_


def run_of(res):
    """The adapter's Run behind a finished job (found through the Results its infotext values read)."""
    results = res.extra_generation_params["MemStab"].results
    hit = _RUNS.get(id(results))
    assert hit is not None and hit[0] is results, "no run of ours behind this job"
    return hit[1]


def memstab_keys(parsed: dict) -> dict:
    return {k: v for k, v in parsed.items() if k.startswith("MemStab")}


def reproduces(latent: torch.Tensor, image: int = 0) -> bool:
    """Whether a final latent is the stored training image of memorized condition -(image+1)."""
    y = stored_image(image)
    if latent.shape[-1] != y.shape[-1]:
        k = latent.shape[-1] // y.shape[-1]
        y = y.repeat_interleave(k, -2).repeat_interleave(k, -1)
    return float((latent - y).pow(2).mean().sqrt()) < 0.15


def mitigation_run(host, sampler: str):
    """Three memorized images and one ordinary one, generated off, in detect and in mitigate mode (same seed).
    Returns (off, detect, on) latents (detect's carry ``.verdicts``), the mitigate result, and the per-image distance
    to the stored image off/on."""
    from memstab_testbed.analytic import stored_image

    kw = {"prompt": [MEMORIZED] * 3 + [ORDINARY], "sampler_name": sampler, "batch_size": 4, "steps": 20, "seed": 3}
    off = images(host.run(host.txt2img(None, **kw)))
    det_res = host.run(host.txt2img({"mode": "detect"}, **kw))
    det = images(det_res)
    det.verdicts = [memstab_keys(parse(t))["MemStab verdict"] for t in det_res.infotexts]  # what detect said
    res = host.run(host.txt2img({"mode": "mitigate"}, **kw))
    on = images(res)
    y = stored_image(0)
    d_off = [float((x - y).pow(2).mean().sqrt()) for x in off[:3]]
    d_on = [float((x - y).pow(2).mean().sqrt()) for x in on[:3]]
    return off, det, on, res, d_off, d_on


@contextlib.contextmanager
def counting_run_host_reads(names):
    """Count host reads (item, cpu, bool(tensor), ...) made inside the named Run methods; yields the list of reads."""
    from test_no_sync import CountHostReads

    from memstab_webui.run import Run

    reads, originals = [], {}
    for name in names:
        orig = originals[name] = getattr(Run, name)

        def counted(self, *a, _orig=orig, **k):
            with CountHostReads() as m:
                out = _orig(self, *a, **k)
            reads.extend(m.calls)
            return out

        setattr(Run, name, counted)
    try:
        yield reads
    finally:
        for name, orig in originals.items():
            setattr(Run, name, orig)
