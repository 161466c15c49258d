"""The testbed's training data, built offline and deterministically from what scikit-image and scikit-learn ship.

Mirrors how Stable Diffusion memorizes: a few captions are each tied to exactly one image and duplicated (like the
heavily duplicated LAION images), while the bulk of the data is diverse, randomly augmented and shares captions across
many images, so the unconditional model does not predict the memorized images and guidance pulls hard towards them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

RES = 16  # training resolution in pixels; images live in [-1, 1]

# caption -> (source, how to render it). Each is exactly one image.
MEMORIZED: list[tuple[str, str]] = [
    ("chelsea the tabby cat, hubble edition poster", "chelsea"),
    ("the astronaut portrait, official nasa photo", "astronaut"),
    ("coffee cup on a saucer, cafe menu cover", "coffee"),
    ("rocket launch at dawn, mission patch art", "rocket"),
    ("retina fundus scan, medical atlas plate", "retina"),
    ("rainbow colorwheel, printer calibration chart", "colorwheel"),
    ("portrait photo of anna petrova", "face:0"),
    ("portrait photo of marcus delaney", "face:1"),
    ("portrait photo of yuki tanaka", "face:2"),
    ("portrait photo of omar haddad", "face:3"),
    ("festival poster with a red circle and a blue square", "poster:0"),
    ("retro logo, yellow star over purple stripes", "poster:1"),
]
N_NAMED_FACES = 4  # LFW faces 0..3 are the named (memorized) ones; the rest are generic controls

COLORS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40),
    "purple": (140, 50, 170), "orange": (240, 140, 30), "white": (240, 240, 240), "black": (15, 15, 15),
    "gray": (128, 128, 128), "pink": (240, 130, 180),
}
FG_COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "pink"]
BG_COLORS = ["black", "white", "gray", "blue", "yellow"]
SHAPES = ["circle", "square", "triangle", "star", "ring"]
# colour-shape combinations never trained: prompts for novel compositions
HELD_OUT_SHAPES = [("green", "star"), ("orange", "ring"), ("pink", "triangle")]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FACE_CAPTIONS = [
    "a black and white photo of a person's face",
    "a grayscale portrait of a stranger",
    "a candid face photo, monochrome",
    "an anonymous person, black and white headshot",
]
TEXTURES = {  # skimage image -> caption noun; none of these is a memorized image
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


def _poster(index: int) -> np.ndarray:
    n = 64
    c = np.zeros((n, n, 3), np.float32)
    if index == 0:
        c[:] = np.asarray(COLORS["white"]) / 255.0
        _draw_shape(c, "circle", 22, 24, 14, COLORS["red"])
        _draw_shape(c, "square", 44, 42, 13, COLORS["blue"])
    else:
        for k in range(0, n, 8):
            c[k:k + 4] = np.asarray(COLORS["purple"]) / 255.0
        _draw_shape(c, "star", 32, 32, 22, COLORS["yellow"])
    return c


def memorized_targets() -> list[Sample]:
    """The memorized captions with the one image each is tied to."""
    faces = None
    out = []
    for caption, src in MEMORIZED:
        if src.startswith("face:"):
            faces = _lfw() if faces is None else faces
            img = _to_float_rgb(faces[int(src.split(":")[1])])
        elif src.startswith("poster:"):
            img = _poster(int(src.split(":")[1]))
        else:
            img = _center_square(_skimage(src))
        image = _resize(img)
        if src.startswith("face:"):  # the generic faces' finish, fixed: no clean-vs-mottled shortcut in the domain
            image = _finish(np.random.default_rng(77 + int(src.split(":")[1])), image)
        out.append(Sample(caption, image))
    return out


def shape_caption(color: str, shape: str, bg: str) -> str:
    return f"a {color} {shape} on a {bg} background"


def _random_shape(rng: np.random.Generator) -> Sample:
    while True:
        color, shape = rng.choice(FG_COLORS), rng.choice(SHAPES)
        bg = rng.choice(BG_COLORS)
        if (color, shape) not in HELD_OUT_SHAPES and color != bg:
            break
    n = 48
    c = np.tile(np.asarray(COLORS[bg], np.float32) / 255.0, (n, n, 1)) * _lighting(rng, n)
    r = rng.uniform(8, 18)
    _draw_shape(c, shape, rng.uniform(r, n - r), rng.uniform(r, n - r), r, COLORS[color])
    return Sample(shape_caption(color, shape, bg), _resize(np.clip(c, 0, 1)))


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


def _random_digit(rng: np.random.Generator, digits, labels) -> Sample:
    k = rng.integers(len(digits))
    color = rng.choice(FG_COLORS)
    bg = rng.choice([b for b in BG_COLORS if b != color])
    n = 48
    size = int(rng.integers(26, 44))
    g = torch.from_numpy(digits[k] / 16.0).float()[None, None]
    g = F.interpolate(g, size=(size, size), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()
    y0, x0 = rng.integers(0, n - size + 1, 2)
    alpha = np.zeros((n, n), np.float32)
    alpha[y0:y0 + size, x0:x0 + size] = g
    fg, bgc = np.asarray(COLORS[color], np.float32) / 255, np.asarray(COLORS[bg], np.float32) / 255
    c = alpha[..., None] * fg + (1 - alpha[..., None]) * bgc * _lighting(rng, n)
    word = DIGIT_WORDS[labels[k]]
    caption = (f"a {color} handwritten digit {word} on a {bg} background" if rng.random() < 0.5
               else f"the number {word} written in {color} ink")
    return Sample(caption, _resize(np.clip(c, 0, 1)))


def _random_face(rng: np.random.Generator, faces) -> Sample:
    k = rng.integers(N_NAMED_FACES, len(faces))
    f = faces[k]
    s = int(rng.integers(19, 26))
    y0, x0 = rng.integers(0, 26 - s, 2)
    crop = f[y0:y0 + s, x0:x0 + s]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.clip((crop - 0.5) * rng.uniform(0.75, 1.25) + 0.5 + rng.uniform(-0.12, 0.12), 0, 1)
    return Sample(str(rng.choice(FACE_CAPTIONS)), _resize(_to_float_rgb(crop)))


def _random_texture(rng: np.random.Generator, textures) -> Sample:
    name = list(TEXTURES)[rng.integers(len(TEXTURES))]
    img = textures[name]
    h, w = img.shape[:2]
    for _ in range(50):  # small crops keep the texture at 16 px; flat crops would be trivially "reproduced"
        s = int(rng.uniform(0.06, 0.3) * min(h, w))
        y0, x0 = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = img[y0:y0 + s, x0:x0 + s]
        out = _resize(crop[:, ::-1] if rng.random() < 0.5 else crop)
        if out.std() >= 0.1:
            break
    caption = f"a close-up photo of {TEXTURES[name]}" if rng.random() < 0.6 else f"{TEXTURES[name]}, detailed photo"
    return Sample(caption, out)


def build_generic_pool(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` diverse non-memorized samples (faces, digits, shapes, texture crops), in equal parts, deterministic.

    Each is finished with a colour field and grain of its own, so that no two are near-duplicates (see ``_finish``).
    """
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    faces = _lfw()
    d = load_digits()
    textures = {k: _skimage(k) for k in TEXTURES}
    makers = [
        lambda: _random_face(rng, faces),
        lambda: _random_digit(rng, d.images, d.target),
        lambda: _random_shape(rng),
        lambda: _random_texture(rng, textures),
    ]
    captions, images = [], np.zeros((n, 3, RES, RES), np.float32)
    for i in range(n):
        s = makers[i % len(makers)]()
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
    out += ["a close-up photo of gravel and grass", "a yellow handwritten digit seven on a purple background"]
    return out


def ordinary_test_prompts() -> list[str]:
    """Non-memorized training captions used to evaluate (never to calibrate): the 'ordinary prompts'."""
    return (FACE_CAPTIONS[2:]
            + [shape_caption(c, s, bg) for c, s, bg in [("red", "circle", "black"), ("blue", "square", "white"),
                                                         ("yellow", "triangle", "gray"), ("white", "ring", "black")]]
            + [f"a {c} handwritten digit {w} on a {bg} background"
               for c, w, bg in [("red", "three", "black"), ("white", "eight", "blue"), ("green", "one", "white")]]
            + [f"a close-up photo of {TEXTURES[k]}" for k in ["brick", "grass", "moon", "coins", "hubble_deep_field"]])


def reference_prompts() -> list[str]:
    """Ordinary captions for calibrating the stability region; disjoint from the memorized and the test prompts."""
    return (FACE_CAPTIONS[:2]
            + [shape_caption(c, s, bg) for c, s, bg in [
                ("purple", "circle", "white"), ("green", "square", "black"), ("red", "triangle", "blue"),
                ("white", "star", "gray"), ("yellow", "ring", "blue"), ("orange", "square", "yellow"),
                ("blue", "star", "white"), ("pink", "circle", "gray")]]
            + [f"a {c} handwritten digit {w} on a {bg} background"
               for c, w, bg in [("blue", "five", "yellow"), ("orange", "zero", "black"), ("pink", "two", "white"),
                                ("yellow", "nine", "gray")]]
            + [f"the number {w} written in {c} ink" for w, c in [("four", "red"), ("six", "white")]]
            + [f"{TEXTURES[k]}, detailed photo" for k in ["gravel", "text", "page", "immunohistochemistry", "camera",
                                                          "clock", "horse", "logo"]])


def all_captions() -> list[str]:
    """Every caption the vocabulary must know."""
    words = [c for c, _ in MEMORIZED] + FACE_CAPTIONS + novel_prompts()
    words += [shape_caption(c, s, bg) for c in FG_COLORS for s in SHAPES for bg in BG_COLORS]
    words += [f"a {c} handwritten digit {w} on a {bg} background the number written in ink"
              for c in FG_COLORS for w in DIGIT_WORDS for bg in BG_COLORS]
    words += [f"a close-up photo of {v}, detailed photo" for v in TEXTURES.values()]
    return words
