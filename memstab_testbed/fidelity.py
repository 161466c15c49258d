"""A fidelity measure for the testbed, in the role CLIP score plays in the memorization papers.

A small classifier of the testbed's content families (``data.FAMILIES``: face, digit, shape, poster, texture), trained
on fresh draws of the generic training data. "Faithful" means the image shows the family its prompt asks for
(``data.family_of``): a mitigation that breaks a copy of "portrait photo of anna petrova" should still give a portrait.

    python -m memstab_testbed.fidelity        # train once (about a minute on 2 cores) and commit weights/fidelity.pt

Its accuracy on held-out training-style draws is stored beside the weights; the bench reports it again, with its
accuracy on ordinary generations, so that its numbers mean something.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data

WEIGHTS = Path(__file__).with_name("weights") / "fidelity.pt"
TRAIN_SEED, HELDOUT_SEED = 11, 12  # the testbed model's pool uses seed 0 (and the near-duplicate test seed 1)


class FamilyClassifier(nn.Module):
    def __init__(self, n: int = len(data.FAMILIES)):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 48, 3, padding=1), nn.GELU(),
            nn.Conv2d(48, 48, 3, padding=1), nn.GELU(),
            nn.Conv2d(48, 96, 3, stride=2, padding=1), nn.GELU(),  # 8x8
            nn.Conv2d(96, 96, 3, padding=1), nn.GELU(),
            nn.Conv2d(96, 128, 3, stride=2, padding=1), nn.GELU(),  # 4x4
            nn.Flatten(), nn.Linear(128 * 16, n))

    def forward(self, x):
        return self.net(x)


def labelled(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    caps, imgs = data.build_generic_pool(n, seed)
    labels = torch.tensor([data.FAMILIES.index(data.family_of(c)) for c in caps])
    return torch.from_numpy(imgs), labels


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Generations are softer and noisier than data: blur a third of the batch, add a little noise to all."""
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    pick = (torch.rand(len(x), 1, 1, 1, generator=g) < 0.33).float()
    x = pick * (0.5 * x + 0.5 * blur) + (1 - pick) * x
    return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def train(n: int = 24000, epochs: int = 12, seed: int = 0) -> tuple[FamilyClassifier, dict]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = labelled(n, TRAIN_SEED)
    clf = FamilyClassifier()
    opt = torch.optim.AdamW(clf.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * ((n + 127) // 128))
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            j = perm[i:i + 128]
            loss = F.cross_entropy(clf(_augment(x[j], g)), y[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    clf.eval().requires_grad_(False)
    hx, hy = labelled(2000, HELDOUT_SEED)
    targets = data.memorized_targets()
    mem_x = torch.stack([torch.from_numpy(t.image) for t in targets])
    report = {"train_samples": n, "epochs": epochs, "heldout_samples": len(hx),
              "heldout_accuracy": round(float((predict(clf, hx) == hy).float().mean()), 4),
              "memorized_targets_in_family": int(sum(f == data.family_of(t.caption)
                                                     for f, t in zip(families(clf, mem_x), targets)))}
    return clf, report


def predict(clf: FamilyClassifier, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([clf(images[i:i + 512]).argmax(1) for i in range(0, len(images), 512)])


def families(clf: FamilyClassifier, images: torch.Tensor) -> list[str]:
    return [data.FAMILIES[int(i)] for i in predict(clf, images)]


def faithful(clf: FamilyClassifier, images: torch.Tensor, prompts: list[str]) -> np.ndarray:
    """Per image: does it show the family its prompt asks for?"""
    return np.array([f == data.family_of(p) for f, p in zip(families(clf, images), prompts)])


def load(path: Path = WEIGHTS) -> FamilyClassifier:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    clf = FamilyClassifier()
    clf.load_state_dict({k: v.float() for k, v in ck["state"].items()})
    clf.report = ck["report"]
    return clf.eval().requires_grad_(False)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    clf, report = train()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": {k: v.half() for k, v in clf.state_dict().items()}, "report": report}, a.out)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
