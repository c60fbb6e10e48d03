"""Optional experiment tracking, off by default: per epoch, the training loss, the learning rate, the
throughput and the evaluation metrics, as the run's metrics.json has them.

    --set tracker=tensorboard   event files in <run>/tensorboard/ (`tensorboard --logdir runs`)
    --set tracker=wandb         Weights & Biases (when installed), offline unless WANDB_MODE says otherwise:
                                files in <run>/wandb/, `wandb sync` uploads them

Only numbers and the run's name are logged: never the config's paths, the environment, or a key (W&B's own
key, if any, comes from its environment and stays with W&B). Rank 0 logs; a tracker that cannot start stops
the run before training, with what to install.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

TRACKERS = ("none", "tensorboard", "wandb")


def epoch_scalars(entry: dict) -> dict[str, float]:
    """The numbers of one epoch's entry in metrics.json, under the names they are tracked with."""
    scalars = {"train/loss": entry["loss"], "train/lr": entry["lr"], "train/samples_per_s": entry["samples_per_s"],
               "train/step_time_s": entry["step_time_s"]}
    for key, value in (entry.get("eval") or {}).items():
        if isinstance(value, (int, float)):
            scalars[f"eval/{key}"] = value
    return {k: float(v) for k, v in scalars.items()}


class Tracker:
    """Where epochs are logged: log(entry) once per epoch (x axis: the epoch), close() at the end."""

    def log(self, entry: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, entry: dict) -> None:
        for name, value in epoch_scalars(entry).items():
            self.writer.add_scalar(name, value, global_step=entry["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    def __init__(self, run_dir: Path):
        import wandb

        # offline unless the user chose otherwise (WANDB_MODE=online): nothing leaves the machine by default
        self.run = wandb.init(dir=str(run_dir), name=run_dir.name, mode=os.environ.get("WANDB_MODE", "offline"))

    def log(self, entry: dict) -> None:
        self.run.log({**epoch_scalars(entry), "epoch": entry["epoch"]})

    def close(self) -> None:
        self.run.finish()


def open_tracker(name: str, run_dir: Path) -> Optional[Tracker]:
    """The tracker a config names (None for "none"); one message saying what to install if it is missing."""
    if name == "none":
        return None
    builders = {"tensorboard": (TensorBoardTracker, "tensorboard"), "wandb": (WandbTracker, "wandb")}
    if name not in builders:
        raise ValueError(f"tracker={name!r} is not valid; choose one of: {', '.join(TRACKERS)}")
    build, package = builders[name]
    try:
        return build(Path(run_dir))
    except ImportError:
        raise SystemExit(f"tracker={name} needs the {package} package: pip install {package} "
                         "(or --set tracker=none)") from None
