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
from apclip_core.errors import BadValue
from apclip_core.data.protocols import load_protocol

# views, similarity and strategies (torch) are imported where used: `train --help` reads config_names()

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
    colour_jitter: bool = True               # colour jitter and grayscale (off for the benchmark: its classes are
                                             # defined by colours, which jitter and grayscale would change)
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
    tracker: str = "none"                    # none | tensorboard | wandb (offline): per-epoch numbers (engine.tracking)
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
                    raise BadValue(f"{f.name} must be a number, got {value!r}") from None
            if problem := value_problem(f.name, getattr(self, f.name)):
                raise BadValue(problem)
        self.betas = tuple(float(b) for b in self.betas)
        self.protocol_args = dict(self.protocol_args or {})
        self.extra_eval = [dict(e) for e in (self.extra_eval or [])]
        self.eval_prompt_files = dict(self.eval_prompt_files or {})
        self.drop_attribute_groups = list(self.drop_attribute_groups or [])
        from apclip_core.prompts.strategies import needs_prompt_file

        if needs_prompt_file(self.prompt_strategy) and not self.prompt_file:
            raise BadValue(f"prompt_strategy={self.prompt_strategy!r} needs prompt_file (a prompts/*.json)")

    @property
    def lr_min(self) -> float:
        return self.lr / 100 if self.min_lr is None else self.min_lr

    def view(self, *, train: bool = False) -> ViewSpec:
        """How videos are seen: one clip in training, the evaluation views otherwise."""
        from apclip_core.data.views import ViewSpec

        if train:
            return ViewSpec(self.frames, 1, 1, self.video_backend, self.short_videos)
        return ViewSpec(self.frames, self.temporal_views, self.spatial_crops, self.video_backend, self.short_videos)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
# what each field may hold, checked where a value is read (a preset, --set, a PARAMS file's overrides)
KINDS = {"int": (int,), "float": (int, float), "Optional[float]": (int, float), "bool": (bool,), "str": (str,),
         "dict": (dict,), "list": (list,)}
AT_LEAST_1 = ("epochs", "frames", "temporal_views", "spatial_crops", "batch_size", "effective_batch_size",
              "eval_batch_size")
AT_LEAST_0 = ("max_videos_per_split", "num_workers", "max_steps_per_epoch", "eval_every_epochs", "eval_max_videos",
              "save_every_steps", "prompts_per_class_per_step", "warmup_epochs", "weight_decay", "mixup_alpha",
              "cutmix_alpha", "grad_clip_norm", "min_lr")
FRACTIONS = ("label_smoothing", "mixup_switch_prob")


def value_problem(key: str, value) -> Optional[str]:
    """What is wrong with `value` for the TrainConfig field `key` (kind, range, choices); None when it may stand."""
    from apclip_core.engine.tracking import TRACKERS
    from apclip_core.model.similarity import similarity_names
    from apclip_core.prompts.strategies import strategy_names

    kind = KINDS.get(str(FIELD_TYPES.get(key)))
    if value is None or key not in FIELD_TYPES:
        return None
    if kind and (not isinstance(value, kind) or (bool not in kind and isinstance(value, bool))):
        return f"{key} must be {' or '.join(k.__name__ for k in kind)}, got {value!r}"
    choices = {"prompt_strategy": strategy_names(), "similarity": similarity_names(), "precision": PRECISIONS,
               "device": ("auto", "cpu", "cuda"), "missing_videos": MISSING_VIDEOS, "tracker": TRACKERS}.get(key)
    if choices and value not in choices and not (key == "device" and str(value).startswith("cuda:")):
        return f"{key}={value!r} is not valid; choose one of: {', '.join(choices)}"
    if key in AT_LEAST_1 and value < 1:
        return f"{key} must be >= 1, got {value}"
    if key in AT_LEAST_0 and value < 0:
        return f"{key} must be >= 0 (0 turns it off or means all), got {value}"
    if key == "lr" and not value > 0:
        return f"lr must be > 0, got {value}"
    if key in FRACTIONS and not 0 <= value <= 1:
        return f"{key} must be between 0 and 1, got {value}"
    return None


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
    from apclip_core.user_files import read_yaml

    path = _preset_path(name_or_path)
    if path in _seen:
        raise BadValue(f"config {path.name}: `base:` chain loops through {[p.name for p in _seen]}")
    values = dict(read_yaml(path, "training config", empty={}))
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
    from apclip_core.user_files import refuse_unknown_keys

    values = {**preset_values(name_or_path), **overrides}
    refuse_unknown_keys(sorted(values), [f.name for f in dataclasses.fields(TrainConfig)],
                        f"{_preset_path(name_or_path)} or overrides")
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
                      "tracker", "save_every_minutes"}


def run_dir_for(cfg: TrainConfig) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir else paths.runs_dir() / cfg.name


def load_protocols(cfg: TrainConfig):
    """The config's protocol, with the eval splits of cfg.extra_eval appended."""
    protocol = load_protocol(cfg.protocol, cfg.protocol_args)
    for extra in cfg.extra_eval:
        unknown = set(extra) - {"protocol", "args"}
        if unknown or "protocol" not in extra:
            raise BadValue(f"extra_eval entries look like {{protocol: name, args: {{...}}}}, got {extra}")
        protocol.eval.extend(load_protocol(extra["protocol"], extra.get("args")).eval)
    return protocol
