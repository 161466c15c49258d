"""observe() must never read a tensor back to the host: on a GPU each such read stalls the queue."""

import torch
from conftest import REF_SIGMAS, profile_at_z
from torch.overrides import TorchFunctionMode

from lib_memstab import Guard, GuardConfig, Recorder

HOST_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__bool__,
              torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__}


class CountHostReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS or (func is torch.Tensor.to and any(a == "cpu" or a == torch.device("cpu")
                                                                    for a in args[1:])):
            self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def test_the_counter_sees_host_reads():
    t = torch.ones(2)
    with CountHostReads() as m:
        t.sum().item()
        bool(t[0] > 0)
        float(t[0])
        t.tolist()
    assert m.calls == ["item", "__bool__", "__float__", "tolist"]


def test_observe_makes_no_host_reads_in_any_mode():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=g) * 25
    d = torch.randn(3, 4, 8, 8, generator=g)
    s, sn = torch.tensor(REF_SIGMAS[0]), torch.tensor(REF_SIGMAS[1])
    p = profile_at_z(x, d, s, sn, (20, 0, 20), std=0.05)
    n = len(p.grid)  # with the cond gap's region and the early flag's thresholds: every v2 path is exercised
    p.mean["gap"], p.std["gap"] = [0.5] * n, [0.1] * n
    p.reference_early = {"update": [1.0, 2.0, 3.0], "max": [1.0, 2.0, 3.0]}
    p.__post_init__()
    for mode in ("detect", "mitigate"):
        guard = Guard(p, GuardConfig(mode=mode), steps=4)
        guard.observe(x, d, s, sn)  # the first call may build device tables once
        with CountHostReads() as m:
            for _ in range(6):  # also crosses the buffer's growth
                guard.observe(x, d, s, sn, cond_gap=torch.ones(3))
        assert m.calls == [], f"{mode}: host reads {m.calls}"
        assert guard.verdicts()[0].flagged
        assert guard.verdicts()[0].early_step == 0
    rec = Recorder()
    with CountHostReads() as m:
        rec.observe(x, d, s, sn)
        rec.observe(x, d, s, sn, cond_gap=torch.ones(3))
    assert m.calls == []


def test_timestep_sigma_makes_no_host_reads():
    from lib_memstab import timestep_sigma

    ac = torch.linspace(0.999, 0.01, 1000)
    t = torch.tensor([999.0, 1.0])
    with CountHostReads() as m:
        s = timestep_sigma(t, ac)
    assert m.calls == [] and s.shape == (2,)
