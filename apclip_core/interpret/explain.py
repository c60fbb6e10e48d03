"""Interpretability (paper section 4.4, Figure 5): what each frame looks at and which prompts it matches,
and two measured checks on the embedded benchmark, where the truth is known.

    >>> from apclip_core.interpret import explain
    >>> ex = explain.explain_video(model, "clip.mp4", bank)        # model: VideoCLIP, bank: PromptBank
    >>> ex.top_prompts(0)                # frame 0's top-5 prompts over ALL classes: [(class, prompt, cosine)]
    >>> ex.groups()                      # consecutive frames sharing the same top-5 set, e.g. [(0, 2), (2, 8)]
    >>> ex.maka_choices()                # MAKA's picks for the predicted class (see MakaChoices)
    >>> ex.attention_peak(0)             # where frame 0's attention peaks, in frame pixels

Figure rendering lives in ``apclip_core.interpret.figure5``; attention hooks and the crop geometry in
``apclip_core.interpret.attention``.

The two checks (``measure``), over a list of benchmark videos, T frames each (TSN centre frames,
the single evaluation centre crop):

* pointing game: a frame is a hit when the peak of its attention map (the centre of the patch with
  the largest weight, mapped back to frame pixels) falls inside the actor's box. The chance level
  is the share of patch centres inside the box (a uniformly random peak), averaged over frames.
  Reported for the last-layer CLS attention and for rollout. A frame whose actor lies entirely
  outside the model's crop still counts (as a miss unless the peak is in the box): the figure is
  over every sampled frame.
* top-1 prompt: over the prompts of every class in the bank, the frame's best-matching prompt is a
  hit when it belongs to the video's true class; chance = share of the bank's prompts that are the
  true class's. With the benchmark's per-class attribute phrases, a looser hit is also reported:
  the top prompt describes one of the true class's attribute VALUES (a prompt of another class
  about the same attribute key with the same phrase, e.g. both classes are "dressed in red"),
  with its own chance level.

``compare_models`` measures several models on the same frames; ``pointing_verdict`` states the
comparison that counts: a random ViT's attention is also drawn to the actor, by an amount that
depends on the seed, so a model is compared with the BEST of several random initialisations.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from apclip_core.interpret import attention as attn_lib
from apclip_core.engine.evaluate import eval_transform_for
from apclip_core.model.maka import maka_similarity

log = logging.getLogger(__name__)

__all__ = ["VideoExplanation", "MakaChoices", "explain_video", "explain_frames", "measure", "Measures",
           "compare_models", "pointing_verdict", "group_frames", "benchmark_model", "random_init_model",
           "benchmark_bank"]

ATTENTION_KINDS = ("last", "rollout")


@dataclass
class MakaChoices:
    """MAKA's choices for one class (eqs. 3-5): which of the class's prompts each frame picked
    (argmax over prompts) and which frame each prompt picked (argmax over frames)."""
    class_index: int
    classname: str
    prompts: list[str]
    cosine: np.ndarray               # [T, Nt_c] frame x prompt cosine for this class
    frame_to_prompt: np.ndarray      # [T] index into prompts
    prompt_to_frame: np.ndarray      # [Nt_c] frame index
    score: float                     # the class's MAKA similarity


@dataclass
class VideoExplanation:
    """Everything Figure 5 shows for one video (numpy, CPU). Frame t is the decoded frame
    ``frame_indices[t]``; the maps are over the model's patch grid of the crop described by
    ``geometry`` (attention.CropGeometry)."""
    video: str
    frames: np.ndarray                 # uint8 [T, H, W, 3], as decoded (before the transform)
    frame_indices: list[int]
    geometry: attn_lib.CropGeometry
    maps: dict[str, np.ndarray]        # "last" / "rollout" -> [T, rows, cols]
    cosine: np.ndarray                 # [T, C, Nt_max] frame-prompt cosine, NaN where padded
    classnames: list[str]
    prompts: list[list[str]]
    attributes: Optional[list[list[str]]]
    class_scores: np.ndarray           # [C] MAKA similarity
    label: Optional[int] = None        # true class, when known
    boxes: Optional[np.ndarray] = None  # [T, 4] actor boxes (x0, y0, x1, y1) in frame pixels, when known
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.class_scores))

    def top_prompts(self, t: int, k: int = 5) -> list[tuple[int, int, float]]:
        """Frame t's k best prompts over all classes: (class index, prompt index, cosine), best first."""
        flat = np.nan_to_num(self.cosine[t], nan=-np.inf).ravel()
        n_max = self.cosine.shape[2]
        order = np.argsort(-flat, kind="stable")[:k]
        return [(int(i // n_max), int(i % n_max), float(flat[i])) for i in order if np.isfinite(flat[i])]

    def prompt_text(self, c: int, j: int) -> str:
        return self.prompts[c][j]

    def groups(self, k: int = 5) -> list[tuple[int, int]]:
        """Runs [start, end) of consecutive frames whose top-k prompt SETS are equal (Figure 5 groups them)."""
        return group_frames([frozenset((c, j) for c, j, _ in self.top_prompts(t, k)) for t in range(self.num_frames)])

    def group_scores(self, start: int, end: int, k: int = 5) -> list[tuple[int, int, float]]:
        """The group's top-k prompts with their cosine averaged over the group's frames, best first."""
        keys = [(c, j) for c, j, _ in self.top_prompts(start, k)]
        scored = [(c, j, float(np.mean(self.cosine[start:end, c, j]))) for c, j in keys]
        return sorted(scored, key=lambda s: -s[2])

    def maka_choices(self, class_index: Optional[int] = None) -> MakaChoices:
        """MAKA's frame<->prompt choices for a class (default: the predicted one)."""
        c = self.predicted if class_index is None else int(class_index)
        n = len(self.prompts[c])
        cos = self.cosine[:, c, :n]
        return MakaChoices(c, self.classnames[c], self.prompts[c], cos, cos.argmax(axis=1), cos.argmax(axis=0),
                           float(self.class_scores[c]))

    def attention_peak(self, t: int, kind: str = "rollout") -> tuple[float, float]:
        """(x, y) in frame pixels of the centre of the patch where frame t's map peaks."""
        return attn_lib.peak_in_frame(self._map(kind)[t], self.geometry)

    def _map(self, kind: str) -> np.ndarray:
        if kind not in self.maps:
            raise ValueError(f"unknown attention map {kind!r}; choose one of {sorted(self.maps)}")
        return self.maps[kind]


def group_frames(keys: Sequence) -> list[tuple[int, int]]:
    """Runs [start, end) of consecutive equal keys: ['a', 'a', 'b', 'a'] -> [(0, 2), (2, 3), (3, 4)]."""
    runs: list[tuple[int, int]] = []
    for t, key in enumerate(keys):
        if runs and keys[runs[-1][0]] == key:
            runs[-1] = (runs[-1][0], t + 1)
        else:
            runs.append((t, t + 1))
    return runs


# ---- computation ------------------------------------------------------------------------------
@torch.no_grad()
def explain_frames(model, clips: torch.Tensor, encoded) -> dict[str, torch.Tensor]:
    """Run the visual tower on clips [B, 1, T, 3, S, S] with attention hooks.

    Returns feats [B, T, D], maps {"last", "rollout"} [B, T, rows, cols], cosine [B, T, C, Nt]
    (-inf where padded) and class_scores [B, C] (MAKA).
    """
    if clips.ndim != 6 or clips.shape[1] != 1:
        raise ValueError(f"expected clips [B, 1, T, 3, S, S] (one view), got {tuple(clips.shape)}")
    B, _, T = clips.shape[:3]
    visual = model.clip.visual
    grid = attn_lib.patch_grid(visual)
    with attn_lib.record_attention(visual, "all") as record:
        feats = model.encode_video(clips)                                     # [B, T, D]
    weights = record.stacked()                                                # [layers, B*T, H, L, L]
    maps = {"last": attn_lib.cls_attention(weights[-1], grid), "rollout": attn_lib.attention_rollout(weights, grid)}
    maps = {k: v.reshape(B, T, *grid) for k, v in maps.items()}
    pf, mask = encoded.feats.to(feats.device), encoded.mask.to(feats.device)
    cosine = torch.einsum("btd,cnd->btcn", feats, pf).masked_fill(~mask, float("-inf"))
    return {"feats": feats, "maps": maps, "cosine": cosine, "class_scores": maka_similarity(feats, pf, mask)}


def _load_clip(video, num_frames: int, backend: str, transform):
    """The view the model classifies: TSN centre frames, the single evaluation centre crop."""
    from apclip_core.data.views import ViewSpec, decode_video

    decoded = decode_video(video, ViewSpec(num_frames, 1, 1, backend), transform)
    return decoded.frames, decoded.indices[0], decoded.clips


def explain_video(model, video: str | Path, bank, *, encoded=None, num_frames: int = 8, label: Optional[int] = None,
                  boxes: Optional[np.ndarray] = None, backend: str = "auto") -> VideoExplanation:
    """Attention maps, per-frame prompt scores and MAKA's choices for one video file.

    Frames: TSN centre frames (``num_frames`` segments), one evaluation centre crop - the view the
    model classifies. ``boxes`` (all of the video's per-frame boxes, [n_frames, 4]) are subsampled
    to the chosen frames. ``encoded``: the bank's EncodedBank, to reuse across videos.
    """
    model.eval()
    transform = eval_transform_for(model, 1)      # the single evaluation centre crop
    frames, idx, clips = _load_clip(video, num_frames, backend, transform)
    clip = clips.unsqueeze(0)                                                 # [1, 1, T, 3, S, S]
    encoded = encoded if encoded is not None else bank.encode(model)
    out = explain_frames(model, clip, encoded)
    cosine = out["cosine"][0].cpu().numpy()
    cosine[~np.isfinite(cosine)] = np.nan
    return VideoExplanation(
        video=str(video), frames=np.asarray(frames), frame_indices=list(idx),
        geometry=attn_lib.crop_geometry(frames.shape[1:3], transform),
        maps={k: v[0].cpu().numpy() for k, v in out["maps"].items()}, cosine=cosine,
        classnames=list(bank.classnames), prompts=[list(p) for p in bank.prompts],
        attributes=[list(a) for a in bank.attributes] if bank.attributes is not None else None,
        class_scores=out["class_scores"][0].cpu().numpy(), label=label,
        boxes=None if boxes is None else np.asarray(boxes)[idx])


# ---- the measured checks ------------------------------------------------------------------------
@dataclass
class Measures:
    """Pointing game and top-1 prompt hit rates over n_frames frames of n_videos videos."""
    n_videos: int
    n_frames: int
    pointing: dict[str, float]          # "last" / "rollout" -> share of frames whose peak is in the box
    pointing_chance: float              # mean share of patch centres inside the box
    frames_actor_in_crop: float         # share of frames whose box overlaps the model's crop at all
    top1_class: float                   # top-1 prompt is one of the true class's prompts
    top1_class_chance: float
    top1_attribute: Optional[float]     # top-1 prompt describes one of the true class's attribute values
    top1_attribute_chance: Optional[float]
    per_split: dict[str, dict] = field(default_factory=dict)  # the same numbers per subset (e.g. base/novel)

    def as_rows(self) -> list[dict]:
        """Long rows (measure, value, chance) for a table."""
        rows = [{"measure": f"pointing game ({k})", "value": v, "chance": self.pointing_chance}
                for k, v in self.pointing.items()]
        rows.append({"measure": "top-1 prompt of true class", "value": self.top1_class, "chance": self.top1_class_chance})
        if self.top1_attribute is not None:
            rows.append({"measure": "top-1 prompt of a true attribute value", "value": self.top1_attribute,
                         "chance": self.top1_attribute_chance})
        return rows


def _attribute_hits(bank, class_attributes: Sequence[dict]) -> np.ndarray:
    """[C_true, C, Nt_max] bool: prompt (c, j) states the attribute value that class c_true has."""
    C, n_max = len(bank.classnames), max(bank.counts)
    hits = np.zeros((C, C, n_max), bool)
    for true in range(C):
        for c in range(C):
            for j, key in enumerate(bank.attributes[c]):
                value = class_attributes[c].get(key)
                hits[true, c, j] = value is not None and value == class_attributes[true].get(key)
    return hits


@torch.no_grad()
def measure(model, records: Sequence, root: str | Path, bank, boxes: dict[str, np.ndarray], *,
            class_attributes: Optional[Sequence[dict]] = None, num_frames: int = 8, batch_size: int = 16,
            groups: Optional[dict[str, Sequence[int]]] = None, backend: str = "auto") -> Measures:
    """The pointing game and the top-1 prompt hit rates of ``model`` on ``records`` (VideoRecord:
    path relative to ``root``, label = index into ``bank.classnames``).

    boxes: benchmark.load_boxes(root). class_attributes: per bank class, {graph key: phrase}
    (benchmark classes.json), for the attribute-value hit rate. groups: name -> class indices, to
    also report per subset (e.g. base / novel classes).
    """
    model.eval()
    root = Path(root)
    transform = eval_transform_for(model, 1)      # the single evaluation centre crop
    encoded = bank.encode(model)
    grid = attn_lib.patch_grid(model.clip.visual)
    counts = np.asarray(bank.counts)
    attr_hits = None
    if class_attributes is not None:
        if bank.attributes is None:
            raise ValueError("class_attributes given but the bank has no attribute keys "
                             "(use an action_conditioned bank)")
        attr_hits = _attribute_hits(bank, class_attributes)
    rows = []  # per frame: label, hit_last, hit_rollout, chance, in_crop, top1_class_hit, attr hit, attr chance
    geometry = None
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        clips, chosen = [], []
        for rec in chunk:
            frames, idx, clip = _load_clip(root / rec.path, num_frames, backend, transform)
            if geometry is None:
                geometry = attn_lib.crop_geometry(frames.shape[1:3], transform)
            clips.append(clip)
            chosen.append(idx)
        out = explain_frames(model, torch.stack(clips), encoded)
        cos = out["cosine"].cpu().numpy()                                     # [B, T, C, Nt]
        B, T, C, n_max = cos.shape
        top = cos.reshape(B, T, -1).argmax(-1)
        top_c, top_j = top // n_max, top % n_max
        for b, rec in enumerate(chunk):
            box_all = boxes[rec.path]
            crop_x, crop_y = geometry.extent()[:2], geometry.extent()[2:][::-1]
            for t, fi in enumerate(chosen[b]):
                box = box_all[min(fi, len(box_all) - 1)]
                hit = {k: attn_lib.box_contains(box, *attn_lib.peak_in_frame(out["maps"][k][b, t], geometry))
                       for k in ATTENTION_KINDS}
                in_crop = box[0] < crop_x[1] and box[2] > crop_x[0] and box[1] < crop_y[1] and box[3] > crop_y[0]
                row = [rec.label, hit["last"], hit["rollout"], attn_lib.patch_box_fraction(box, geometry, grid),
                       in_crop, top_c[b, t] == rec.label, counts[rec.label] / counts.sum()]
                if attr_hits is not None:
                    row += [attr_hits[rec.label, top_c[b, t], top_j[b, t]],
                            attr_hits[rec.label].sum() / counts.sum()]
                rows.append(row)
    if not rows:
        raise ValueError("no videos to measure")
    table = np.asarray(rows, dtype=float)

    def summarise(sel: np.ndarray) -> dict:
        t = table[sel]
        with_attr = attr_hits is not None
        return {"n_frames": int(len(t)),
                "pointing": {"last": float(t[:, 1].mean()), "rollout": float(t[:, 2].mean())},
                "pointing_chance": float(t[:, 3].mean()), "frames_actor_in_crop": float(t[:, 4].mean()),
                "top1_class": float(t[:, 5].mean()), "top1_class_chance": float(t[:, 6].mean()),
                "top1_attribute": float(t[:, 7].mean()) if with_attr else None,
                "top1_attribute_chance": float(t[:, 8].mean()) if with_attr else None}

    every = summarise(np.ones(len(table), bool))
    every.pop("n_frames")
    per_split = {name: summarise(np.isin(table[:, 0], list(classes))) for name, classes in (groups or {}).items()
                 if np.isin(table[:, 0], list(classes)).any()}
    return Measures(n_videos=len(records), n_frames=len(table), per_split=per_split, **every)


def compare_models(models: dict, records: Sequence, root: str | Path, bank, boxes: dict[str, np.ndarray],
                   **kwargs):
    """``measure`` for every named model on the same frames: (table, {name: Measures}); the table has one
    row per measure, one column per model (in ``models`` order) and a "chance" column."""
    import pandas as pd

    measures = {name: measure(m, records, root, bank, boxes, **kwargs) for name, m in models.items()}
    rows = [{"model": name, **row} for name, ms in measures.items() for row in ms.as_rows()]
    long = pd.DataFrame(rows)
    table = long.pivot(index="measure", columns="model", values="value")[list(models)]
    return table.join(long.groupby("measure")["chance"].first()), measures


def pointing_verdict(measures: dict, subject: str, baselines: Sequence[str], kind: str = "rollout") -> str:
    """One line: the subject's pointing-game score against the BEST of the baselines (e.g. several
    random initialisations: the weakest comparison would flatter the subject) and chance."""
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"unknown attention map {kind!r}; choose one of {list(ATTENTION_KINDS)}")
    score = measures[subject].pointing[kind]
    best = max(baselines, key=lambda name: measures[name].pointing[kind])
    margin = score - measures[best].pointing[kind]
    return (f"pointing game ({kind}): {subject} {score:.3f} vs the best of {len(baselines)} baselines "
            f"({best}) {measures[best].pointing[kind]:.3f}, margin {margin:+.3f}; "
            f"chance {measures[subject].pointing_chance:.3f}")


# ---- the models and bank the notebook and tests compare -----------------------------------------
def benchmark_bank(root: str | Path, prompt_file: str | Path | None = None):
    """(PromptBank over all benchmark classes, their attribute dicts, base/novel class indices)."""
    from apclip_core.data import annotations
    from apclip_core.embedded import benchmark
    from apclip_core import paths
    from apclip_core.prompts.bank import PromptBank

    root = Path(root)
    names = annotations.read_labels(root / "labels.csv")
    classes = {c["name"]: c for c in benchmark.load_classes(root)}
    prompt_file = prompt_file or paths.prompts_dir() / "apclip_bench.json"
    bank = PromptBank.from_prompt_file(prompt_file, names, strategy="action_conditioned")
    attrs = [classes[n]["attributes"] for n in names]
    groups = {split: [i for i, n in enumerate(names) if classes[n]["split"] == split] for split in ("base", "novel")}
    return bank, attrs, groups


def random_init_model(like, seed: int = 0):
    """The same architecture as ``like`` (a VideoCLIP) with open_clip's random initialisation."""
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(seed)
    cfg = like.config
    return create_model(cfg["model_name"], None, temporal_module=cfg.get("temporal_module", False),
                        temporal_window=cfg.get("temporal_window", 1), quick_gelu=cfg["quick_gelu"],
                        precision=cfg.get("precision", "fp32"), expand_temporal_view=cfg.get("expand_temporal_view", 0),
                        open_clip_config=cfg.get("open_clip_config")).eval()
