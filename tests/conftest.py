import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib_memstab import Profile  # noqa: E402
from lib_memstab.observation import observe_step  # noqa: E402

LIVE_KIT = ROOT / "tools" / "live_webui"


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """The real webui of tests/live (tools/live_webui/host.py says which); skipped with the reason if none."""
    sys.path.insert(0, str(LIVE_KIT))
    import host

    if not host.configured():
        pytest.skip(host.SKIP)
    with host.from_env(tmp_path_factory.mktemp("live-webui")) as live:
        yield live


torch.set_num_threads(1)  # CI has 2 cores; tests are small and must not fight a benchmark for them

REF_SIGMAS = [14.6 * (0.03 / 14.6) ** (i / 9) for i in range(10)]  # a 10-step schedule, high to low


def flat_profile(update=1.0, latent=1.0, x0=1.0, std=0.1, axis="log_sigma", n=10) -> Profile:
    """A profile with the same statistics at every grid point."""
    if axis == "log_sigma":
        grid = sorted(math.log(s) for s in REF_SIGMAS)
    else:
        grid = [float(i) for i in range(n)]
    g = len(grid)
    return Profile(axis=axis, norm="rms", statistic="mean_std", grid=grid,
                   mean={"update": [update] * g, "latent": [latent] * g, "x0": [x0] * g},
                   std={"update": [std] * g, "latent": [std] * g, "x0": [std] * g},
                   count=[10] * g, reference_sigmas=list(REF_SIGMAS), meta={"test": True})


def profile_at_z(x, denoised, sigma, sigma_next, z=(0.0, 0.0, 0.0), std=0.05, axis="log_sigma") -> Profile:
    """A flat profile placed so that image 0 of (x, denoised) sits at z-scores ``z`` = (update, latent, x0),
    on the high side of the mean."""
    o = observe_step(x, denoised, sigma, sigma_next)
    upd = o.rate if axis == "log_sigma" else o.update
    vals = [float(upd[0]), float(o.latent[0]), float(o.x0[0])]
    means = [v - zz * std for v, zz in zip(vals, z)]
    assert all(m >= 0 for m in means), "choose inputs with larger norms for this z"
    return flat_profile(*means, std=std, axis=axis)


@pytest.fixture
def kd():
    from memstab_testbed.kdiff import import_k_diffusion

    return import_k_diffusion()
