"""apclip_bench: the embedded procedural video benchmark (the project's default data).

Why it exists
-------------
The paper's premise is that a class NAME is a weak description of an action, and that
descriptions of the action's attributes (Scene / Actor / Body, the 12 keys of the attribute
graph) let a CLIP model recognise actions it was never trained on. Real datasets need hours of
GPU time to test that; this benchmark tests the same premise in seconds on a CPU, and in a way
that can be explained completely:

Design principles (spec 2), fixed before any result was looked at; the results are reported as they came:

1. **Names carry partial meaning, as real class names do.** A name is an invented stem plus ONE word the
   tiny CLIP's pretraining has seen with its visual meaning ("red zindling", "sand wuzzling": ``NAME_WORDS``),
   true of the class and shared with other classes of its split, so the single prompt "a video of {name}" is
   informative but never enough. Motion-only groups share a stem and add a motion word ("narping upward" /
   "downward" / "sideways"), which single-frame pretraining never saw: like SSv2's names, only fine-tuning on
   base classes can teach it.
2. **Enough classes and videos, and an honest count of them.** 48 classes (24 base, 24 novel), 32 validation
   videos each (768 novel videos), compared paired (two methods on the same videos) over three seeds. The
   tiny models answer nearly all videos of a class alike (the videos differ only by jitter), so the tables'
   intervals draw whole classes (``paper.stats``): 24 novel units, not 768.
3. **The temporally hard case is large enough to measure.** In each split 4 groups of 3 classes share every
   static value and differ only in motion (direction; or speed and pattern): half the classes.
4. **Novel classes are new combinations of known values.** Every value a novel class shows, a base class shows.
5. **The benchmark is not tuned until a claim holds.** The class table comes from these rules by a seeded
   search (``_design_classes``), never from looking at a table's gain.

* Every class is a tuple of 12 attribute values, one per key of the attribute graph, and every
  value is rendered visibly with a short English phrase attached to it (``PHRASES``):

  ====================  ==================================================================
  scene.setting         backdrop colour (sky-blue, grass-green, sand-yellow, night-navy)
  scene.elements        background pattern (horizontal stripes, scattered dots, checkerboard,
                        plain)
  scene.props           an object at a fixed spot, lower left (brown ball, brown box, grey
                        pole, none)
  scene.lighting        bright or dim (the whole frame darkened)
  actor.role            an accessory in black (cap, diagonal sash, none)
  actor.clothing        the actor's colour (red, white, orange, purple)
  actor.appearance      shape (round, square, triangular) and size (small, large)
  actor.posture         upright or leaning (the shape is sheared)
  body.part_movement    the whole body moves, or one arm (a line attached to the actor) swings
  body.move_direction   upward, downward, sideways
  body.move_speed       slow (one movement / one cycle per clip) or fast (a third of the clip /
                        two cycles)
  body.motion_pattern   a single movement, or back and forth repeatedly
  ====================  ==================================================================

  Static attributes (Scene, Actor) are visible in every frame; Body attributes only across frames.
* ``CLASS_TABLE`` is derived from the rules above; any two of its 32 static looks differ in at least 3 of
  the 8 static attributes.
* The tiny CLIP (``apclip_core.embedded.pretrain``) is pretrained on single frames with random attribute
  combinations described by the same phrases and name words (``sample_pretraining_pairs``), never class
  names or motion: it plays the role of web-scale image-text pretraining, which knows what "dressed in red"
  looks like but not what "zindling" means.

Files (relative to the root, default ``paths.data_dir()/"apclip_bench"``): real videos written
with PyAV, alternating MP4/H.264 and AVI/MPEG-4 Part 2, 80x64 (W x H), 8 fps, 12-16 frames;
the same list and label formats as the public ViFi-CLIP protocols; per-frame actor boxes;
``classes.json`` with the attribute phrases; ``manifest.json`` with a spec hash that makes
``render_benchmark`` idempotent. Everything is deterministic given the seed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apclip_core import atomic, paths
from apclip_core.data.annotations import VideoRecord, write_labels, write_video_list
from apclip_core.progress import progress, say

log = logging.getLogger(__name__)

SPEC_VERSION = "2"
NAME = "apclip_bench"
FRAME_W, FRAME_H, FPS = 80, 64, 8
MIN_FRAMES, MAX_FRAMES = 12, 16
TRAIN_PER_CLASS, VAL_PER_CLASS = 20, 32
FEW_SHOT_K = (2, 4, 8, 16)
BASE_SEEDS = (1, 2, 3)      # the 16-shot base lists, and the few-shot lists of every K
BASE_SHOTS = 16

ATTRIBUTE_KEYS = (
    "scene.setting", "scene.elements", "scene.props", "scene.lighting",
    "actor.role", "actor.clothing", "actor.appearance", "actor.posture",
    "body.part_movement", "body.move_direction", "body.move_speed", "body.motion_pattern",
)
STATIC_KEYS = ATTRIBUTE_KEYS[:8]   # visible in every single frame
MOTION_KEYS = ATTRIBUTE_KEYS[8:]   # visible only across frames

# attribute key -> value code -> the English phrase used in classes.json AND in pretraining captions
PHRASES: dict[str, dict[str, str]] = {
    "scene.setting": {"sky": "on a sky-blue backdrop", "grass": "on a grass-green backdrop",
                      "sand": "on a sand-yellow backdrop", "navy": "on a night-navy backdrop"},
    "scene.elements": {"stripes": "with horizontal stripes in the background",
                       "dots": "with scattered dots in the background",
                       "checker": "with a checkerboard background", "plain": "with a plain background"},
    "scene.props": {"ball": "next to a brown ball", "box": "next to a brown box",
                    "pole": "next to a grey pole", "none": "with no object nearby"},
    "scene.lighting": {"bright": "in bright light", "dim": "in dim light"},
    "actor.role": {"cap": "wearing a black cap", "sash": "wearing a black sash", "none": "with no accessory"},
    "actor.clothing": {"red": "dressed in red", "white": "dressed in white", "orange": "dressed in orange",
                       "purple": "dressed in purple"},
    "actor.appearance": {"small circle": "a small round figure", "large circle": "a large round figure",
                         "small square": "a small square figure", "large square": "a large square figure",
                         "small triangle": "a small triangular figure",
                         "large triangle": "a large triangular figure"},
    "actor.posture": {"upright": "standing upright", "leaning": "leaning to one side"},
    "body.part_movement": {"body": "the whole body moves", "arm": "one arm swings"},
    "body.move_direction": {"up": "moving upward", "down": "moving downward", "side": "moving sideways"},
    "body.move_speed": {"slow": "at a slow pace", "fast": "at a fast pace"},
    "body.motion_pattern": {"once": "in a single movement", "repeat": "back and forth repeatedly"},
}

# Per-frame pose phrases (pretraining captions only; never in classes.json): what ONE frame shows.
POSE_PHRASES = {
    "top": "near the top", "bottom": "near the bottom", "middle": "in the middle",
    "left": "on the left", "right": "on the right", "centre": "in the centre",
    "arm_down": "with the arm lowered", "arm_out": "with the arm held out", "arm_up": "with the arm raised",
}

# The one word of a static value that a class NAME may carry ("red zindling", "ball framping"): the word
# pretraining captions also use on its own for that value (sample_pretraining_pairs), so the tiny CLIP knows what
# it looks like, as web-scale CLIP knows "horse" in "riding a horse".
NAME_WORDS: dict[str, dict[str, str]] = {
    "actor.clothing": {"red": "red", "white": "white", "orange": "orange", "purple": "purple"},
    "scene.props": {"ball": "ball", "box": "box", "pole": "pole"},
    "scene.setting": {"sky": "sky", "grass": "grass", "sand": "sand", "navy": "navy"},
}
# The word a motion-only class's name carries for what sets it apart within its group ("zindling upward" vs
# "zindling downward"). Pretraining never shows motion (single frames), so these are the names' unknown part
# until base-class fine-tuning teaches them: the SSv2 situation ("pushing something left to right").
MOTION_NAME_WORDS = {"up": "upward", "down": "downward", "side": "sideways",
                     ("slow", "once"): "slowly", ("fast", "once"): "quickly", "repeat": "repeatedly"}
# Invented stems: no model has seen them (the names' unknown part).
STEMS = ("blorp", "zindl", "framp", "glimber", "quonk", "snerv", "trabbl", "wuzzl", "plind", "dravv", "skorb",
         "mool", "fender", "yabbl", "vostl", "thwimbl", "narp", "chorv", "pezzl", "rundl", "lops", "greeb",
         "movan", "krest", "bliff", "droon", "gozzl", "huxt", "jemb", "klonn", "murv", "pontl", "quib", "rask",
         "sloob", "tweff", "ulm", "vesk", "wibb", "yort")

N_PER_SPLIT = 24         # classes per split (base, novel)
MOTION_GROUPS = 4        # per split: groups of 3 classes that share every static value and differ only in motion
GROUP_SIZE = 3
MIN_LOOK_DISTANCE = 3    # any two distinct static looks differ in at least this many static attributes
DESIGN_SEED = 2


def _values(key: str) -> list[str]:
    return list(PHRASES[key])


def _design_classes(seed: int = DESIGN_SEED) -> tuple[tuple[str, ...], ...]:
    """The class table, derived from the design rules by a seeded search (deterministic):

    * per split 24 classes: 4 motion-only groups of 3 (one static look, three motions that differ in direction,
      or in speed and pattern) and 12 classes with a look of their own; every two of the 32 looks differ in at
      least MIN_LOOK_DISTANCE of the 8 static attributes;
    * every value a novel class shows, some base class shows too (novel classes are new combinations);
    * names: a group shares an invented stem and each member adds its motion word ("zindling upward"); a class
      with its own look gets a stem and ONE word of one of its static values, chosen among the words at least
      one other class of its split also shows ("red zindling"): a name that tells CLIP something true but
      never enough to pick the class on its own.
    """
    rng = np.random.default_rng(seed)
    static, motion = ATTRIBUTE_KEYS[:8], ATTRIBUTE_KEYS[8:]
    n_looks = 2 * (MOTION_GROUPS + N_PER_SPLIT - GROUP_SIZE * MOTION_GROUPS)
    for _attempt in range(1000):
        looks: list[tuple[str, ...]] = []
        while len(looks) < n_looks:
            cand = tuple(_values(k)[int(rng.integers(len(_values(k))))] for k in static)
            if all(sum(a != b for a, b in zip(cand, other)) >= MIN_LOOK_DISTANCE for other in looks):
                looks.append(cand)
        half = n_looks // 2
        base_looks, novel_looks = looks[:half], looks[half:]
        if all({lk[i] for lk in novel_looks} <= {lk[i] for lk in base_looks} for i in range(len(static))):
            break
    else:  # pragma: no cover - the rules above are satisfiable; a change that makes them not must say so
        raise RuntimeError("no class design satisfies the benchmark's rules; relax MIN_LOOK_DISTANCE")
    tempo = [("slow", "once"), ("fast", "once"), (None, "repeat")]
    rows: list[tuple[str, ...]] = []
    stems = iter(STEMS)
    for split, split_looks in (("base", base_looks), ("novel", novel_looks)):
        split_rows = []
        for g in range(MOTION_GROUPS):
            stem, look = next(stems), split_looks[g]
            part = _values("body.part_movement")[int(rng.integers(2))]
            if g % 2 == 0:   # direction groups: up / down / sideways at one tempo
                speed, pattern = _values("body.move_speed")[int(rng.integers(2))], \
                    _values("body.motion_pattern")[int(rng.integers(2))]
                members = [((d, speed, pattern), MOTION_NAME_WORDS[d]) for d in ("up", "down", "side")]
            else:            # tempo groups: once slowly / once quickly / back and forth, in one direction
                direction = _values("body.move_direction")[int(rng.integers(3))]
                members = []
                for sp, pat in tempo:
                    sp = sp or _values("body.move_speed")[int(rng.integers(2))]
                    word = MOTION_NAME_WORDS["repeat"] if pat == "repeat" else MOTION_NAME_WORDS[(sp, pat)]
                    members.append(((direction, sp, pat), word))
            for (direction, sp, pat), word in members:
                split_rows.append((f"{stem}ing {word}", split, *look, part, direction, sp, pat))
        own = split_looks[MOTION_GROUPS:]
        words = []
        for look in own:
            codes = dict(zip(static, look))
            words.append([NAME_WORDS[k][codes[k]] for k in NAME_WORDS if codes[k] in NAME_WORDS[k]])
        counts: dict[str, int] = {}
        for ws in words:
            for w in ws:
                counts[w] = counts.get(w, 0) + 1
        for look, ws in zip(own, words):
            shared = [w for w in ws if counts[w] >= 2] or ws
            word = shared[int(rng.integers(len(shared)))]
            mot = tuple(_values(k)[int(rng.integers(len(_values(k))))] for k in motion)
            split_rows.append((f"{word} {next(stems)}ing", split, *look, *mot))
        rows += split_rows
    return tuple(rows)


# name, split, then one value code per ATTRIBUTE_KEYS entry (in that order): see _design_classes.
CLASS_TABLE: tuple[tuple[str, ...], ...] = _design_classes()

# ---- how values are drawn (raw render parameters; recorded per class in classes.json) --------
BACKDROP_RGB = {"sky": (110, 170, 230), "grass": (70, 150, 60), "sand": (225, 205, 130), "navy": (25, 35, 95)}
ACTOR_RGB = {"red": (225, 35, 35), "white": (245, 245, 245), "orange": (250, 140, 20), "purple": (150, 60, 190)}
ACCESSORY_RGB = (15, 15, 15)
PROP_RGB = {"ball": (150, 90, 40), "box": (150, 90, 40), "pole": (135, 135, 135)}
RADIUS = {"small": 9.0, "large": 13.0}
LEAN_SHEAR = {"upright": 0.0, "leaning": 0.45}
DIM_FACTOR = 0.65
HOME_XY = (44.0, 34.0)        # actor centre when it does not move (arm classes)
BODY_RANGE_Y = (46.0, 20.0)   # whole-body vertical move: bottom -> top
BODY_RANGE_X = (30.0, 58.0)   # whole-body sideways move: left -> right
ARM_ANGLES = {"up": (20.0, 160.0), "down": (160.0, 20.0), "side": (145.0, 215.0)}  # degrees, 0 = down
FAST_ONCE_FRACTION = 0.35     # a fast single movement takes this fraction of the clip
CYCLES = {"slow": 1.0, "fast": 2.0}
JITTER_PX, JITTER_PHASE = 3.0, 0.06

_YY, _XX = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)


@dataclass(frozen=True)
class BenchmarkInfo:
    root: Path
    classnames: list[str]            # labels.csv order (all classes)
    base_classes: list[str]          # base_labels.csv order
    novel_classes: list[str]         # novel_labels.csv order
    attributes: dict[str, dict[str, str]]   # class name -> {graph key: phrase}
    seed: int = 0
    spec_hash: str = ""


# ---------------------------------------------------------------------------------------------
# class definitions
# ---------------------------------------------------------------------------------------------

def class_codes() -> dict[str, dict[str, str]]:
    """Class name -> {graph key: value code}, in CLASS_TABLE order."""
    return {row[0]: dict(zip(ATTRIBUTE_KEYS, row[2:])) for row in CLASS_TABLE}


def class_split(name: str) -> str:
    return {row[0]: row[1] for row in CLASS_TABLE}[name]


def describe(codes: dict[str, str]) -> dict[str, str]:
    """Value codes -> the English phrase of each attribute (the classes.json 'attributes')."""
    return {key: PHRASES[key][codes[key]] for key in ATTRIBUTE_KEYS if key in codes}


def render_params(codes: dict[str, str]) -> dict:
    """Value codes -> the raw numbers the renderer uses (recorded in classes.json 'render')."""
    size, shape = codes["actor.appearance"].split()
    return {
        "backdrop_rgb": BACKDROP_RGB[codes["scene.setting"]],
        "background_pattern": codes["scene.elements"],
        "prop": codes["scene.props"],
        "light": DIM_FACTOR if codes["scene.lighting"] == "dim" else 1.0,
        "accessory": codes["actor.role"],
        "actor_rgb": ACTOR_RGB[codes["actor.clothing"]],
        "shape": shape,
        "radius": RADIUS[size],
        "shear": LEAN_SHEAR[codes["actor.posture"]],
        "part": codes.get("body.part_movement", "body"),
        "direction": codes.get("body.move_direction", "up"),
        "speed": codes.get("body.move_speed", "slow"),
        "motion_pattern": codes.get("body.motion_pattern", "once"),
    }


def _spec(seed: int) -> dict:
    """Everything that determines the rendered files; its hash makes rendering idempotent."""
    return {
        "name": NAME, "version": SPEC_VERSION, "seed": seed, "classes": CLASS_TABLE, "phrases": PHRASES,
        "frame": [FRAME_W, FRAME_H, FPS, MIN_FRAMES, MAX_FRAMES],
        "per_class": [TRAIN_PER_CLASS, VAL_PER_CLASS], "few_shot": FEW_SHOT_K, "base_seeds": BASE_SEEDS,
        "render": renderer_spec(),
    }


def renderer_spec() -> dict:
    """The renderer's constants (also part of the pretraining cache key)."""
    return {
        "backdrop": BACKDROP_RGB, "actor": ACTOR_RGB, "accessory": ACCESSORY_RGB, "prop": PROP_RGB,
        "radius": RADIUS, "shear": LEAN_SHEAR, "dim": DIM_FACTOR, "home": HOME_XY,
        "body_y": BODY_RANGE_Y, "body_x": BODY_RANGE_X, "arm": ARM_ANGLES, "fast_once": FAST_ONCE_FRACTION,
        "cycles": CYCLES, "jitter": [JITTER_PX, JITTER_PHASE], "pose": POSE_PHRASES,
        "name_words": NAME_WORDS, "name_word_prob": NAME_WORD_PROB,
    }


def spec_hash(seed: int = 0) -> str:
    blob = json.dumps(_spec(seed), sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# renderer
# ---------------------------------------------------------------------------------------------

_PATTERN_MASKS = {
    "stripes": (_YY // 4) % 2 == 0,
    "dots": ((_YY % 10) < 2) & (((_XX + 5 * ((_YY // 10) % 2)) % 10) < 2),
    "checker": ((_YY // 8) + (_XX // 8)) % 2 == 0,
    "plain": np.zeros((FRAME_H, FRAME_W), bool),
}
_PROP_MASKS = {
    "ball": (_XX - 15) ** 2 + (_YY - 54) ** 2 <= 25,
    "box": (_XX >= 10) & (_XX < 21) & (_YY >= 48) & (_YY < 59),
    "pole": (_XX >= 14) & (_XX < 17) & (_YY >= 18) & (_YY < 61),
}


def _background(p: dict) -> np.ndarray:
    """Backdrop + pattern + prop: the part of a frame that never changes (float32 [H,W,3])."""
    rgb = np.asarray(p["backdrop_rgb"], np.float32)
    img = np.empty((FRAME_H, FRAME_W, 3), np.float32)
    img[:] = rgb
    # pattern: blend toward white on dark backdrops, toward black on light ones (always visible)
    target = 255.0 if rgb.mean() < 100 else 0.0
    img[_PATTERN_MASKS[p["background_pattern"]]] = 0.65 * rgb + 0.35 * target
    if p["prop"] in _PROP_MASKS:
        img[_PROP_MASKS[p["prop"]]] = PROP_RGB[p["prop"]]
    return img


def _progress_curve(taus: np.ndarray, speed: str, pattern: str, phase: float, start: float) -> np.ndarray:
    """Motion progress u in [0, 1] at normalised times taus (0 = first frame, 1 = last)."""
    if pattern == "once":
        if speed == "slow":
            u = (taus - start * 0.3) / (1.0 - start * 0.3)
        else:
            u = (taus - start) / FAST_ONCE_FRACTION
        u = np.clip(u, 0.0, 1.0)
        return u * u * (3 - 2 * u)          # smoothstep: starts and stops gently
    return 0.5 - 0.5 * np.cos(2 * np.pi * (CYCLES[speed] * taus + phase))


def _poses(p: dict, taus: np.ndarray, jitter: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Actor centre (cx, cy) and arm angle (degrees, or None) for each time."""
    u = _progress_curve(taus, p["speed"], p["motion_pattern"], jitter["phase"], jitter["start"])
    hx, hy = HOME_XY[0] + jitter["dx"], HOME_XY[1] + jitter["dy"]
    n = len(taus)
    if p["part"] == "arm":
        a0, a1 = ARM_ANGLES[p["direction"]]
        return np.full(n, hx), np.full(n, hy), a0 + (a1 - a0) * u
    if p["direction"] == "side":
        x0, x1 = BODY_RANGE_X
        return x0 + (x1 - x0) * u + jitter["dx"] * 0.3, np.full(n, hy), None
    y0, y1 = BODY_RANGE_Y if p["direction"] == "up" else BODY_RANGE_Y[::-1]
    return np.full(n, hx), y0 + (y1 - y0) * u + jitter["dy"] * 0.3, None


def _actor_masks(p: dict, cx: float, cy: float, angle: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (body incl. arm, accessory) for one frame."""
    r, k = p["radius"], p["shear"]
    dy = _YY - cy
    sx = (_XX - cx) + k * dy     # shear: the top of the shape leans to the right
    sy = dy
    shape = p["shape"]
    if shape == "circle":
        body = sx * sx + sy * sy <= r * r
    elif shape == "square":
        body = (np.abs(sx) <= 0.85 * r) & (np.abs(sy) <= 0.85 * r)
    else:  # triangle, apex up
        body = (sy >= -r) & (sy <= 0.8 * r) & (np.abs(sx) <= (sy + r) / 1.8)
    top = -0.85 * r if shape == "square" else -r
    acc = p["accessory"]
    if acc == "cap":
        half = 1.5 if shape == "triangle" else 0.55 * r
        accessory = (sy >= top - 4) & (sy <= top + 1.5) & (np.abs(sx) <= half + 0.5)
    elif acc == "sash":
        accessory = body & (np.abs(sy + 0.7 * sx) <= 1.6)
    else:
        accessory = np.zeros_like(body)
    if angle is not None:
        sh_x, sh_y = 0.55 * r, -0.25 * r                 # shoulder, in shape coordinates
        ox, oy = cx + sh_x - k * sh_y, cy + sh_y         # back to pixels
        rad = np.deg2rad(angle)
        ux, uy = np.sin(rad), np.cos(rad)
        length = 1.1 * r + 5
        t = np.clip((_XX - ox) * ux + (_YY - oy) * uy, 0, length)
        dist2 = (_XX - ox - t * ux) ** 2 + (_YY - oy - t * uy) ** 2
        body = body | (dist2 <= 1.7)
    return body, accessory


def render_clip(p: dict, taus: np.ndarray, jitter: dict) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Frames uint8 [T,H,W,3], actor boxes int32 [T,4] (x0,y0,x1,y1; exclusive ends), per-frame poses."""
    bg = _background(p)
    actor = np.asarray(p["actor_rgb"], np.float32)
    cxs, cys, angles = _poses(p, np.asarray(taus, np.float32), jitter)
    frames = np.empty((len(taus), FRAME_H, FRAME_W, 3), np.uint8)
    boxes = np.zeros((len(taus), 4), np.int32)
    poses = []
    for i in range(len(taus)):
        angle = None if angles is None else float(angles[i])
        body, accessory = _actor_masks(p, float(cxs[i]), float(cys[i]), angle)
        img = bg.copy()
        img[body] = actor
        img[accessory] = ACCESSORY_RGB
        if p["light"] != 1.0:
            img *= p["light"]
        frames[i] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        union = body | accessory
        cols, rows = np.flatnonzero(union.any(0)), np.flatnonzero(union.any(1))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        poses.append({"cx": float(cxs[i]), "cy": float(cys[i]), "arm_angle": angle})
    return frames, boxes, poses


def _jitter(rng: np.random.Generator) -> dict:
    return {"dx": float(rng.uniform(-JITTER_PX, JITTER_PX)), "dy": float(rng.uniform(-JITTER_PX, JITTER_PX)),
            "phase": float(rng.uniform(-JITTER_PHASE, JITTER_PHASE)), "start": float(rng.uniform(0.0, 0.5))}


def _write_video(path: Path, frames: np.ndarray) -> None:
    """MP4 -> H.264 (libx264), AVI -> MPEG-4 Part 2; high quality so colours survive 4:2:0."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        if path.suffix == ".mp4":
            stream = container.add_stream("libx264", rate=FPS)
            stream.options = {"crf": "12", "preset": "veryfast", "tune": "zerolatency"}
        else:
            stream = container.add_stream("mpeg4", rate=FPS)
            stream.bit_rate = 1_500_000
        stream.width, stream.height, stream.pix_fmt = FRAME_W, FRAME_H, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def slug(name: str) -> str:
    """A class name as a folder and file name ("red zindling" -> "red_zindling"): list lines are space-separated."""
    return name.replace(" ", "_")


def _video_relpath(name: str, k: int) -> str:
    ext = "mp4" if k % 2 == 0 else "avi"
    return f"videos/{slug(name)}/{slug(name)}_{k}.{ext}"


def render_video(path: Path, name: str, k: int, seed: int = 0) -> np.ndarray:
    """Write video `k` of benchmark class `name` to `path` (.mp4: H.264, .avi: MPEG-4) and return its
    actor boxes [T,4]. Any file name works: tests render real decodable videos under another dataset's
    list names (the CI rehearsal of the paper profile on HMDB-51's real lists)."""
    codes = class_codes()[name]
    idx = [row[0] for row in CLASS_TABLE].index(name)
    rng = np.random.default_rng([seed, idx, k])
    n_frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    taus = np.linspace(0.0, 1.0, n_frames)
    frames, boxes, _ = render_clip(render_params(codes), taus, _jitter(rng))
    _write_video(Path(path), frames)
    return boxes


def _render_one(job: tuple[str, int, int, str]) -> tuple[str, list[list[int]]]:
    name, k, seed, out_root = job
    rel = _video_relpath(name, k)
    return rel, render_video(Path(out_root) / rel, name, k, seed).tolist()


# ---------------------------------------------------------------------------------------------
# the benchmark on disk
# ---------------------------------------------------------------------------------------------

def default_root() -> Path:
    return paths.data_dir() / NAME


def _info(root: Path, seed: int) -> BenchmarkInfo:
    codes = class_codes()
    names = sorted(codes)
    return BenchmarkInfo(
        root=root, classnames=names,
        base_classes=[n for n in names if class_split(n) == "base"],
        novel_classes=[n for n in names if class_split(n) == "novel"],
        attributes={n: describe(codes[n]) for n in names}, seed=seed, spec_hash=spec_hash(seed))


def _is_complete(root: Path, seed: int) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("spec_hash") != spec_hash(seed):
        return False
    names = class_codes()
    return all((root / _video_relpath(n, k)).is_file()
               for n in names for k in range(TRAIN_PER_CLASS + VAL_PER_CLASS))


def render_benchmark(root: Path | None = None, *, seed: int = 0, force: bool = False) -> BenchmarkInfo:
    """Render apclip_bench into ``root`` (skipped when a complete render of the same spec is there)."""
    root = Path(root) if root is not None else default_root()
    info = _info(root, seed)
    if not force and _is_complete(root, seed):
        log.debug("apclip_bench already rendered at %s (spec %s)", root, info.spec_hash)
        say(f"benchmark: reused the rendered apclip_bench in {paths.portable(root)} (spec {info.spec_hash})")
        return info
    say(f"benchmark: rendering apclip_bench into {paths.portable(root)} (about 30 s on 2 cores)")
    if root.exists() and any(root.iterdir()) and not (root / "manifest.json").exists():
        raise FileExistsError(f"refusing to render into {root}: it exists, is not empty and has no "
                              f"apclip_bench manifest.json; choose another --root or empty it")
    root.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temporaries(root.parent)
    tmp = atomic.temporary_sibling(root)
    try:
        _render_into(tmp, seed, info)
        atomic.publish(tmp, root, replace=force, is_complete=lambda path: _is_complete(path, seed))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def _render_into(out: Path, seed: int, info: BenchmarkInfo) -> None:
    start = time.perf_counter()
    out.mkdir(parents=True)
    codes = class_codes()
    n_videos = TRAIN_PER_CLASS + VAL_PER_CLASS
    jobs = [(name, k, seed, str(out)) for name in info.classnames for k in range(n_videos)]
    boxes: dict[str, list[list[int]]] = {}
    workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    if workers > 1:  # videos are independent: one per process, in list order (deterministic either way)
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            done = pool.map(_render_one, jobs, chunksize=32)
            for rel, clip_boxes in progress(done, desc="rendering apclip_bench", total=len(jobs)):
                boxes[rel] = clip_boxes
    else:
        for job in progress(jobs, desc="rendering apclip_bench"):
            rel, clip_boxes = _render_one(job)
            boxes[rel] = clip_boxes

    index = {n: i for i, n in enumerate(info.classnames)}
    base_index = {n: i for i, n in enumerate(info.base_classes)}
    novel_index = {n: i for i, n in enumerate(info.novel_classes)}
    train = {n: [_video_relpath(n, k) for k in range(TRAIN_PER_CLASS)] for n in info.classnames}
    val = {n: [_video_relpath(n, k) for k in range(TRAIN_PER_CLASS, n_videos)] for n in info.classnames}

    write_labels(out / "labels.csv", info.classnames)
    write_labels(out / "base_labels.csv", info.base_classes)
    write_labels(out / "novel_labels.csv", info.novel_classes)
    splits = out / "splits"
    write_video_list(splits / "train.txt", [VideoRecord(p, index[n]) for n in info.classnames for p in train[n]])
    write_video_list(splits / "val.txt", [VideoRecord(p, index[n]) for n in info.classnames for p in val[n]])
    # few-shot: K per class drawn from train (nested: the K-shot list contains the smaller ones)
    for s in BASE_SEEDS:  # split s: seed 1 keeps the draw of the single split that came before (spec 1)
        rng = np.random.default_rng([seed, 1000] if s == 1 else [seed, 1000, s])
        order = {n: rng.permutation(TRAIN_PER_CLASS) for n in info.classnames}
        for k in FEW_SHOT_K:
            write_video_list(splits / f"train{s}_few_shot_{k}.txt",
                             [VideoRecord(train[n][j], index[n]) for n in info.classnames for j in sorted(order[n][:k])])
    b2n = splits / "base2novel"
    for s in BASE_SEEDS:
        rng = np.random.default_rng([seed, 2000 + s])
        write_video_list(b2n / f"fs_base_s{s}_train.txt", [
            VideoRecord(train[n][j], base_index[n]) for n in info.base_classes
            for j in sorted(rng.choice(TRAIN_PER_CLASS, BASE_SHOTS, replace=False))])
    write_video_list(b2n / "base_val.txt", [VideoRecord(p, base_index[n]) for n in info.base_classes for p in val[n]])
    write_video_list(b2n / "novel_val.txt",
                     [VideoRecord(p, novel_index[n]) for n in info.novel_classes for p in val[n]])

    classes = [{"name": n, "split": class_split(n), "attributes": info.attributes[n],
                "codes": codes[n], "render": render_params(codes[n])} for n in info.classnames]
    (out / "classes.json").write_text(json.dumps(classes, indent=1))
    (out / "boxes.json").write_text(json.dumps(boxes, separators=(",", ":")))
    seconds = time.perf_counter() - start
    manifest = {
        "name": NAME, "version": SPEC_VERSION, "seed": seed, "spec_hash": info.spec_hash,
        "counts": {"classes": len(info.classnames), "base": len(info.base_classes), "novel": len(info.novel_classes),
                   "videos": len(boxes), "train": TRAIN_PER_CLASS * len(info.classnames),
                   "val": VAL_PER_CLASS * len(info.classnames), "frames": sum(len(b) for b in boxes.values())},
        "frame_size": [FRAME_W, FRAME_H], "frame_size_order": "width,height", "fps": FPS,
        "frames_per_video": [MIN_FRAMES, MAX_FRAMES], "containers": {"mp4": "h264", "avi": "mpeg4"},
        "box_format": "x0,y0,x1,y1 pixels, x1/y1 exclusive (frame[y0:y1, x0:x1])",
        "render_seconds": round(seconds, 2),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))  # written last: marks completion
    log.info("rendered apclip_bench (%d videos) in %.1f s", len(boxes), seconds)


def load_boxes(root: Path | None = None) -> dict[str, np.ndarray]:
    """Per-frame actor boxes: video path (as in the lists) -> int32 [T, 4] (x0, y0, x1, y1), exclusive ends."""
    root = Path(root) if root is not None else default_root()
    raw = json.loads((root / "boxes.json").read_text())
    return {path: np.asarray(b, dtype=np.int32).reshape(-1, 4) for path, b in raw.items()}


def load_classes(root: Path | None = None) -> list[dict]:
    """classes.json as written (name, split, attributes, codes, render)."""
    root = Path(root) if root is not None else default_root()
    return json.loads((root / "classes.json").read_text())


# ---------------------------------------------------------------------------------------------
# pretraining data: single frames, random attribute combinations, phrase captions
# ---------------------------------------------------------------------------------------------

def pose_code(p: dict, pose: dict) -> str:
    """What one frame shows of the pose: a key of POSE_PHRASES."""
    if pose["arm_angle"] is not None:
        a = pose["arm_angle"]
        return "arm_down" if a < 60 else "arm_up" if a > 120 else "arm_out"
    if p["direction"] == "side":
        x = pose["cx"]
        return "left" if x < 41 else "right" if x > 51 else "centre"
    y = pose["cy"]
    return "top" if y < 29 else "bottom" if y > 37 else "middle"


NAME_WORD_PROB = 0.3   # how often a caption says a value by its one name word ("red") instead of its phrase


def _caption_part(key: str, code: str, rng: np.random.Generator) -> str:
    """How a caption says one static value: its phrase, or (NAME_WORD_PROB) the one word class names use."""
    word = NAME_WORDS.get(key, {}).get(code)
    return word if word is not None and rng.uniform() < NAME_WORD_PROB else PHRASES[key][code]


def caption_vocabulary() -> dict[str, tuple[str, str]]:
    """Every part a pretraining caption can hold -> (attribute key, value code): static phrases, name words and
    pose phrases ("frame.pose")."""
    index = {phrase: (key, code) for key in STATIC_KEYS for code, phrase in PHRASES[key].items()}
    index.update({word: (key, code) for key, words in NAME_WORDS.items() for code, word in words.items()})
    index.update({phrase: ("frame.pose", code) for code, phrase in POSE_PHRASES.items()})
    return index


def sample_pretraining_pairs(n: int, *, seed: int, return_attributes: bool = False, pose_prob: float = 0.3,
                             max_phrases: int = len(STATIC_KEYS)):
    """``n`` single frames with RANDOM attribute combinations and captions made of their phrases.

    Returns (uint8 [n, 64, 80, 3], captions) - frames come from the same renderer as the videos
    (80x64, W x H), at a random moment of a random motion. A caption is a random subset (1 to
    ``max_phrases``, random order) of the frame's static-attribute phrases from ``PHRASES``, joined with commas, sometimes
    plus what this one frame shows of the pose (``POSE_PHRASES``); a colour, prop or backdrop is sometimes said by
    the one word class names use for it (``NAME_WORDS``: "red" for "dressed in red"). Motion phrases are never used
    (a single frame does not show them) and class names never appear. With ``return_attributes``
    a third element lists each frame's value codes {graph key: code} (all 12 keys, plus
    "frame.pose": the POSE_PHRASES key of what this frame shows, whether or not the caption says it).
    """
    rng = np.random.default_rng([seed, 7])
    frames = np.empty((n, FRAME_H, FRAME_W, 3), np.uint8)
    captions, attributes = [], []
    choices = {key: list(PHRASES[key]) for key in ATTRIBUTE_KEYS}
    for i in range(n):
        codes = {key: values[int(rng.integers(len(values)))] for key, values in choices.items()}
        p = render_params(codes)
        tau = np.array([rng.uniform(0.0, 1.0)], np.float32)
        frame, _, poses = render_clip(p, tau, _jitter(rng))
        frames[i] = frame[0]
        codes["frame.pose"] = pose_code(p, poses[0])
        keys = list(STATIC_KEYS)
        rng.shuffle(keys)
        chosen = [_caption_part(k, codes[k], rng) for k in keys[: int(rng.integers(1, max_phrases + 1))]]
        if rng.uniform() < pose_prob:
            chosen.insert(int(rng.integers(0, len(chosen) + 1)), POSE_PHRASES[codes["frame.pose"]])
        captions.append(", ".join(chosen))
        attributes.append(codes)
    return (frames, captions, attributes) if return_attributes else (frames, captions)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apclip_core benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help=f"output folder (default: data dir/{NAME})")
    parser.add_argument("--seed", type=int, default=0, help="render/split seed (default 0)")
    parser.add_argument("--force", action="store_true", help="re-render even if an identical render exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("apclip_core").setLevel(logging.INFO)   # not open_clip's chatter on the root logger
    start = time.perf_counter()
    info = render_benchmark(args.root, seed=args.seed, force=args.force)
    manifest = json.loads((info.root / "manifest.json").read_text())
    print(f"apclip_bench at {info.root}: {len(info.classnames)} classes ({len(info.base_classes)} base, "
          f"{len(info.novel_classes)} novel), {manifest['counts']['videos']} videos, spec {info.spec_hash}, "
          f"{time.perf_counter() - start:.1f} s")
    return 0
