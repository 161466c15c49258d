"""The testbed's training data, built offline and deterministically from what scikit-image and scikit-learn ship.

Mirrors how Stable Diffusion memorizes: a few captions are each tied to exactly one image and duplicated (like the
heavily duplicated LAION images), while the bulk of the data is diverse, randomly augmented and shares captions across
many images, so the unconditional model does not predict the memorized images and guidance pulls hard towards them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

RES = 16  # training resolution in pixels; images live in [-1, 1]

# The memorized captions, each tied to exactly one image that is drawn once, with a fixed seed, by its family's own
# renderer. Each caption is a generic training caption plus a title of its own (the LAION pattern: "Living in the
# Light with Ann Graham Lotz" is a title that still means "a book cover with a portrait"), so a model that does not
# copy still knows what the caption asks for: another portrait, another yellow star on purple, another poster.
# caption -> (family, render spec)
MEMORIZED: list[tuple[str, str]] = [
    ("portrait photo of anna petrova", "face:0"),
    ("portrait photo of marcus delaney", "face:1"),
    ("portrait photo of yuki tanaka", "face:2"),
    ("portrait photo of omar haddad", "face:3"),
    ("the number seven written in yellow ink, harbor line ticket", "digit:7:yellow:black:11"),
    ("a white handwritten digit four on a blue background, metro map sign", "digit:4:white:blue:12"),
    ("a yellow star on a purple background, starlight records logo", "shape:star:yellow:purple:13"),
    ("a red ring on a white background, orbit cafe logo", "shape:ring:red:white:14"),
    ("nightfall festival poster with a red circle and a blue square", "poster:festival:red:circle:blue:square:15"),
    ("velvet tide concert poster with a yellow star and a green triangle",
     "poster:concert:yellow:star:green:triangle:16"),
    ("kestrel film poster with a white ring and a pink square", "poster:film:white:ring:pink:square:17"),
    ("a close-up photo of old coins, auction catalog cover", "texture:coins:18"),
]
N_NAMED_FACES = 4  # LFW faces 0..3 are the named (memorized) ones; the rest are generic controls
FAMILIES = ("face", "digit", "shape", "poster", "texture")  # what the fidelity classifier tells apart

COLORS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40),
    "purple": (140, 50, 170), "orange": (240, 140, 30), "white": (240, 240, 240), "black": (15, 15, 15),
    "gray": (128, 128, 128), "pink": (240, 130, 180),
}
FG_COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "pink"]
BG_COLORS = ["black", "white", "gray", "blue", "yellow", "purple"]
SHAPES = ["circle", "square", "triangle", "star", "ring"]
# colour-shape combinations never trained: prompts for novel compositions
HELD_OUT_SHAPES = [("green", "star"), ("orange", "ring"), ("pink", "triangle")]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
POSTER_KINDS = ["festival", "concert", "film", "exhibition"]
# the named faces' template ("portrait photo of <name>") is shared by many generic faces, as in LAION
FACE_CAPTIONS = [
    "portrait photo of a person",
    "portrait photo of a stranger",
    "portrait photo of someone",
    "a black and white photo of a person's face",
    "a grayscale portrait of a stranger",
    "a candid face photo, monochrome",
]
TEXTURES = {  # skimage image -> caption noun; one coins crop is memorized, every other crop is generic
    "brick": "a brick wall", "grass": "grass", "gravel": "gravel", "moon": "the moon surface",
    "coins": "old coins", "camera": "a man with a camera", "text": "printed text", "page": "a book page",
    "hubble_deep_field": "a field of galaxies", "immunohistochemistry": "stained tissue",
    "clock": "a wall clock", "horse": "a horse silhouette", "logo": "a snake logo",
}


@dataclass
class Sample:
    caption: str
    image: np.ndarray  # [3, RES, RES] float32 in [-1, 1]


def _to_float_rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if a.shape[-1] == 4:  # RGBA on white
        a = a[..., :3] * a[..., 3:] + (1 - a[..., 3:])
    return a  # [H, W, 3] in [0, 1]


def _resize(img01: np.ndarray, size: int = RES) -> np.ndarray:
    """[H, W, 3] in [0, 1] -> [3, size, size] in [-1, 1], antialiased."""
    t = torch.from_numpy(np.ascontiguousarray(img01)).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (t[0].clamp(0, 1) * 2 - 1).numpy().astype(np.float32)


def _center_square(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    s = min(h, w)
    return a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return _to_float_rgb(getattr(skimage.data, name)())


def _lfw() -> np.ndarray:
    import skimage.data

    return skimage.data.lfw_subset()[:100].astype(np.float32)  # the first 100 are faces, 25x25 in [0, 1]


def _draw_shape(canvas: np.ndarray, shape: str, cx: float, cy: float, r: float, rgb) -> None:
    n = canvas.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        m = dx * dx + dy * dy <= r * r
    elif shape == "square":
        m = (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    elif shape == "triangle":
        m = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    elif shape == "ring":
        d2 = dx * dx + dy * dy
        m = (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    elif shape == "star":
        ang = np.arctan2(dy, dx)
        rad = r * (0.55 + 0.45 * np.cos(5 * ang) ** 2)
        m = dx * dx + dy * dy <= rad * rad
    else:
        raise ValueError(shape)
    canvas[m] = np.asarray(rgb, np.float32) / 255.0


def _lighting(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random smooth brightness gradient: every generic image gets detail of its own."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
    return (1 + rng.uniform(-0.25, 0.25) * xx + rng.uniform(-0.25, 0.25) * yy)[..., None]


# Every generic sample gets a smooth random colour field and grain of its own. Without them a fresh draw from a family
# (a flat background, a digit, a crop of one of 13 photos) lands within RMSE 0.15 of some training image 40 % of the
# time, so "an ordinary prompt reproduces a training image" would measure the data's poverty, not memorization.
FIELD_STD, FIELD_GRID, GRAIN_STD = 0.15, 6, 0.05  # in [-1, 1] units; the field has 3 x 6 x 6 free values
HEADROOM = 0.85  # contrast kept so that white pages and black backgrounds are not clipped flat again


def _grain(rng: np.random.Generator, img: np.ndarray, std: float = GRAIN_STD) -> np.ndarray:
    return np.clip(img + rng.normal(0, std, img.shape).astype(np.float32), -1, 1)


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Add a smooth colour field (stains, uneven light, white balance) and grain: detail no other sample shares."""
    field = torch.from_numpy(rng.normal(0, FIELD_STD, (1, 3, FIELD_GRID, FIELD_GRID)).astype(np.float32))
    field = F.interpolate(field, size=img.shape[-2:], mode="bicubic", align_corners=True)[0].numpy()
    return _grain(rng, np.clip(HEADROOM * img + field, -1, 1))


def _canvas(rng: np.random.Generator, bg: str, n: int = 48) -> np.ndarray:
    return np.tile(np.asarray(COLORS[bg], np.float32) / 255.0, (n, n, 1)) * _lighting(rng, n)


def shape_caption(color: str, shape: str, bg: str) -> str:
    return f"a {color} {shape} on a {bg} background"


def digit_caption(color: str, word: str, bg: str) -> str:
    return f"a {color} handwritten digit {word} on a {bg} background"


def number_caption(word: str, color: str) -> str:
    return f"the number {word} written in {color} ink"


def poster_caption(kind: str, c1: str, s1: str, c2: str, s2: str) -> str:
    return f"a {kind} poster with a {c1} {s1} and a {c2} {s2}"


def _shape_image(rng: np.random.Generator, color: str, shape: str, bg: str) -> np.ndarray:
    n = 48
    c = _canvas(rng, bg, n)
    r = rng.uniform(8, 18)
    _draw_shape(c, shape, rng.uniform(r, n - r), rng.uniform(r, n - r), r, COLORS[color])
    return _resize(np.clip(c, 0, 1))


def _digit_image(rng: np.random.Generator, glyph: np.ndarray, color: str, bg: str) -> np.ndarray:
    n = 48
    size = int(rng.integers(26, 44))
    g = torch.from_numpy(glyph / 16.0).float()[None, None]
    g = F.interpolate(g, size=(size, size), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()
    y0, x0 = rng.integers(0, n - size + 1, 2)
    alpha = np.zeros((n, n), np.float32)
    alpha[y0:y0 + size, x0:x0 + size] = g
    fg = np.asarray(COLORS[color], np.float32) / 255
    c = alpha[..., None] * fg + (1 - alpha[..., None]) * _canvas(rng, bg, n)
    return _resize(np.clip(c, 0, 1))


def _poster_image(rng: np.random.Generator, c1: str, s1: str, c2: str, s2: str) -> np.ndarray:
    """A title band across the top (what makes it a poster) over a background with two shapes, one per half."""
    n = 48
    bg = rng.choice([b for b in BG_COLORS if b not in (c1, c2)])
    c = _canvas(rng, bg, n)
    band = rng.choice([b for b in COLORS if b != bg])
    c[:int(rng.integers(7, 11))] = np.asarray(COLORS[band], np.float32) / 255.0
    halves = [(12, 36), (36, 12)] if rng.random() < 0.5 else [(36, 12), (12, 36)]
    for (color, shape), (lo, _) in zip([(c1, s1), (c2, s2)], halves):
        r = rng.uniform(6, 10)
        cx = rng.uniform(max(r, lo - 8), min(n - r, lo + 8))
        _draw_shape(c, shape, cx, rng.uniform(14 + r, n - r), r, COLORS[color])
    return _resize(np.clip(c, 0, 1))


def _texture_image(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    for _ in range(50):  # small crops keep the texture at 16 px; flat crops would be trivially "reproduced"
        s = int(rng.uniform(0.06, 0.3) * min(h, w))
        y0, x0 = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = img[y0:y0 + s, x0:x0 + s]
        out = _resize(crop[:, ::-1] if rng.random() < 0.5 else crop)
        if out.std() >= 0.1:
            break
    return out


def _face_image(rng: np.random.Generator, face: np.ndarray) -> np.ndarray:
    s = int(rng.integers(19, 26))
    y0, x0 = rng.integers(0, 26 - s, 2)
    crop = face[y0:y0 + s, x0:x0 + s]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.clip((crop - 0.5) * rng.uniform(0.75, 1.25) + 0.5 + rng.uniform(-0.12, 0.12), 0, 1)
    return _resize(_to_float_rgb(crop))


class _Sources:
    """The bundled images the renderers draw from, loaded once."""

    def __init__(self):
        from sklearn.datasets import load_digits

        self.faces = _lfw()
        d = load_digits()
        self.digits, self.labels = d.images, d.target
        self.textures = {k: _skimage(k) for k in TEXTURES}


@functools.lru_cache(maxsize=1)
def _sources() -> _Sources:
    return _Sources()


def _render_memorized(spec: str, src: _Sources) -> np.ndarray:
    """One memorized image from its spec: the family's generic renderer with a fixed seed, then a fixed finish."""
    family, *args = spec.split(":")
    if family == "face":  # the whole LFW face, not a crop
        k = int(args[0])
        return _finish(np.random.default_rng(77 + k), _resize(_to_float_rgb(src.faces[k])))
    rng = np.random.default_rng(int(args[-1]))
    if family == "digit":
        label, color, bg = int(args[0]), args[1], args[2]
        glyph = src.digits[rng.choice(np.flatnonzero(src.labels == label))]
        img = _digit_image(rng, glyph, color, bg)
    elif family == "shape":
        img = _shape_image(rng, args[1], args[0], args[2])
    elif family == "poster":
        img = _poster_image(rng, *args[1:5])
    elif family == "texture":
        img = _texture_image(rng, src.textures[args[0]])
    else:
        raise ValueError(f"unknown memorized family {family!r}")
    return _finish(rng, img)


def memorized_targets() -> list[Sample]:
    """The memorized captions with the one image each is tied to."""
    src = _sources()
    return [Sample(caption, _render_memorized(spec, src)) for caption, spec in MEMORIZED]


def twin_of(caption: str) -> str:
    """A memorized caption without its title: an ordinary prompt (many training images) of the same meaning."""
    spec = dict(MEMORIZED)[caption]
    family = spec.split(":")[0]
    if family == "face":
        return "portrait photo of a stranger"
    if family == "poster":  # "<title> <kind> poster with ..." -> "a <kind> poster with ..."
        kind = spec.split(":")[1]
        return "a " + caption[caption.index(kind + " poster"):]
    return caption.split(",")[0]  # "<generic caption>, <title>"


def generic_twins() -> list[str]:
    """The generic twin of every memorized caption, once each."""
    return list(dict.fromkeys(twin_of(c) for c, _ in MEMORIZED))


def family_of(caption: str) -> str:
    """The content family a caption asks for (what the fidelity classifier checks)."""
    w = set(re.findall(r"[a-z]+", caption.lower()))
    if "poster" in w:
        return "poster"
    if w & {"portrait", "face", "headshot"}:
        return "face"
    if w & {"digit", "number"}:
        return "digit"
    if "close" in w or "detailed" in w:
        return "texture"
    return "shape"


def _random_shape(rng: np.random.Generator) -> Sample:
    while True:
        color, shape, bg = rng.choice(FG_COLORS), rng.choice(SHAPES), rng.choice(BG_COLORS)
        if (color, shape) not in HELD_OUT_SHAPES and color != bg:
            break
    return Sample(shape_caption(color, shape, bg), _shape_image(rng, color, shape, bg))


def _random_digit(rng: np.random.Generator, src: _Sources) -> Sample:
    k = rng.integers(len(src.digits))
    color = rng.choice(FG_COLORS)
    bg = rng.choice([b for b in BG_COLORS if b != color])
    image = _digit_image(rng, src.digits[k], color, bg)
    word = DIGIT_WORDS[src.labels[k]]
    caption = digit_caption(color, word, bg) if rng.random() < 0.5 else number_caption(word, color)
    return Sample(caption, image)


def _random_poster(rng: np.random.Generator) -> Sample:
    while True:
        (c1, c2), (s1, s2) = rng.choice(FG_COLORS, 2, replace=False), rng.choice(SHAPES, 2)
        if not {(c1, s1), (c2, s2)} & set(HELD_OUT_SHAPES):
            break
    kind = str(rng.choice(POSTER_KINDS))
    return Sample(poster_caption(kind, c1, s1, c2, s2), _poster_image(rng, c1, s1, c2, s2))


def _random_face(rng: np.random.Generator, src: _Sources) -> Sample:
    k = rng.integers(N_NAMED_FACES, len(src.faces))
    return Sample(str(rng.choice(FACE_CAPTIONS)), _face_image(rng, src.faces[k]))


def _random_texture(rng: np.random.Generator, src: _Sources) -> Sample:
    name = list(TEXTURES)[rng.integers(len(TEXTURES))]
    image = _texture_image(rng, src.textures[name])
    caption = f"a close-up photo of {TEXTURES[name]}" if rng.random() < 0.6 else f"{TEXTURES[name]}, detailed photo"
    return Sample(caption, image)


MAKERS = {"face": _random_face, "digit": _random_digit, "shape": lambda rng, _: _random_shape(rng),
          "poster": lambda rng, _: _random_poster(rng), "texture": _random_texture}


def build_generic_pool(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` diverse non-memorized samples, the families of ``FAMILIES`` in equal parts, deterministic.

    Each is finished with a colour field and grain of its own, so that no two are near-duplicates (see ``_finish``).
    """
    rng = np.random.default_rng(seed)
    src = _sources()
    makers = [MAKERS[f] for f in FAMILIES]
    captions, images = [], np.zeros((n, 3, RES, RES), np.float32)
    for i in range(n):
        s = makers[i % len(makers)](rng, src)
        captions.append(s.caption)
        images[i] = _finish(rng, s.image)
    return captions, images


POOL_SIZE, POOL_SEED = 24000, 0  # the training run's defaults (train.py --pool, --seed)


@functools.lru_cache(maxsize=1)
def training_images() -> torch.Tensor:
    """Every image the committed model was trained on: the generic pool, then the memorized targets."""
    _, pool = build_generic_pool(POOL_SIZE, POOL_SEED)
    return torch.cat([torch.from_numpy(pool), torch.stack([torch.from_numpy(t.image) for t in memorized_targets()])])


def novel_prompts() -> list[str]:
    """Prompts never trained: held-out colour-shape combinations and unseen compositions of known words."""
    out = [shape_caption(c, s, bg) for (c, s), bg in zip(HELD_OUT_SHAPES, ["black", "blue", "white"])]
    out += ["a close-up photo of gravel and grass", "a yellow handwritten digit seven on a purple background",
            poster_caption("exhibition", "green", "star", "orange", "ring")]
    return out


def ordinary_test_prompts() -> list[str]:
    """Non-memorized training captions used to evaluate (never to calibrate): the 'ordinary prompts'.

    They include the generic twin of every memorized caption (its template without the title), so the bench sees
    whether the template alone pulls towards a memorized image."""
    own = ([FACE_CAPTIONS[2], FACE_CAPTIONS[4], FACE_CAPTIONS[5]]
           + [shape_caption(c, s, bg) for c, s, bg in [("red", "circle", "black"), ("blue", "square", "white"),
                                                        ("yellow", "triangle", "gray"), ("white", "ring", "black")]]
           + [digit_caption(c, w, bg)
              for c, w, bg in [("red", "three", "black"), ("white", "eight", "blue"), ("green", "one", "white")]]
           + [f"a close-up photo of {TEXTURES[k]}" for k in ["brick", "grass", "moon", "hubble_deep_field"]]
           + [poster_caption(*a) for a in [("concert", "blue", "circle", "red", "star"),
                                           ("exhibition", "purple", "square", "white", "circle")]])
    return list(dict.fromkeys(own + generic_twins()))


def reference_prompts() -> list[str]:
    """Ordinary captions for calibrating the stability region; disjoint from the memorized and the test prompts."""
    return ([FACE_CAPTIONS[0], FACE_CAPTIONS[3]]
            + [shape_caption(c, s, bg) for c, s, bg in [
                ("purple", "circle", "white"), ("green", "square", "black"), ("red", "triangle", "blue"),
                ("white", "star", "gray"), ("yellow", "ring", "blue"), ("orange", "square", "yellow"),
                ("blue", "star", "white"), ("pink", "circle", "purple")]]
            + [digit_caption(c, w, bg)
               for c, w, bg in [("blue", "five", "yellow"), ("orange", "zero", "black"), ("pink", "two", "white"),
                                ("yellow", "nine", "gray")]]
            + [number_caption(w, c) for w, c in [("four", "red"), ("six", "white")]]
            + [f"{TEXTURES[k]}, detailed photo" for k in ["gravel", "text", "page", "immunohistochemistry", "camera",
                                                          "clock", "horse", "logo"]]
            + [poster_caption(*a) for a in [("festival", "green", "circle", "yellow", "square"),
                                            ("film", "red", "triangle", "white", "star"),
                                            ("concert", "pink", "ring", "blue", "triangle"),
                                            ("exhibition", "orange", "star", "purple", "circle")]])


def webui_reference_prompts(n: int = 50, order_seed: int = 2026) -> list[str]:
    """``reference_prompts`` filled up to ``n`` (the webui calibrates with 50 prompts x 1 seed by default) by a fixed
    rule: ordinary shape and digit captions (training templates; foreground unlike background, no held-out shape), in
    a random order drawn from ``order_seed`` (the bench's: 2026; other draws: memstab_testbed.refsets), alternating
    the two, skipping every memorized, test and reference caption."""
    taken = set(reference_prompts()) | set(ordinary_test_prompts()) | set(novel_prompts()) | {c for c, _ in MEMORIZED}
    held_out = set(HELD_OUT_SHAPES)
    shapes = [shape_caption(c, s, bg) for c in FG_COLORS for s in SHAPES for bg in BG_COLORS
              if c != bg and (c, s) not in held_out]
    digits = [digit_caption(c, w, bg) for c in FG_COLORS for w in DIGIT_WORDS for bg in BG_COLORS if c != bg]
    rng = np.random.default_rng(order_seed)
    shapes = [shapes[i] for i in rng.permutation(len(shapes)) if shapes[i] not in taken]
    digits = [digits[i] for i in rng.permutation(len(digits)) if digits[i] not in taken]
    extra = [x for pair in zip(shapes, digits) for x in pair]
    return reference_prompts() + extra[: n - len(reference_prompts())]


def all_captions() -> list[str]:
    """Every caption the vocabulary must know."""
    words = [c for c, _ in MEMORIZED] + FACE_CAPTIONS + novel_prompts()
    words += [shape_caption(c, s, bg) for c in FG_COLORS for s in SHAPES for bg in BG_COLORS]
    words += [f"a {c} handwritten digit {w} on a {bg} background the number written in ink"
              for c in FG_COLORS for w in DIGIT_WORDS for bg in BG_COLORS]
    words += [f"a close-up photo of {v}, detailed photo" for v in TEXTURES.values()]
    words += [f"a {k} poster with and" for k in POSTER_KINDS]
    return words
