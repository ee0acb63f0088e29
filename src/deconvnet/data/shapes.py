"""The 20 object classes of SynthVOC: shapes told apart by structure, never by colour.

Each class is a list of drawing steps in a unit frame (x, y in [-1, 1], y down): ``fill`` paints a polygon,
``hole`` clears one, ``line`` strokes a polyline whose width is a fraction of the object's radius (at least one
pixel). Pairs share a coarse outline and differ only in detail - disk / gear / ring / wheel, square / frame,
cross / hash, star / asterisk - so a network that predicts blobs loses IoU on the thin parts, which is the
paper's case for a deep decoder over FCN's coarse maps (Sec. 1, 6.2).

Used by ``synthvoc`` (chapter 4) and shown in the data gallery.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SUBPIXEL = 4  # cv2 drawing shift: vertices at 1/16 px, so small objects keep their shape


def _ngon(k: int, r: float = 1.0, phase: float = -math.pi / 2, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    t = phase + 2 * math.pi * np.arange(k) / k
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)  # (k, 2)


def _circle(r: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    return _ngon(48, r, 0.0, cx, cy)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _star(points: int, inner: float) -> np.ndarray:
    outer = _ngon(points, 1.0)
    inner_ = _ngon(points, inner, -math.pi / 2 + math.pi / points)
    return np.stack([outer, inner_], axis=1).reshape(-1, 2)  # alternate outer and inner vertices


def _gear(teeth: int = 12) -> np.ndarray:
    t = -math.pi / 2 + 2 * math.pi * np.arange(4 * teeth) / (4 * teeth)
    r = np.where((np.arange(4 * teeth) // 2) % 2 == 0, 1.0, 0.78)  # two vertices out, two in: square teeth
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _spiral(turns: float = 2.5) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi * turns, 120)
    r = 0.12 + 0.88 * t / t[-1]
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _spokes(n: int, r: float, width: float) -> list:
    return [("line", np.array([[0.0, 0.0], [r * math.cos(a), r * math.sin(a)]]), width)
            for a in 2 * math.pi * np.arange(n) / n]


SHAPES: dict[str, list] = {
    "disk": [("fill", _circle())],
    "ring": [("fill", _circle()), ("hole", _circle(0.72))],
    "wheel": [("fill", _circle()), ("hole", _circle(0.84)), *_spokes(8, 0.9, 0.07), ("fill", _circle(0.18))],
    "gear": [("fill", _gear()), ("hole", _circle(0.3))],
    "square": [("fill", _rect(-1, -1, 1, 1))],
    "frame": [("fill", _rect(-1, -1, 1, 1)), ("hole", _rect(-0.78, -0.78, 0.78, 0.78))],
    "triangle": [("fill", _ngon(3))],
    "star": [("fill", _star(5, 0.42))],
    "asterisk": _spokes(6, 1.0, 0.14),
    "cross": [("fill", _rect(-1, -0.17, 1, 0.17)), ("fill", _rect(-0.17, -1, 0.17, 1))],
    "hash": [("fill", _rect(-1, y - 0.1, 1, y + 0.1)) for y in (-0.4, 0.4)]
    + [("fill", _rect(x - 0.1, -1, x + 0.1, 1)) for x in (-0.4, 0.4)],
    "crescent": [("fill", _circle()), ("hole", _circle(0.86, 0.42, -0.12))],
    "arrow": [("fill", _rect(-1, -0.12, 0.25, 0.12)), ("fill", np.array([[0.2, -0.6], [1, 0], [0.2, 0.6]]))],
    "hourglass": [("fill", np.array([[-0.8, -1], [0.8, -1], [0.08, 0], [0.8, 1], [-0.8, 1], [-0.08, 0]]))],
    "spiral": [("line", _spiral(), 0.09)],
    "comb": [("fill", _rect(-1, -1, 1, -0.62))] + [("fill", _rect(x - 0.06, -0.7, x + 0.06, 1))
                                                    for x in np.linspace(-0.9, 0.9, 7)],
    "ladder": [("fill", _rect(-0.75, -1, -0.55, 1)), ("fill", _rect(0.55, -1, 0.75, 1))]
    + [("fill", _rect(-0.6, y - 0.06, 0.6, y + 0.06)) for y in np.linspace(-0.75, 0.75, 5)],
    "trident": [("fill", _rect(-0.08, -0.35, 0.08, 1)), ("fill", _rect(-0.7, -0.42, 0.7, -0.28))]
    + [("fill", np.array([[x - 0.08, -0.3], [x + 0.08, -0.3], [x + 0.08, -0.8], [x, -1], [x - 0.08, -0.8]]))
       for x in (-0.62, 0.0, 0.62)],
    "zigzag": [("line", np.array([[-1, 0.55], [-0.6, -0.55], [-0.2, 0.55], [0.2, -0.55], [0.6, 0.55],
                                  [1, -0.55]]), 0.13)],
    "key": [("fill", _circle(0.42, -0.55, 0)), ("hole", _circle(0.22, -0.55, 0)),
            ("fill", _rect(-0.18, -0.08, 1, 0.08)), ("fill", _rect(0.55, 0.05, 0.67, 0.42)),
            ("fill", _rect(0.8, 0.05, 0.92, 0.3))],
}
SHAPE_NAMES: tuple[str, ...] = tuple(SHAPES)  # class 1..20 in this order; 0 is background


def shape_transform(center: tuple[float, float], radius: float, angle_deg: float, aspect: float) -> np.ndarray:
    """2x3 affine from the unit frame to pixels: stretch x by ``aspect``, rotate, scale, move."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    linear = radius * rot @ np.diag([math.sqrt(aspect), 1 / math.sqrt(aspect)])
    return np.concatenate([linear, np.array(center, dtype=float)[:, None]], axis=1)  # (2, 3)


def draw_shape(name: str, size_hw: tuple[int, int], affine: np.ndarray) -> np.ndarray:
    """Rasterise class ``name`` into a ``(H, W)`` bool mask (SynthVOC's object classes, chapter 4).

    Parts outside the image are clipped, as for a truncated object in VOC. Strokes keep a width of at least
    one pixel so that thin parts never vanish at small scales.
    """
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; valid shapes are: {', '.join(SHAPE_NAMES)}")
    mask = np.zeros(size_hw, np.uint8)
    radius = math.sqrt(abs(np.linalg.det(affine[:, :2])))
    for step in SHAPES[name]:
        op, pts = step[0], step[1]
        px = pts @ affine[:, :2].T + affine[:, 2]  # (k, 2) in pixels
        fixed = np.round(px * (1 << SUBPIXEL)).astype(np.int32)[None]
        if op == "line":
            width = max(1, round(step[2] * radius))
            cv2.polylines(mask, fixed, False, 1, width, cv2.LINE_8, SUBPIXEL)
        else:
            cv2.fillPoly(mask, fixed, 1 if op == "fill" else 0, cv2.LINE_8, SUBPIXEL)
    return mask.astype(bool)


def shape_extent(name: str, affine: np.ndarray) -> np.ndarray:
    """The shape's box ``(x0, y0, x1, y1)`` in pixels before clipping, to tell truncated objects."""
    pts = np.concatenate([s[1] for s in SHAPES[name]]) @ affine[:, :2].T + affine[:, 2]
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])
