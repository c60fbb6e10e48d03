"""The paper's evaluation protocols as lists: which videos train, which evaluate, with class names.

One public function per protocol, each returning ``Protocol(train=[Split...], eval=[Split...])``:

* ``zero_shot(dataset)``: HMDB-51 val1-3 (51 classes), UCF-101 val1-3 (101), Kinetics-600's three
  160-class splits (classes absent from Kinetics-400). Report mean +- std over the three eval splits.
  Training for zero-shot is Kinetics-400 (all 400 classes): pass ``train_root`` to get that split.
* ``base_to_novel(dataset, seed)``: K-400, HMDB-51, UCF-101, SSv2. Train on one of the three 16-shot
  base lists (seed 1..3), evaluate on base_val (base classes) and novel_val (novel classes); labels
  are indexed within base and within novel. Report the mean over the three seeds, and the harmonic mean.
* ``few_shot(dataset, k)``: K in 2, 4, 8, 16 (``train1_few_shot_K``), evaluated on split 1's
  validation list (HMDB-51 / UCF-101 ``val1``; SSv2 ``validation``), all classes.
* ``kinetics400()``: fully supervised Kinetics-400, train / val (19,877 videos).
* ``bench_*(root)``: the same protocols on the embedded benchmark (lists under ``<root>/splits/``).

Where things live (every function takes the two roots explicitly; these are the defaults):
  lists:  ``$APCLIP_SPLITS`` or ``<data dir>/vifi_clip_splits`` (``python -m apclip_core data
          download-splits`` puts them there), laid out as in the ViFi-CLIP repository
          (``labels/*.csv``, ``datasets_splits/...``).
  videos: ``<data dir>/{hmdb51,ucf101,kinetics400,kinetics600,ssv2}``; list paths are relative to it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from apclip_core import paths
from apclip_core.errors import BadValue
from apclip_core.data.annotations import VideoRecord, read_labels, read_video_list

__all__ = [
    "Split", "Protocol", "zero_shot", "base_to_novel", "few_shot", "kinetics400",
    "bench_base_to_novel", "bench_few_shot", "bench_fully_supervised", "bench_zero_shot",
    "get_protocol", "PROTOCOL_NAMES", "default_splits_root", "default_video_root", "DATASETS",
    "list_files_for", "FEW_SHOT_K", "SEEDS", "register_protocol", "protocol_names", "load_protocol",
    "register_dataset",
]

FEW_SHOT_K = (2, 4, 8, 16)
SEEDS = (1, 2, 3)


ROLES = ("base", "novel", "all")


@dataclass
class Split:
    """One list of videos: ``records`` (paths relative to ``root``) labelled 0..len(classnames)-1.

    ``dataset`` (hmdb51, k400, bench, ...) and ``role`` (base / novel classes, or all of them) are
    stated once here; by default they are read from the name, ``<dataset>_<list>``, as every
    protocol below names its splits (``hmdb51_novel_val`` is dataset hmdb51, role novel).
    """

    name: str
    records: list[VideoRecord]
    classnames: list[str]
    root: Path
    dataset: str = ""
    role: str = ""
    list_file: Optional[Path] = None   # the list it was read from (said in messages about its videos)

    def __post_init__(self):
        self.dataset = self.dataset or self.name.split("_", 1)[0]
        if not self.role:
            words = self.name.lower().split("_")
            self.role = "base" if "base" in words else "novel" if "novel" in words else "all"
        if self.role not in ROLES:
            raise BadValue(f"split {self.name!r}: role {self.role!r} is not one of {ROLES}")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Split({self.name!r}, {len(self.records)} videos, {self.num_classes} classes, root={str(self.root)!r})"


@dataclass
class Protocol:
    """Training splits (may be empty for evaluation-only use) and evaluation splits."""

    train: list[Split]
    eval: list[Split]
    name: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Class and video counts of every split (what evaluation results must record)."""
        return {"protocol": self.name,
                "train": {s.name: {"videos": len(s), "classes": s.num_classes} for s in self.train},
                "eval": {s.name: {"videos": len(s), "classes": s.num_classes} for s in self.eval}}


# Files of each dataset in the ViFi-CLIP layout (relative to the splits root).
DATASETS = {
    "hmdb51": {"video_dir": "hmdb51", "labels": "labels/hmdb_51_labels.csv",
               "base": "labels/hmdb_51_base_labels.csv", "novel": "labels/hmdb_51_novel_labels.csv",
               "lists": "datasets_splits/hmdb_splits", "b2n": "datasets_splits/base2novel_splits/hmdb_splits",
               "zero_shot_eval": ["val1.txt", "val2.txt", "val3.txt"], "few_shot_eval": "val1.txt"},
    "ucf101": {"video_dir": "ucf101", "labels": "labels/ucf_101_labels.csv",
               "base": "labels/ucf_101_base_labels.csv", "novel": "labels/ucf_101_novel_labels.csv",
               "lists": "datasets_splits/ucf_splits", "b2n": "datasets_splits/base2novel_splits/ucf_splits",
               "zero_shot_eval": ["val1.txt", "val2.txt", "val3.txt"], "few_shot_eval": "val1.txt"},
    "k400": {"video_dir": "kinetics400", "labels": "labels/kinetics_400_labels.csv",
             "base": "labels/kinetics_400_base_labels.csv", "novel": "labels/kinetics_400_novel_labels.csv",
             "lists": "datasets_splits/k400_splits", "b2n": "datasets_splits/base2novel_splits/k400_splits"},
    "k600": {"video_dir": "kinetics600", "lists": "datasets_splits/k600_splits",
             "zero_shot_eval": ["ZS_split1_K600_eval.txt", "ZS_split2_K600_eval.txt", "ZS_split3_K600_eval.txt"],
             "zero_shot_labels": ["labels/ZS_split1_K600.csv", "labels/ZS_split2_K600.csv",
                                  "labels/ZS_split3_K600.csv"]},
    "ssv2": {"video_dir": "ssv2", "labels": "labels/ssv2_labels.csv",
             "base": "labels/ssv2_174_base_labels.csv", "novel": "labels/ssv2_174_novel_labels.csv",
             "lists": "datasets_splits/ssv2_splits", "b2n": "datasets_splits/base2novel_splits/ssv2_splits",
             "few_shot_eval": "validation.txt"},
}
_ALIASES = {"hmdb": "hmdb51", "hmdb-51": "hmdb51", "ucf": "ucf101", "ucf-101": "ucf101",
            "kinetics400": "k400", "kinetics-400": "k400", "kinetics600": "k600", "kinetics-600": "k600",
            "sthsthv2": "ssv2", "something-something-v2": "ssv2"}


def register_dataset(key: str, spec: dict, *, aliases: tuple[str, ...] = ()) -> None:
    """Add a dataset in the ViFi-CLIP layout: ``spec`` names its video folder and list/label files,
    as the entries of DATASETS do; the protocols, `data check` and the preflight then know it."""
    if "video_dir" not in spec:
        raise BadValue(f"dataset {key!r}: the spec needs at least 'video_dir'; see DATASETS for the fields")
    DATASETS[key] = dict(spec)
    _ALIASES.update({a.lower(): key for a in aliases})


_PROTOCOLS: dict = {}


def register_protocol(fn=None, *, name: str | None = None):
    """Make a protocol function (-> Protocol) available by name to configs, `evaluate` and the
    preflight. Use as a decorator, or call register_protocol(fn, name=...)."""
    def add(f):
        _PROTOCOLS[name or f.__name__] = f
        return f
    return add(fn) if fn is not None else add


def protocol_names() -> tuple[str, ...]:
    return tuple(_PROTOCOLS)


def protocol_arguments(name: str) -> tuple[str, ...]:
    """The arguments protocol `name` takes (e.g. ('root', 'seed') for bench_base_to_novel)."""
    import inspect

    if name not in _PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; valid: {', '.join(sorted(_PROTOCOLS))}")
    return tuple(inspect.signature(_PROTOCOLS[name]).parameters)


def load_protocol(name: str, args: dict | None = None) -> "Protocol":
    """The protocol registered as `name`, called with `args`.

    Embedded-benchmark protocols (bench_*) get the rendered benchmark's root unless given one
    (rendering is idempotent and cached). Relative paths in *_root arguments are taken under
    paths.data_dir(), so configs can say `train_root: kinetics400`.
    """
    if name not in _PROTOCOLS:
        raise BadValue(f"unknown protocol {name!r}; valid: {', '.join(sorted(_PROTOCOLS))}")
    args = dict(args or {})
    import inspect

    from apclip_core.user_files import refuse_unknown_keys

    refuse_unknown_keys(args, inspect.signature(_PROTOCOLS[name]).parameters, f"arguments of protocol {name!r}")
    for key, value in args.items():
        if key.endswith("root") and isinstance(value, str) and not Path(value).is_absolute():
            args[key] = paths.data_dir() / value
    if name.startswith("bench_") and args.get("root") is None:
        from apclip_core.embedded.benchmark import render_benchmark

        args["root"] = render_benchmark().root
    return _PROTOCOLS[name](**args)


def canonical_dataset(name: str) -> str:
    """The registry's key for a dataset name or alias ('kinetics400' -> 'k400', 'HMDB' -> 'hmdb51')."""
    return _ALIASES.get(name.lower(), name.lower())


def _dataset(name: str, allowed: tuple[str, ...]) -> str:
    key = canonical_dataset(name)
    if key not in allowed:
        raise BadValue(f"dataset {name!r} has no such protocol; valid choices: {', '.join(allowed)}")
    return key


def default_splits_root() -> Path:
    """``$APCLIP_SPLITS`` or ``<data dir>/vifi_clip_splits``."""
    env = os.environ.get("APCLIP_SPLITS")
    return Path(env).expanduser() if env else paths.data_dir() / "vifi_clip_splits"


def default_video_root(dataset: str) -> Path:
    key = _ALIASES.get(dataset.lower(), dataset.lower())
    if key not in DATASETS:
        raise BadValue(f"unknown dataset {dataset!r}; valid choices: {', '.join(DATASETS)}")
    return paths.data_dir() / DATASETS[key]["video_dir"]


def _split(name: str, list_path: Path, labels_path: Path, root: Path) -> Split:
    for p, what in ((list_path, "video list"), (labels_path, "labels CSV")):
        if not p.is_file():
            raise FileNotFoundError(
                f"{what} {p} not found. Get the protocol lists with `python -m apclip_core data download-splits` "
                f"(or point APCLIP_SPLITS / splits_root at a copy).")
    classnames = read_labels(labels_path)
    return Split(name, read_video_list(list_path, num_classes=len(classnames)), classnames, Path(root),
                 list_file=Path(list_path))


def _roots(dataset: str, splits_root, video_root) -> tuple[Path, Path]:
    s = Path(splits_root) if splits_root is not None else default_splits_root()
    v = Path(video_root) if video_root is not None else default_video_root(dataset)
    return s, v


def _k400_train(splits_root: Path, train_root, which: str = "full") -> Split:
    d = DATASETS["k400"]
    if which not in ("full", "tiny"):
        raise BadValue(f"Kinetics-400 train list {which!r} unknown; valid choices: full, tiny")
    name = "train.txt" if which == "full" else "train_tiny.txt"
    path = splits_root / d["lists"] / name
    if which == "full" and not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the full Kinetics-400 train list is not in the public ViFi-CLIP snapshot. Build it "
            f"from the Kinetics annotation CSV: `python -m apclip_core data build-kinetics-lists --csv train.csv "
            f"--splits-root {splits_root}` (or use train_list='tiny' for the 60k-video subset).")
    root = Path(train_root) if train_root is not None else default_video_root("k400")
    return _split(f"k400_{'train' if which == 'full' else 'train_tiny'}", path, splits_root / d["labels"], root)


@register_protocol
def zero_shot(dataset: str, *, splits_root=None, video_root=None, train_root=None,
              train_list: str = "full") -> Protocol:
    """Zero-shot evaluation on HMDB-51 / UCF-101 (val1-3) or Kinetics-600 (three 160-class splits).

    ``train_root`` (the Kinetics-400 video root) adds the Kinetics-400 training split (``train_list``
    "full" = the list built by ``data build-kinetics-lists``, or "tiny"); without it train is empty.
    """
    key = _dataset(dataset, ("hmdb51", "ucf101", "k600"))
    s, v = _roots(key, splits_root, video_root)
    d = DATASETS[key]
    if key == "k600":
        evals = [_split(f"k600_split{i}", s / d["lists"] / f, s / lab, v)
                 for i, (f, lab) in enumerate(zip(d["zero_shot_eval"], d["zero_shot_labels"]), start=1)]
    else:
        evals = [_split(f"{key}_{f[:-4]}", s / d["lists"] / f, s / d["labels"], v) for f in d["zero_shot_eval"]]
    train = [_k400_train(s, train_root, train_list)] if train_root is not None else []
    return Protocol(train, evals, name=f"zero_shot/{key}",
                    notes="train on Kinetics-400 (all classes); report mean +- std over the 3 eval splits")


@register_protocol
def base_to_novel(dataset: str, seed: int = 1, *, splits_root=None, video_root=None,
                  full_base_train: bool = False) -> Protocol:
    """Base-to-novel: 16-shot base training list ``fs_base_s{seed}``; eval base_val and novel_val.

    ``full_base_train=True`` trains on every base-class training video (``base_train.txt``; for
    Kinetics-400 built by ``data build-kinetics-lists``) instead of the 16-shot sample.
    """
    key = _dataset(dataset, ("k400", "hmdb51", "ucf101", "ssv2"))
    if seed not in SEEDS:
        raise BadValue(f"base-to-novel seed {seed!r} unknown; valid choices: {SEEDS}")
    s, v = _roots(key, splits_root, video_root)
    d = DATASETS[key]
    b2n = s / d["b2n"]
    train_file = "base_train.txt" if full_base_train else f"fs_base_s{seed}_train.txt"
    if full_base_train and key == "k400" and not (b2n / train_file).is_file():
        raise FileNotFoundError(
            f"{b2n / train_file} not found: it is not in the public ViFi-CLIP snapshot. Build it with "
            f"`python -m apclip_core data build-kinetics-lists --csv train.csv --splits-root {s}`.")
    train = _split(f"{key}_{train_file[:-4]}", b2n / train_file, s / d["base"], v)
    evals = [_split(f"{key}_base_val", b2n / "base_val.txt", s / d["base"], v),
             _split(f"{key}_novel_val", b2n / "novel_val.txt", s / d["novel"], v)]
    return Protocol([train], evals, name=f"base_to_novel/{key}/s{seed}" + ("/full" if full_base_train else ""),
                    notes="labels indexed within base and within novel; report mean over seeds 1-3 and HM")


@register_protocol
def few_shot(dataset: str, k: int, *, splits_root=None, video_root=None) -> Protocol:
    """Few-shot: ``train1_few_shot_{k}`` (k in 2, 4, 8, 16), all classes; eval on split 1's val list."""
    key = _dataset(dataset, ("hmdb51", "ucf101", "ssv2"))
    if k not in FEW_SHOT_K:
        raise BadValue(f"few-shot K={k!r} unknown; valid choices: {FEW_SHOT_K}")
    s, v = _roots(key, splits_root, video_root)
    d = DATASETS[key]
    train = _split(f"{key}_train1_few_shot_{k}", s / d["lists"] / f"train1_few_shot_{k}.txt", s / d["labels"], v)
    ev = _split(f"{key}_{d['few_shot_eval'][:-4]}", s / d["lists"] / d["few_shot_eval"], s / d["labels"], v)
    return Protocol([train], [ev], name=f"few_shot/{key}/k{k}")


@register_protocol
def kinetics400(*, splits_root=None, video_root=None, train_list: str = "full") -> Protocol:
    """Fully supervised Kinetics-400: train (full list built from the CSV, or "tiny") and val."""
    s, v = _roots("k400", splits_root, video_root)
    d = DATASETS["k400"]
    train = _k400_train(s, v, train_list)
    ev = _split("k400_val", s / d["lists"] / "val.txt", s / d["labels"], v)
    return Protocol([train], [ev], name=f"kinetics400/{train_list}",
                    notes="fully supervised: 16 frames, 3 temporal x 4 spatial views at test")


# ---- embedded benchmark (apclip_core.embedded.benchmark lays these files out) --------------------------------

def _bench_root(root) -> Path:
    return Path(root) if root is not None else paths.data_dir() / "apclip_bench"


@register_protocol
def bench_fully_supervised(root=None) -> Protocol:
    r = _bench_root(root)
    return Protocol([_split("bench_train", r / "splits/train.txt", r / "labels.csv", r)],
                    [_split("bench_val", r / "splits/val.txt", r / "labels.csv", r)], name="bench/fully_supervised")


@register_protocol
def bench_few_shot(root=None, k: int = 16, seed: int = 1) -> Protocol:
    """K shots per class from training split `seed` (train{seed}_few_shot_{k}: the benchmark draws one per seed,
    where the public lists have split 1 only); all classes; eval on val."""
    if k not in FEW_SHOT_K:
        raise BadValue(f"few-shot K={k!r} unknown; valid choices: {FEW_SHOT_K}")
    if seed not in SEEDS:
        raise BadValue(f"few-shot seed {seed!r} unknown; valid choices: {SEEDS}")
    r = _bench_root(root)
    name = f"train{seed}_few_shot_{k}"
    return Protocol([_split(f"bench_{name}", r / f"splits/{name}.txt", r / "labels.csv", r)],
                    [_split("bench_val", r / "splits/val.txt", r / "labels.csv", r)],
                    name=f"bench/few_shot/k{k}" + (f"/s{seed}" if seed != 1 else ""))


@register_protocol
def bench_base_to_novel(root=None, seed: int = 1) -> Protocol:
    if seed not in SEEDS:
        raise BadValue(f"base-to-novel seed {seed!r} unknown; valid choices: {SEEDS}")
    r = _bench_root(root)
    b2n = r / "splits/base2novel"
    return Protocol([_split(f"bench_fs_base_s{seed}_train", b2n / f"fs_base_s{seed}_train.txt", r / "base_labels.csv", r)],
                    [_split("bench_base_val", b2n / "base_val.txt", r / "base_labels.csv", r),
                     _split("bench_novel_val", b2n / "novel_val.txt", r / "novel_labels.csv", r)],
                    name=f"bench/base_to_novel/s{seed}")


@register_protocol
def bench_zero_shot(root=None) -> Protocol:
    """Train on every training video of the base classes (base-indexed); evaluate on the novel classes."""
    r = _bench_root(root)
    full = _split("bench_train", r / "splits/train.txt", r / "labels.csv", r)
    base = read_labels(r / "base_labels.csv")
    to_base = {full.classnames.index(name): i for i, name in enumerate(base)}
    missing = [n for n in base if n not in full.classnames]
    if missing:
        raise BadValue(f"{r / 'base_labels.csv'} names classes absent from labels.csv: {missing}")
    records = [VideoRecord(rec.path, to_base[rec.label]) for rec in full.records if rec.label in to_base]
    train = Split("bench_base_train", records, base, r, list_file=full.list_file)
    ev = _split("bench_novel_val", r / "splits/base2novel/novel_val.txt", r / "novel_labels.csv", r)
    return Protocol([train], [ev], name="bench/zero_shot")


# ---- by name (configs and the CLI) ----------------------------------------------------------------

PROTOCOL_NAMES = (
    [f"zero_shot/{d}" for d in ("hmdb51", "ucf101", "k600")]
    + [f"base_to_novel/{d}/s{s}" for d in ("k400", "hmdb51", "ucf101", "ssv2") for s in SEEDS]
    + [f"few_shot/{d}/k{k}" for d in ("hmdb51", "ucf101", "ssv2") for k in FEW_SHOT_K]
    + ["kinetics400/full", "kinetics400/tiny"]
    + [f"bench/base_to_novel/s{s}" for s in SEEDS] + [f"bench/few_shot/k{k}" for k in FEW_SHOT_K]
    + ["bench/fully_supervised", "bench/zero_shot"]
)


def get_protocol(name: str, *, splits_root=None, video_root=None, bench_root=None, train_root=None) -> Protocol:
    """Build a protocol from its name (one of ``PROTOCOL_NAMES``, e.g. ``base_to_novel/hmdb51/s2``)."""
    parts = name.strip("/").split("/")
    try:
        if parts[0] == "zero_shot" and len(parts) == 2:
            return zero_shot(parts[1], splits_root=splits_root, video_root=video_root, train_root=train_root)
        if parts[0] == "base_to_novel" and len(parts) == 3 and parts[2][0] == "s":
            return base_to_novel(parts[1], int(parts[2][1:]), splits_root=splits_root, video_root=video_root)
        if parts[0] == "few_shot" and len(parts) == 3 and parts[2][0] == "k":
            return few_shot(parts[1], int(parts[2][1:]), splits_root=splits_root, video_root=video_root)
        if parts[0] == "kinetics400" and len(parts) <= 2:
            return kinetics400(splits_root=splits_root, video_root=video_root,
                               train_list=parts[1] if len(parts) == 2 else "full")
        if parts[0] == "bench":
            rest = parts[1:]
            if rest == ["fully_supervised"]:
                return bench_fully_supervised(bench_root)
            if rest == ["zero_shot"]:
                return bench_zero_shot(bench_root)
            if len(rest) == 2 and rest[0] == "base_to_novel" and rest[1][0] == "s":
                return bench_base_to_novel(bench_root, int(rest[1][1:]))
            if len(rest) == 2 and rest[0] == "few_shot" and rest[1][0] == "k":
                return bench_few_shot(bench_root, int(rest[1][1:]))
    except (ValueError, IndexError) as exc:
        if "valid choices" in str(exc):
            raise
    raise BadValue(f"unknown protocol {name!r}; valid names: {', '.join(PROTOCOL_NAMES)}")


def list_files_for(dataset: str) -> list[str]:
    """Every list file (relative to the splits root) whose videos live under ``dataset``'s video root."""
    key = _ALIASES.get(dataset.lower(), dataset.lower())
    if key not in DATASETS:
        raise BadValue(f"unknown dataset {dataset!r}; valid choices: {', '.join(DATASETS)}")
    d = DATASETS[key]
    files: list[str] = []
    if key == "k600":
        return [f"{d['lists']}/{f}" for f in d["zero_shot_eval"]]
    if key in ("hmdb51", "ucf101"):
        files += [f"{d['lists']}/{f}" for f in d["zero_shot_eval"]]
    if key in ("hmdb51", "ucf101", "ssv2"):
        files += [f"{d['lists']}/train1_few_shot_{k}.txt" for k in FEW_SHOT_K]
    if key == "ssv2":
        files.append(f"{d['lists']}/validation.txt")
    if key == "k400":
        files += [f"{d['lists']}/train.txt", f"{d['lists']}/train_tiny.txt", f"{d['lists']}/val.txt"]
    files += [f"{d['b2n']}/fs_base_s{s}_train.txt" for s in SEEDS]
    files += [f"{d['b2n']}/{f}" for f in ("base_train.txt", "base_val.txt", "novel_val.txt")]
    return files


def labels_file_for(dataset: str, list_file: str) -> str:
    """Which labels CSV indexes ``list_file`` (relative paths as in list_files_for)."""
    key = _ALIASES.get(dataset.lower(), dataset.lower())
    d = DATASETS[key]
    name = Path(list_file).name
    if key == "k600":
        return d["zero_shot_labels"][d["zero_shot_eval"].index(name)]
    if "base2novel" in list_file:
        return d["novel"] if name == "novel_val.txt" else d["base"]
    return d["labels"]
