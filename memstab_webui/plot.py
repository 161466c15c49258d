"""The stability plot of one image (PIL only): the three z-score traces against the stability region, with the
first flagged step and the mitigated steps marked. The y axis is log(1 + z): memorized cases reach z in the
thousands while the region is a few units wide."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"update": (31, 119, 180), "latent": (255, 127, 14), "x0": (148, 103, 189)}
BADGE = 30  # gradio draws the image's label badge over the top-left corner: nothing is drawn above this
LINE = 13  # text line height of the default font


def _lines(d, text: str, font, width: float, limit: int = 2) -> list[str]:
    """``text`` wrapped at spaces to ``width`` pixels, at most ``limit`` lines (the last one cut with '...')."""
    out, cur = [], ""
    for word in text.split(" "):
        trial = f"{cur} {word}".strip()
        if d.textlength(trial, font=font) <= width or not cur:
            cur = trial
        else:
            out.append(cur)
            cur = word
    out.append(cur)
    if len(out) > limit:
        out = out[:limit]
        last = out[-1]
        while last and d.textlength(last + "...", font=font) > width:
            last = last[:-1]
        out[-1] = last + "..."
    return out


def _text_block(d, xy, text: str, font, width: float, limit: int = 2, fill=(0, 0, 0)) -> None:
    x, y = xy
    for i, ln in enumerate(_lines(d, text, font, width, limit)):
        d.text((x, y + i * LINE), ln, fill=fill, font=font)


def legend(gamma: float, tau_mild: float) -> str:
    return f"green: z <= gamma {gamma:g}; red line: tau_mild {tau_mild:g}; red bar: paper flag; ^ mitigated"


def render(v, gamma: float, tau_mild: float, title: str, size=(640, 360)) -> Image.Image:
    w, h = size
    left, right, top, bottom = 48, 12, BADGE + 2 * LINE + 6, 3 * LINE + 8
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
    for z in (1, 3, 10, 30, 100, 1000, 10000):
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
    _text_block(d, (left, BADGE), title, font, w - left - right)
    lx, ly = left, h - 2 * LINE - 4
    for name, col in COLOURS.items():
        d.line([lx, ly + 6, lx + 16, ly + 6], fill=col, width=2)
        d.text((lx + 20, ly), f"z {name}", fill=(0, 0, 0), font=font)
        lx += 90
    _text_block(d, (left, ly + LINE), legend(gamma, tau_mild), font, w - left - right, limit=1)
    return img


BAND_LABELS = {"update": "update", "latent": "latent", "x0": "x0_hat"}


def render_band(profile, gamma: float, title: str, size=(640, 480)) -> Image.Image:
    """What a calibration measured: per tracked norm, the centre and the band centre ± gamma·spread against the
    profile's axis (log sigma, noise falling to the right; or the step), one panel per norm."""
    w, h = size
    left, right, top, gap, bottom = 56, 12, BADGE + LINE + 6, 18, 2 * LINE + 10
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    grid = list(profile.grid)
    n = len(grid)
    xs = list(reversed(grid)) if profile.axis == "log_sigma" else grid  # high noise (early steps) on the left
    order = list(reversed(range(n))) if profile.axis == "log_sigma" else list(range(n))
    ph = (h - top - bottom - 2 * gap) / 3

    def px(k):
        return left + (w - left - right) * (k / max(1, n - 1))

    for row, q in enumerate(("update", "latent", "x0")):
        y0 = top + row * (ph + gap)
        mean = [profile.mean[q][i] for i in order]
        std = [profile.std[q][i] for i in order]
        lo = [m - gamma * s for m, s in zip(mean, std)]
        hi = [m + gamma * s for m, s in zip(mean, std)]
        vals = [v for v in lo + hi if math.isfinite(v)] or [0.0, 1.0]
        vmin, vmax = min(vals), max(vals)
        if vmax - vmin < 1e-12:
            vmin, vmax = vmin - 1, vmax + 1

        def py(v, y0=y0, vmin=vmin, vmax=vmax):
            return y0 + ph - ph * (v - vmin) / (vmax - vmin)

        band = [(px(k), py(v)) for k, v in enumerate(hi)] + [(px(k), py(v)) for k, v in reversed(list(enumerate(lo)))]
        if len(band) >= 3:
            d.polygon(band, fill=(215, 235, 250))
        d.line([(px(k), py(v)) for k, v in enumerate(mean)], fill=COLOURS[q], width=2)
        d.rectangle([left, y0, w - right, y0 + ph], outline=(90, 90, 90))
        d.text((4, y0), BAND_LABELS[q], fill=COLOURS[q], font=font)
        d.text((4, y0 + ph - 10), f"{vmin:.3g}", fill=(90, 90, 90), font=font)
        d.text((4, y0 + 12), f"{vmax:.3g}", fill=(90, 90, 90), font=font)
    axis = "log sigma (noise falls to the right)" if profile.axis == "log_sigma" else "step"
    _text_block(d, (left, h - bottom + 6), f"{axis}: {xs[0]:.2f} ... {xs[-1]:.2f}; band: centre ± {gamma:g} spreads "
                f"({profile.statistic}, {profile.meta.get('trajectories', '?')} trajectories)", font, w - left - right)
    _text_block(d, (left, BADGE), title, font, w - left - right, limit=1)
    return img
