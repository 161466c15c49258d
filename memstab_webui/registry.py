"""Host-facing registry: which of our runs a host object belongs to. Keyed by id(p) (p is an unhashable dataclass);
the run holds p, so the id is not reused while the entry exists. One registration context serves a guarded job
(opened in Script.process, closed in postprocess) and each calibration generation (a ``with`` block)."""

from __future__ import annotations

RUN: dict = {}  # id(p) -> Run


def own_run(p):
    """The run registered for this very p, or None."""
    run = RUN.get(id(p)) if RUN else None
    return run if run is not None and run.p is p else None


def purge_stale(job: str) -> None:
    """Drop runs of other jobs (a crashed job never reached postprocess); keep this job's nested runs (ADetailer)."""
    for k in [k for k, r in RUN.items() if r.job != job]:
        del RUN[k]


class Registration:
    """A run registered for its p with the sampler patches installed, until closed (then released, and the patches
    removed once no run is left)."""

    def __init__(self, run):
        self.run = run

    def open(self) -> Registration:
        from . import patches

        RUN[id(self.run.p)] = self.run
        patches.install()
        return self

    def close(self) -> None:
        from . import patches

        if RUN.get(id(self.run.p)) is self.run:
            del RUN[id(self.run.p)]
        try:
            self.run.release()
        finally:
            patches.release_if_idle()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False
