"""The run config: every field that defines a training run, its presets, and where its run lives.

A `TrainConfig` is a plain dataclass, logged at the start of a run and saved as JSON with every
checkpoint. Presets are YAML files in `apclip_core/configs/`; each states only what differs from
the dataclass defaults (which are the ViFi-CLIP recipe) or from the preset it names in `base:`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from apclip_core import paths
from apclip_core.data.protocols import load_protocol
from apclip_core.data.views import ViewSpec
from apclip_core.model.similarity import similarity_names
from apclip_core.prompts.strategies import needs_prompt_file, strategy_names

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
MISSING_VIDEOS = ("stop", "skip")


@dataclass
class TrainConfig:
    """Everything that defines a run. Saved as JSON with every checkpoint; presets in configs/*.yaml."""
    name: str = "bench_base2novel"           # run name: the run folder is runs_dir()/name unless output_dir
    # model
    model_name: str = "apclip-tiny"          # any open_clip model name; the paper: ViT-B-16
    pretrained: Optional[str] = "tiny"       # "openai" | a local state-dict file | "tiny" (pretrained tiny CLIP) | None
    quick_gelu: Optional[bool] = None        # activation: None decides from open_clip's registry; a local
                                             # weights file needs it stated (True for OpenAI's weights)
    temporal_module: bool = False            # Table 5's "+TM" (neighbour-frame attention)
    # data
    protocol: str = "bench_base_to_novel"    # a function of apclip_core.data.protocols (train + eval splits)
    protocol_args: dict = field(default_factory=dict)  # its arguments; relative *_root paths are under data_dir()
    extra_eval: list = field(default_factory=list)     # more eval splits: [{protocol: name, args: {...}}]
    frames: int = 8                          # frames per clip (TSN segments); the paper: 8, fully supervised 16
    temporal_views: int = 2                  # evaluation views: the paper 2 x 2, fully supervised 3 x 4
    spatial_crops: int = 2
    flip: bool = True                        # horizontal flip augmentation (off for the benchmark: mirrored motion)
    video_backend: str = "auto"              # auto (the faster decoder per container) | decord | pyav
    short_videos: str = "fail"               # a file whose frames stop decoding early: fail (counted as failed;
                                             # replaced in training) | pad (its decodable start; counted as padded)
    missing_videos: str = "stop"             # a listed video not on disk: stop (preflight stops the run; inside a run
                                             # it fails like a broken file) | skip (left out before the model sees
                                             # it, as are empty and non-video files; counted per split:
                                             # `make reproduce-tableN PARTIAL=1`)
    max_videos_per_split: int = 0            # >0: an evenly spaced subset of every training and evaluation list
                                             # (a partial reproduction; recorded, and the paper tables say so)
    num_workers: int = 2
    # prompts and similarity
    prompt_strategy: str = "single"          # single | set | action_conditioned | customized | llm_direct
    prompt_file: Optional[str] = None        # prompt JSON for the file strategies (training classes)
    eval_prompt_files: dict = field(default_factory=dict)  # {dataset of an eval split (hmdb51, k600): prompt JSON}
    drop_attribute_groups: list = field(default_factory=list)  # graph groups left out of the prompts (Table 5: [body])
    similarity: str = "mean"                 # maka | mean
    prompts_per_class_per_step: int = 8      # k: prompts per class sampled at each step (0 = all)
    # optimisation (ViFi-CLIP)
    epochs: int = 11
    lr: float = 2e-6
    min_lr: Optional[float] = None           # None -> lr / 100
    warmup_epochs: float = 5.0
    weight_decay: float = 0.001
    betas: tuple = (0.9, 0.98)
    eps: float = 1e-8
    effective_batch_size: int = 64           # samples per optimizer step over all processes
    batch_size: int = 4                      # samples per process per forward (per GPU)
    eval_batch_size: int = 8
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.8                 # 0 disables mixup
    cutmix_alpha: float = 1.0                # 0 disables cutmix
    mixup_switch_prob: float = 0.5           # probability of cutmix when both are on
    grad_clip_norm: float = 0.0              # 0 = no clipping (ViFi-CLIP does not clip)
    precision: str = "auto"                  # auto (bf16 autocast on GPU, fp32 on CPU) | bf16 | fp16 | fp32
    seed: int = 0
    # run control
    max_steps_per_epoch: int = 0             # cap on micro-batches per epoch (0 = whole epoch); smoke runs
    eval_every_epochs: int = 1               # 0: evaluate only after the last epoch
    eval_max_videos: int = 0                 # >0: evaluate an evenly spaced subset per split (recorded; tests)
    save_every_steps: int = 0                # extra step checkpoints every N optimizer steps (0 = per epoch only)
    save_every_minutes: float = 0.0          # and every N minutes of training (0 = off): preemptible clusters
    output_dir: Optional[str] = None
    device: str = "auto"                     # auto | cpu | cuda
    allow_cpu: bool = False                  # train a big model on CPU anyway

    def __post_init__(self):
        for f in dataclasses.fields(self):  # YAML 1.1 reads "1e-4" as a string
            value = getattr(self, f.name)
            if "float" in str(f.type) and isinstance(value, str):
                try:
                    setattr(self, f.name, float(value))
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, got {value!r}") from None
        self.betas = tuple(float(b) for b in self.betas)
        self.protocol_args = dict(self.protocol_args or {})
        self.extra_eval = [dict(e) for e in (self.extra_eval or [])]
        self.eval_prompt_files = dict(self.eval_prompt_files or {})
        self.drop_attribute_groups = list(self.drop_attribute_groups or [])
        choices = {"prompt_strategy": strategy_names(), "similarity": similarity_names(), "precision": PRECISIONS,
                   "device": ("auto", "cpu", "cuda"), "missing_videos": MISSING_VIDEOS}
        for key, valid in choices.items():
            value = getattr(self, key)
            if value not in valid and not (key == "device" and str(value).startswith("cuda:")):
                raise ValueError(f"{key}={value!r} is not valid; choose one of: {', '.join(valid)}")
        if needs_prompt_file(self.prompt_strategy) and not self.prompt_file:
            raise ValueError(f"prompt_strategy={self.prompt_strategy!r} needs prompt_file (a prompts/*.json)")
        for key in ("epochs", "frames", "temporal_views", "spatial_crops", "batch_size", "effective_batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.max_videos_per_split < 0:
            raise ValueError(f"max_videos_per_split must be >= 0 (0: every video), got {self.max_videos_per_split}")

    @property
    def lr_min(self) -> float:
        return self.lr / 100 if self.min_lr is None else self.min_lr

    def view(self, *, train: bool = False) -> ViewSpec:
        """How videos are seen: one clip in training, the evaluation views otherwise."""
        if train:
            return ViewSpec(self.frames, 1, 1, self.video_backend, self.short_videos)
        return ViewSpec(self.frames, self.temporal_views, self.spatial_crops, self.video_backend, self.short_videos)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _preset_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no config {name_or_path!r}: not a file and not a preset; "
                                f"presets: {', '.join(config_names())}")
    return path


def preset_values(name_or_path: str | Path, _seen: tuple = ()) -> dict:
    """The keys a preset sets, its `base:` chain resolved (the base first, the preset on top)."""
    import yaml

    path = _preset_path(name_or_path)
    if path in _seen:
        raise ValueError(f"config {path.name}: `base:` chain loops through {[p.name for p in _seen]}")
    values = yaml.safe_load(path.read_text()) or {}
    base = values.pop("base", None)
    if base is None:
        return values
    return {**preset_values(base, _seen + (path,)), **values}


def load_config(name_or_path: str | Path = "bench_base2novel", **overrides) -> TrainConfig:
    """A preset (configs/<name>.yaml) or a YAML file, with keyword overrides on top.

    A preset states only what differs from the TrainConfig defaults (the ViFi-CLIP recipe), or from
    the preset it names as `base:`. Unknown keys are an error that lists the valid ones (a typo must
    not silently train the default).
    """
    values = {**preset_values(name_or_path), **overrides}
    valid = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {_preset_path(name_or_path).name} or overrides; "
                         f"valid keys: {', '.join(valid)}")
    return TrainConfig(**values)


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


# fields a run may resume with changed: they do not change what it computes (video_backend: the decoders
# give identical frames; a run saved with "decord" resumes under the default "auto")
RESUME_FREE_FIELDS = {"num_workers", "output_dir", "device", "allow_cpu", "eval_batch_size", "video_backend",
                      "save_every_minutes"}


def run_dir_for(cfg: TrainConfig) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir else paths.runs_dir() / cfg.name


def load_protocols(cfg: TrainConfig):
    """The config's protocol, with the eval splits of cfg.extra_eval appended."""
    protocol = load_protocol(cfg.protocol, cfg.protocol_args)
    for extra in cfg.extra_eval:
        unknown = set(extra) - {"protocol", "args"}
        if unknown or "protocol" not in extra:
            raise ValueError(f"extra_eval entries look like {{protocol: name, args: {{...}}}}, got {extra}")
        protocol.eval.extend(load_protocol(extra["protocol"], extra.get("args")).eval)
    return protocol
