"""A tiny CLIP stand-in for web-scale image-text pretraining, trained in about 6 minutes on a CPU.

AP-CLIP starts from OpenAI's CLIP: a model that already knows what "dressed in red" or "next to
a ball" looks like, but has never been told what a benchmark's class is. This module gives the
embedded benchmark (``apclip_core.embedded.benchmark``) the same starting point at toy scale: the
open_clip config "apclip-tiny" is trained contrastively on single frames from the benchmark's
renderer with RANDOM attribute combinations and captions made of the attribute phrases
(``sample_pretraining_pairs``). It never sees a class name nor a motion phrase, so afterwards it
can ground descriptions of static attributes but knows nothing of "blorping" - which is the
situation the paper's action-conditioned prompts are meant for.

Loss: CLIP's symmetric cross-entropy over the batch. Because captions are partial descriptions
(1-8 phrases), a caption such as "in dim light" is TRUE of many images in a batch; the data is
synthetic, so we know which, and the targets are spread uniformly over every true image/caption
pair instead of treating true pairs as negatives. When all captions are unique and specific this
is exactly CLIP's loss. Images are normalised with the model's own mean/std (open_clip's
preprocess); training crops a random 64x64 window out of the 80x64 frame, evaluation the centre,
as the model's preprocess (resize short side to 64, centre crop) does.

Length: 500 steps of 128 pairs (340 s on 2 idle cores, measured with benchmark spec 2). The whole-frame
attributes (backdrop, lighting) are learned first and the small actor late: with spec 2's captions (name words
too) 300 steps left the actor's colour at 0.37 (chance 0.25) and 500 steps reach 0.98, class-look retrieval
0.88 (chance 0.03). Props, accessory, shape and posture stay near chance at either length: the tiny CLIP knows
colours, backdrops, patterns and light, not the small objects, which is a limit of this stand-in that the
tables inherit ("ball" or "pole" in a name tells it nothing). A patch-16 ViT with a narrower text tower was
3x cheaper per step but had not learned the actor at 300 steps, so the architecture stays.

Cache: ``paths.cache_dir()/"pretrain"/<hash of the config>/`` holds ``open_clip_model.pt`` (a plain
state_dict, loadable by ``open_clip.create_model_and_transforms("apclip-tiny", pretrained=path)``),
``config.json`` and ``metrics.json`` (loss curve and held-out attribute retrieval). The folder is
written under a temporary name and renamed when complete, so an interrupted run leaves no cache.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from apclip_core import atomic, paths
from apclip_core.embedded import benchmark
from apclip_core.progress import progress, say

log = logging.getLogger(__name__)

MODEL_NAME = "apclip-tiny"
PRETRAIN_VERSION = "1"
WEIGHTS_FILE = "open_clip_model.pt"
DEFAULTS = {"steps": 500, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.1, "warmup_fraction": 0.05}
EVAL_FRAMES = 600


def pretrain_config(*, steps: int = DEFAULTS["steps"], batch_size: int = DEFAULTS["batch_size"],
                    lr: float = DEFAULTS["lr"], seed: int = 0) -> dict:
    """Everything that determines the weights (its hash names the cache folder)."""
    render = json.dumps({"renderer": benchmark.renderer_spec(), "phrases": benchmark.PHRASES},
                        sort_keys=True, default=list)
    architecture = (Path(__file__).resolve().parent.parent / "model" / "configs" / f"{MODEL_NAME}.json").read_bytes()
    return {
        "model": MODEL_NAME, "architecture": hashlib.sha256(architecture).hexdigest()[:16], "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr),
        "weight_decay": DEFAULTS["weight_decay"], "warmup_fraction": DEFAULTS["warmup_fraction"],
        "seed": int(seed), "pretrain_version": PRETRAIN_VERSION, "benchmark_version": benchmark.SPEC_VERSION,
        "renderer_hash": hashlib.sha256(render.encode()).hexdigest()[:16],
        "loss": "clip symmetric CE, targets over all true caption/image pairs",
    }


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(**kwargs) -> Path:
    """Where pretrained_tiny_clip(**kwargs) keeps (or will keep) its weights file."""
    return paths.cache_dir() / "pretrain" / config_hash(pretrain_config(**kwargs)) / WEIGHTS_FILE


def pretrained_tiny_clip(*, steps: int = DEFAULTS["steps"], batch_size: int = DEFAULTS["batch_size"],
                         lr: float = DEFAULTS["lr"], seed: int = 0, force: bool = False) -> Path:
    """Path to the pretrained "apclip-tiny" state_dict; trains it (about 6 min on 2 cores) unless cached."""
    config = pretrain_config(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    final = paths.cache_dir() / "pretrain" / config_hash(config)
    weights = final / WEIGHTS_FILE
    if not force and weights.is_file() and (final / "metrics.json").is_file():
        say(f"tiny CLIP: reused the cached pretrained weights ({paths.portable(weights)})")
        return weights
    say(f"tiny CLIP: pretraining {steps} steps (about 6 min on 2 cores; cached afterwards)")
    final.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temporaries(final.parent)
    tmp = atomic.temporary_sibling(final)
    tmp.mkdir()
    try:
        metrics = _train(config, tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
        atomic.publish(tmp, final, replace=force, is_complete=lambda path: (path / WEIGHTS_FILE).is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return weights


def load_metrics(weights: Path) -> dict:
    return json.loads((Path(weights).parent / "metrics.json").read_text())


# ---------------------------------------------------------------------------------------------
# model, data, loss
# ---------------------------------------------------------------------------------------------

def _register_configs() -> None:
    from apclip_core.model.video_clip import register_model_configs

    register_model_configs()


def build_model():
    """(model, tokenizer, mean, std) for a randomly initialised apclip-tiny."""
    import open_clip

    _register_configs()
    model = open_clip.create_model(MODEL_NAME, pretrained=None)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    return model, tokenizer, tuple(model.visual.image_mean), tuple(model.visual.image_std)


def to_tensor(frames: np.ndarray, mean, std, *, offsets: np.ndarray | None = None):
    """uint8 [N,64,80,3] -> normalised float [N,3,64,64]; crop at the given x offsets (default: centre)."""
    import torch

    size = benchmark.FRAME_H
    n, _, width, _ = frames.shape
    if offsets is None:
        offsets = np.full(n, (width - size) // 2)
    crops = np.stack([f[:, o:o + size] for f, o in zip(frames, offsets)])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def encode_captions(model, tokenizer, texts: list[str]):
    """L2-normalised text features of `texts` (the video CLIP's own trimmed text encoding)."""
    from apclip_core.model.video_clip import encode_text_tokens, trim_tokens

    return encode_text_tokens(model, trim_tokens(tokenizer(texts)))


def truth_matrix(captions: list[str], attributes: list[dict]) -> np.ndarray:
    """[N_images, N_captions] bool: caption j is true of image i (all its phrases hold for i)."""
    index = benchmark.caption_vocabulary()
    vocab = {phrase: i for i, phrase in enumerate(index)}
    holds = np.zeros((len(attributes), len(vocab)), bool)
    for i, codes in enumerate(attributes):
        for phrase, (key, code) in index.items():
            holds[i, vocab[phrase]] = codes[key] == code
    says = np.zeros((len(captions), len(vocab)), bool)
    for j, caption in enumerate(captions):
        for phrase in caption.split(", "):
            says[j, vocab[phrase]] = True
    # true iff the caption says nothing that does not hold: says_j . (not holds_i) == 0
    return (says.astype(np.int32) @ (~holds).T.astype(np.int32)).T == 0


def multi_positive_clip_loss(image_features, text_features, logit_scale, truth):
    """Symmetric CE of CLIP with soft targets spread over all true pairs (truth: bool [N_img, N_txt])."""
    import torch.nn.functional as F

    logits = logit_scale * image_features @ text_features.t()
    t = truth.float()
    loss_i = -(t / t.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(t.t() / t.t().sum(1, keepdim=True) * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return 0.5 * (loss_i + loss_t)


# ---------------------------------------------------------------------------------------------
# evaluation: held-out attribute retrieval
# ---------------------------------------------------------------------------------------------

def attribute_retrieval(model, tokenizer, mean, std, *, n: int = EVAL_FRAMES, seed: int = 10_000) -> dict:
    """On fresh frames, does the phrase of the true value outrank the other values' phrases?

    Per static attribute (e.g. actor.clothing: red vs white vs orange vs purple), top-1 accuracy
    and its chance level; plus ``class_look_top1``: frames of the benchmark's classes matched
    against the 8-phrase static descriptions of all distinct class looks (chance 1/20).
    """
    import torch

    frames, _, attrs = benchmark.sample_pretraining_pairs(n, seed=seed, return_attributes=True)
    model.eval()
    with torch.no_grad():
        img = model.encode_image(to_tensor(frames, mean, std), normalize=True)
        result: dict = {"n_frames": n, "per_attribute": {}}
        for key in benchmark.STATIC_KEYS:
            codes = list(benchmark.PHRASES[key])
            txt = encode_captions(model, tokenizer, [benchmark.PHRASES[key][c] for c in codes])
            pred = (img @ txt.t()).argmax(1).numpy()
            truth = np.array([codes.index(a[key]) for a in attrs])
            result["per_attribute"][key] = {"top1": float((pred == truth).mean()), "chance": 1.0 / len(codes)}
        accs = [v["top1"] for v in result["per_attribute"].values()]
        chances = [v["chance"] for v in result["per_attribute"].values()]
        result["mean_top1"], result["mean_chance"] = float(np.mean(accs)), float(np.mean(chances))
        result.update(_class_look_retrieval(model, tokenizer, mean, std, seed=seed))
    return result


def _class_look_retrieval(model, tokenizer, mean, std, *, seed: int) -> dict:
    import torch

    looks: dict[tuple, str] = {}
    for codes in benchmark.class_codes().values():
        phrases = [benchmark.PHRASES[k][codes[k]] for k in benchmark.STATIC_KEYS]
        looks.setdefault(tuple(codes[k] for k in benchmark.STATIC_KEYS), ", ".join(phrases))
    keys = list(looks)
    frames, labels = [], []
    rng = np.random.default_rng([seed, 3])
    for name, codes in benchmark.class_codes().items():
        clip, _, _ = benchmark.render_clip(benchmark.render_params(codes), rng.uniform(0, 1, 6),
                                           benchmark._jitter(rng))
        frames.append(clip)
        labels += [keys.index(tuple(codes[k] for k in benchmark.STATIC_KEYS))] * len(clip)
    with torch.no_grad():
        img = model.encode_image(to_tensor(np.concatenate(frames), mean, std), normalize=True)
        txt = encode_captions(model, tokenizer, [looks[k] for k in keys])
        pred = (img @ txt.t()).argmax(1).numpy()
    return {"class_look_top1": float((pred == np.array(labels)).mean()), "class_look_chance": 1.0 / len(keys)}


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------

def _train(config: dict, out: Path) -> dict:
    import torch

    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, threads))
    try:
        torch.manual_seed(config["seed"])
        model, tokenizer, mean, std = build_model()
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config["weight_decay"]},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=config["lr"], betas=(0.9, 0.98), eps=1e-6)
        steps = config["steps"]
        warmup = max(1, int(config["warmup_fraction"] * steps))

        def lr_at(step: int) -> float:
            if step < warmup:
                return config["lr"] * (step + 1) / warmup
            t = (step - warmup) / max(1, steps - warmup)
            return config["lr"] * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

        rng = np.random.default_rng([config["seed"], 11])
        losses = []
        model.train()
        for step in progress(range(steps), desc="pretraining apclip-tiny"):
            frames, captions, attrs = benchmark.sample_pretraining_pairs(
                config["batch_size"], seed=config["seed"] * 1_000_003 + step, return_attributes=True)
            offsets = rng.integers(0, frames.shape[2] - benchmark.FRAME_H + 1, len(frames))
            images = to_tensor(frames, mean, std, offsets=offsets)
            truth = torch.from_numpy(truth_matrix(captions, attrs))
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            image_features = model.encode_image(images, normalize=True)
            text_features = encode_captions(model, tokenizer, captions)
            loss = multi_positive_clip_loss(image_features, text_features, model.logit_scale.exp(), truth)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
        train_seconds = time.perf_counter() - start
        retrieval = attribute_retrieval(model, tokenizer, mean, std)
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / WEIGHTS_FILE)
    finally:
        torch.set_num_threads(threads_before)
    k = max(1, steps // 10)
    metrics = {
        "steps": steps, "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1), "threads": threads,
        "loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
        "loss_curve": [round(float(np.mean(losses[i:i + k])), 4) for i in range(0, steps, k)],
        "logit_scale": model.logit_scale.exp().item(),
        "retrieval": retrieval,
    }
    log.info("pretrained %s: %d steps in %.0f s, loss %.3f -> %.3f, attribute top-1 %.2f (chance %.2f), "
             "class-look top-1 %.2f (chance %.2f)", MODEL_NAME, steps, train_seconds, metrics["loss_first"],
             metrics["loss_last"], retrieval["mean_top1"], retrieval["mean_chance"],
             retrieval["class_look_top1"], retrieval["class_look_chance"])
    return metrics


def main(argv: list[str] | None = None) -> int:
    from apclip_core.arguments import bounded, positive_float, positive_int

    parser = argparse.ArgumentParser(prog="python -m apclip_core pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=positive_int, default=DEFAULTS["steps"])
    parser.add_argument("--batch-size", type=bounded(int, 2, what="contrastive pairs need two"), default=DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="retrain even if cached")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("apclip_core").setLevel(logging.INFO)   # not open_clip's chatter on the root logger
    path = pretrained_tiny_clip(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                force=args.force)
    r = load_metrics(path)["retrieval"]
    print(f"{path}\nattribute retrieval top-1 {r['mean_top1']:.3f} (chance {r['mean_chance']:.3f}); "
          f"class-look top-1 {r['class_look_top1']:.3f} (chance {r['class_look_chance']:.3f})")
    return 0
