"""Plain PIL figures for the benchmark (no plotting dependency)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

PALETTE = {"memorized": (214, 39, 40), "ordinary": (31, 119, 180), "band": (225, 225, 225), "axis": (90, 90, 90)}


def image_grid(rows: list[torch.Tensor], row_labels: list[str], scale: int = 6, pad: int = 2,
               col_labels: list[str] | None = None, label_w: int = 150) -> Image.Image:
    """rows: each [N, 3, H, W] in [-1, 1]; one labelled row per tensor, and a header of column labels if given."""
    n = max(len(r) for r in rows)
    h, w = rows[0].shape[2] * scale, rows[0].shape[3] * scale
    head = 18 if col_labels else 0
    img = Image.new("RGB", (label_w + n * (w + pad), head + len(rows) * (h + pad)), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for c, label in enumerate(col_labels or []):
        d.text((label_w + c * (w + pad) + 2, 3), label, fill=(0, 0, 0))
    for r, (row, label) in enumerate(zip(rows, row_labels)):
        y = head + r * (h + pad)
        for k, part in enumerate(label.split("\n")[:3]):
            d.text((4, y + h // 2 - 5 + 12 * (k - (label.count("\n") > 0))), part, fill=(0, 0, 0))
        for c, t in enumerate(row):
            a = ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            img.paste(Image.fromarray(a).resize((w, h), Image.NEAREST), (label_w + c * (w + pad), y))
    return img


def z_traces(traces: dict[str, list[np.ndarray]], band: float, title: str, size=(900, 300), zmax=30.0) -> Image.Image:
    """Per-step z-score traces of several groups against the region band [0, band]; z is clipped at zmax."""
    wdt, hgt = size
    left, top, bottom, right = 50, 24, 30, 160
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    steps = max(len(t) for ts in traces.values() for t in ts)

    def xy(i, z):
        x = left + (wdt - left - right) * i / max(steps - 1, 1)
        y = hgt - bottom - (hgt - top - bottom) * min(z, zmax) / zmax
        return x, y

    d.rectangle([xy(0, band), xy(steps - 1, 0)], fill=PALETTE["band"])
    d.line([xy(0, 0), xy(steps - 1, 0)], fill=PALETTE["axis"])
    d.line([xy(0, 0), xy(0, zmax)], fill=PALETTE["axis"])
    for z in (0, band, 10, 20, zmax):
        d.text((5, xy(0, z)[1] - 6), f"{z:g}", fill=PALETTE["axis"])
    d.text((left, 4), title, fill=(0, 0, 0))
    d.text((left, hgt - 16), f"sampler step (0..{steps - 1}); grey: stability region |z| <= {band:g}; "
           f"z clipped at {zmax:g}", fill=PALETTE["axis"])
    for k, (group, ts) in reversed(list(enumerate(traces.items()))):  # the first group is drawn on top
        color = PALETTE.get(group, (0, 150, 0))
        for t in ts:
            pts = [xy(i, float(z)) for i, z in enumerate(t) if np.isfinite(z)]
            if len(pts) > 1:
                d.line(pts, fill=color, width=1)
        d.text((wdt - right + 10, top + 16 * k), f"{group} ({len(ts)})", fill=color)
    return img
