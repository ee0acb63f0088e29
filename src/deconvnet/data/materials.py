"""What SynthVOC's objects are made of: ten procedural material families, two shape classes each.

VOC's classes differ in appearance (fur, metal, glass, feathers) as much as in outline, and an
ImageNet-trained encoder names them from both. SynthVOC v1 filled every object with a patch of the same
photos as the backgrounds, so only the outline told classes apart; v2 gives each class a look:

* a **family** is a texture with structure: stripes, checks, dots, wood grain, marble veins, weave, scales,
  speckle, waves or bricks. Its period, angle, colours and contrast vary from object to object;
* **two classes share each family** and differ only in outline or thin parts (disk / gear, square / frame,
  cross / hash, ...), so that shape and fine detail still decide between them;
* **colour does not name the class**: each family draws its two colours from a hue window a half-circle wide,
  and the windows of the ten families overlap, so every hue belongs to about five families and ten classes.
  The per-pixel classifier of the learning study (appendix) measures how little one pixel's colour tells;
* the texture's period scales with the object, as a zebra's stripes do, never below ``MIN_PERIOD`` pixels.

Backgrounds stay crops of real photos, which no class uses. ``texture(family, rng, size_hw, radius)`` paints
one object's fill. Used by ``synthvoc`` (chapter 4) and shown in the data gallery.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

FAMILIES = ("stripes", "checks", "dots", "wood", "marble", "weave", "scales", "speckle", "waves", "bricks")
# The shape classes of each family: pairs that share a coarse outline where the shapes allow it, so the
# decoder's fine detail decides (shapes.SHAPE_NAMES holds all 20).
CLASS_FAMILY = {
    "disk": "stripes", "gear": "stripes",
    "ring": "checks", "wheel": "checks",
    "square": "dots", "frame": "dots",
    "cross": "wood", "hash": "wood",
    "star": "marble", "asterisk": "marble",
    "triangle": "weave", "arrow": "weave",
    "crescent": "scales", "spiral": "scales",
    "comb": "speckle", "ladder": "speckle",
    "trident": "waves", "key": "waves",
    "hourglass": "bricks", "zigzag": "bricks",
}
HUE_WINDOW = 0.5  # each family's colours come from half the hue circle, centred on its own hue
MIN_PERIOD = 3.0  # pixels: a finer pattern would alias into noise
PERIOD_OF_RADIUS = (0.25, 0.5)  # pattern period / object radius, drawn per object


def _colours(rng: np.random.Generator, family: int) -> np.ndarray:
    """Two RGB colours (0-255) from the family's hue window, one light and one dark, ``(2, 3)``."""
    centre = family / len(FAMILIES)
    out = []
    for value in (rng.uniform(0.65, 1.0), rng.uniform(0.15, 0.5)):
        hue = (centre + rng.uniform(-HUE_WINDOW / 2, HUE_WINDOW / 2)) % 1.0
        out.append(colorsys.hsv_to_rgb(hue, rng.uniform(0.3, 0.9), value))
    return np.array(out, np.float32) * 255


def _grid(rng: np.random.Generator, size_hw: tuple[int, int], period: float):
    """Pixel coordinates rotated by a random angle and divided by ``period``: ``(u, v)``, each ``(H, W)``."""
    h, w = size_hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, math.pi)
    x0, y0 = rng.uniform(0, period, 2)
    u = ((x - x0) * math.cos(a) + (y - y0) * math.sin(a)) / period
    v = (-(x - x0) * math.sin(a) + (y - y0) * math.cos(a)) / period
    return u, v


def _noise(rng: np.random.Generator, size_hw: tuple[int, int], blur: float) -> np.ndarray:
    """Smooth Gaussian noise that varies over about ``blur`` pixels, std about 1, ``(H, W)``.

    Up to a blur of 2 pixels it is blurred white noise; beyond, noise on a grid ``blur`` pixels apart,
    interpolated, so a large blur costs no more than a small one.
    """
    h, w = size_hw
    if blur <= 2:
        n = cv2.GaussianBlur(rng.standard_normal(size_hw).astype(np.float32), (0, 0), max(blur, 0.5))
        return n / (n.std() + 1e-6)
    grid = rng.standard_normal((math.ceil(h / blur) + 2, math.ceil(w / blur) + 2)).astype(np.float32)
    big = cv2.resize(grid, (round(grid.shape[1] * blur), round(grid.shape[0] * blur)),
                     interpolation=cv2.INTER_CUBIC)
    return big[:h, :w]


def _pattern(name: str, rng: np.random.Generator, size_hw: tuple[int, int], period: float) -> np.ndarray:
    """The family's mixing map in [0, 1], ``(H, W)``: 1 shows the light colour, 0 the dark one."""
    u, v = _grid(rng, size_hw, period)
    if name == "stripes":
        return (np.sin(2 * math.pi * u) > rng.uniform(-0.3, 0.3)).astype(np.float32)
    if name == "checks":
        return ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    if name == "dots":
        return ((u - np.round(u)) ** 2 + (v - np.round(v)) ** 2 < rng.uniform(0.06, 0.14)).astype(np.float32)
    if name == "wood":  # rings around a far centre, bent by smooth noise
        r = np.hypot(u + rng.uniform(3, 8), v) + 0.6 * _noise(rng, size_hw, period)
        return 0.5 + 0.5 * np.sin(2 * math.pi * r)
    if name == "marble":  # thin dark veins along a turbulent direction
        t = np.sin(2 * math.pi * (u + 1.5 * _noise(rng, size_hw, 2 * period)))
        return 1 - np.exp(-8 * (1 - np.abs(t)))
    if name == "weave":  # over-under bands in two directions
        band_u = np.sin(2 * math.pi * u) > 0
        band_v = np.sin(2 * math.pi * v) > 0
        over = (np.floor(u * 2) + np.floor(v * 2)) % 2 == 0
        return np.where(over, band_u, band_v).astype(np.float32) * 0.8 + 0.1
    if name == "scales":  # rows of overlapping half-discs
        row = np.floor(v)
        uu = u + 0.5 * (row % 2)
        d = np.hypot(uu - np.round(uu), (v - row) - 1.0)
        return np.clip((d - 0.35) / 0.3, 0, 1)
    if name == "speckle":  # fine grain, no period
        return (_noise(rng, size_hw, period / 6) > rng.uniform(-0.2, 0.4)).astype(np.float32)
    if name == "waves":
        return 0.5 + 0.5 * np.sin(2 * math.pi * (u + 0.35 * np.sin(2 * math.pi * v / 2)))
    if name == "bricks":
        row = np.floor(v * 2)
        uu = u + 0.5 * (row % 2)
        mortar = (np.abs(uu - np.round(uu)) < 0.06) | (np.abs(v * 2 - np.round(v * 2)) < 0.1)
        return (~mortar).astype(np.float32)
    raise ValueError(f"unknown material family {name!r}; valid families are: {', '.join(FAMILIES)}")


def texture(family: str, rng: np.random.Generator, size_hw: tuple[int, int], radius: float) -> np.ndarray:
    """One object's fill: the family's pattern in two of its colours, with shading, ``(H, W, 3)`` float32.

    ``radius`` is the object's size in pixels; the pattern's period is a random share of it.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown material family {family!r}; valid families are: {', '.join(FAMILIES)}")
    period = max(MIN_PERIOD, radius * rng.uniform(*PERIOD_OF_RADIUS))
    mix = _pattern(family, rng, size_hw, period)[..., None]  # (H, W, 1)
    light, dark = _colours(rng, FAMILIES.index(family))
    image = dark + (light - dark) * mix  # (H, W, 3)
    shading = 1 + 0.25 * _noise(rng, size_hw, 4 * max(radius, 4))[..., None]  # soft light across the object
    return np.clip(image * shading, 0, 255).astype(np.float32)
