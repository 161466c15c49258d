"""The stability plot of one image (PIL only): the three z-score traces against the stability region, with the
first flagged step and the mitigated steps marked. The y axis is log(1 + z): memorized cases reach z in the
thousands while the region is a few units wide."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"update": (31, 119, 180), "latent": (255, 127, 14), "x0": (148, 103, 189)}


def render(v, gamma: float, tau_mild: float, title: str, size=(640, 360)) -> Image.Image:
    w, h = size
    left, right, top, bottom = 48, 12, 28, 40
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    traces = {"update": v.z_update, "latent": v.z_latent, "x0": v.z_x0}
    n = max(1, max(len(t) for t in traces.values()))
    finite = [z for t in traces.values() for z in t if z is not None and math.isfinite(z)]
    ymax = math.log1p(max([gamma * 2, tau_mild * 2, *finite]))

    def px(i):
        return left + (w - left - right) * (i / max(1, n - 1))

    def py(z):
        return h - bottom - (h - top - bottom) * (math.log1p(max(z, 0.0)) / ymax)

    d.rectangle([left, py(gamma), w - right, h - bottom], fill=(225, 245, 225))  # the region: z <= gamma
    d.line([left, py(tau_mild), w - right, py(tau_mild)], fill=(200, 60, 60), width=1)
    d.rectangle([left, top, w - right, h - bottom], outline=(90, 90, 90))
    for z in (1, 10, 100, 1000, 10000):
        if math.log1p(z) < ymax:
            d.text((4, py(z) - 6), f"{z:g}", fill=(90, 90, 90), font=font)
    for name, t in traces.items():
        seg = []
        for i, z in enumerate(t):
            if z is None or not math.isfinite(z):
                if len(seg) > 1:
                    d.line(seg, fill=COLOURS[name], width=2)
                seg = []
                continue
            seg.append((px(i), py(z)))
        if len(seg) > 1:
            d.line(seg, fill=COLOURS[name], width=2)
    if v.first_step is not None:
        x = px(v.first_step)
        d.line([x, top, x, h - bottom], fill=(200, 0, 0), width=2)
    for i in v.mitigated:
        x = px(i)
        d.polygon([(x, h - bottom - 8), (x - 4, h - bottom), (x + 4, h - bottom)], fill=(0, 150, 0))
    d.text((left, 6), title[:100], fill=(0, 0, 0), font=font)
    lx = left
    for name, col in COLOURS.items():
        d.line([lx, h - 14, lx + 16, h - 14], fill=col, width=2)
        d.text((lx + 20, h - 20), f"z {name}", fill=(0, 0, 0), font=font)
        lx += 90
    d.text((lx, h - 20), f"band: z <= gamma {gamma:g}; red line: tau_mild {tau_mild:g}; ^ mitigated", fill=(0, 0, 0),
           font=font)
    return img
