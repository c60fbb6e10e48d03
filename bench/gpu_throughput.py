"""GPU training throughput of ViT-B/16 video fine-tuning (issue figure 5), when a GPU is lent.

Measured on CUDA (on CPU the section reports "no GPU: skipped"; tests run the same code on CPU
with apclip-tiny to keep it working):

* compute only (a fixed batch already on the device): train.py's step (bench/train_step.Step:
  PromptClassifier, cross-entropy, backward, AdamW) with bf16 autocast, for
    single   one prompt per class, mean pooling (ViFi-CLIP's step)
    ac k=8   AP-CLIP: 8 of the 36 action-conditioned prompts per class per step, MAKA
  each eager and with torch.compile on the visual tower (the text tower's shapes change every
  step: trimmed length, sampled prompts). Attention is open_clip's nn.MultiheadAttention, which
  dispatches to fused scaled_dot_product_attention (flash) in training when weights are not needed.
  videos/s, frames/s, ratio to ViFi-CLIP's reported ~120 frames/s per A100 (22 h on 8 GPUs for 10
  K400 epochs at 32 frames), and MFU = model FLOPs of one step (FlopCounterMode: forward + backward,
  both towers) / step time / the GPU's dense bf16 peak (989 TFLOP/s for H100/H200 SXM).
* end to end: the same step fed by the training loader (data.datasets.TrainLoader) over re-encoded
  Kinetics-like videos (short side 256, decord, ViFi-CLIP train transforms in the workers),
  host-to-device copy included; plus the loader alone and the copy alone, so the table says which
  of decode, copy, tokenization or compute limits the end-to-end rate.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import torch

from common import fmt_s, ratio, row, skipped

VIFI_CLIP_FRAMES_PER_S = 120.0          # per A100: 22 h x 8 GPUs for 10 epochs x 240k videos x 32 frames
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
FULL = dict(model="ViT-B-16", batch=32, frames=8, classes=400, k=8, steps=10, warmup=3, compile=True,
            videos=16, loader_batches=12, workers=None,
            video_spec=dict(width=640, height=360, frames=250, fps=25))
QUICK = dict(model="apclip-tiny", batch=2, frames=4, classes=4, k=4, steps=2, warmup=1, compile=False,
             videos=2, loader_batches=2, workers=0,
             video_spec=dict(width=320, height=272, frames=24, fps=25))


def peak_flops(device: torch.device) -> Optional[float]:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(fn, device, *, steps: int, warmup: int) -> float:
    """Median-free throughput timing: warm-up steps, then `steps` back-to-back steps / steps."""
    for _ in range(warmup):
        fn()
    sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - tic) / steps


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def make_videos(root: Path, n: int, spec: dict, jobs: int) -> Path:
    """n Kinetics-like mp4 files, re-encoded to short side 256; returns the re-encoded root."""
    from apclip_core.data.prepare import reencode_videos
    from decoding import write_video

    targets = [root / "src" / "kinetics" / f"k_{i}.mp4" for i in range(n)]
    todo = [t for t in targets if not t.is_file()]
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_write_one, [(str(t), spec, i) for i, t in enumerate(todo)]))
    else:
        for i, t in enumerate(todo):
            write_video(t, "kinetics", seed=i, **spec)
    report = reencode_videos(root / "src", root / "256", [str(t.relative_to(root / "src")) for t in targets],
                             short_side=256, jobs=max(1, jobs))
    if report["failed"]:
        raise RuntimeError(f"re-encoding failed: {report['failures']}")
    return root / "256"


def _write_one(args):
    from decoding import write_video

    path, spec, seed = args
    return str(write_video(Path(path), "kinetics", seed=seed, **spec))


def run(*, quick: bool, threads: int, workdir: Path, device: Optional[str] = None) -> dict:
    """device=None: CUDA if available, else the section is skipped. device="cpu": run anyway (tests)."""
    if device is None:
        if not torch.cuda.is_available():
            return {"rows": [skipped("GPU training throughput, MFU, end-to-end (ViT-B/16, 8 frames, bf16)",
                                     "no GPU: skipped")], "details": {"device": None}}
        device = "cuda"
    dev = torch.device(device)
    s = QUICK if quick else FULL
    from apclip_core.data.annotations import VideoRecord
    from apclip_core.data.datasets import TrainLoader, VideoDataset
    from apclip_core.data.views import ViewSpec
    from apclip_core.data.transforms import build_video_transform
    from train_step import Step, build_banks, build_model_and_optimizer, random_batch

    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = torch.bfloat16 if dev.type == "cuda" else None
    single, ac, _ = build_banks(s["classes"])
    details: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "sizes": s,
                     "flash_sdp": torch.backends.cuda.flash_sdp_enabled() if dev.type == "cuda" else None}
    peak = peak_flops(dev)
    rows, results = [], {}
    for compiled in ([False, True] if s["compile"] else [False]):
        model, optimizer = build_model_and_optimizer(s["model"], device=dev)
        if compiled:
            model.clip.visual.compile()
        video, labels = random_batch(model, s["batch"], s["frames"], s["classes"], device=dev)
        for name, bank, sim, k in (("single", single, "mean", 1), (f"ac k={s['k']}", ac, "maka", s["k"])):
            step = Step(model, bank, sim, k, video, labels, optimizer, autocast_dtype=amp)
            tag = f"{name}{' compiled' if compiled else ''}"
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t = timed_steps(step, dev, steps=s["steps"], warmup=s["warmup"])
            # FLOPs of the eager step (same math when compiled; FlopCounterMode and compiled graphs mix poorly)
            flops = results[name]["flops_per_step"] if compiled else count_flops(step)
            tok = time.perf_counter()
            model.tokenize(bank.subsample(k, torch.Generator().manual_seed(0)).flat_prompts)
            tok = time.perf_counter() - tok
            results[tag] = {"step_s": t, "videos_per_s": s["batch"] / t, "frames_per_s": s["batch"] * s["frames"] / t,
                            "flops_per_step": flops, "mfu": flops / t / peak if peak else None,
                            "tokenize_s": tok,
                            "max_memory_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None}
        del model, optimizer, video, labels
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    best_tag = max(results, key=lambda k: results[k]["videos_per_s"] if k.startswith("ac") else -1)
    best = results[best_tag]
    what = f"{s['model']}, {s['batch']} videos x {s['frames']} frames, {s['classes']} classes, bf16 autocast"
    for tag, r in results.items():
        if r["mfu"] is None:
            rows.append(skipped(f"MFU, {tag} ({what})", status="n/a",
                                why=f"peak FLOP/s of {details['device']} unknown; {r['videos_per_s']:.1f} videos/s, "
                                    f"{r['flops_per_step'] / 1e9:.1f} GFLOP/step, step {fmt_s(r['step_s'])}"))
            continue
        rows.append(row(f"MFU, {tag} ({what})", r["mfu"], unit="", target=">= 0.40", ok=None if r["mfu"] is None else r["mfu"] >= 0.40,
                        measured=f"{r['videos_per_s']:.1f} videos/s, {r['flops_per_step'] / 1e12:.2f} TFLOP/step, "
                                 f"step {fmt_s(r['step_s'])}",
                        note=f"tokenize {fmt_s(r['tokenize_s'])}/step" + (
                            f", peak memory {r['max_memory_bytes'] / 2**30:.1f} GiB" if r["max_memory_bytes"] else "")))
    r10 = ratio(best["frames_per_s"], VIFI_CLIP_FRAMES_PER_S)
    rows.append(row(f"training frames/s / ViFi-CLIP's ~120 frames/s per A100 ({best_tag}, compute only)", r10,
                    target=">= 10x", ok=(r10 or 0) >= 10, measured=f"{best['frames_per_s']:.0f} frames/s"))
    single_key = best_tag.replace(f"ac k={s['k']}", "single")
    if single_key in results:
        rows.append(row(f"step time ac k={s['k']} / single prompt on the device", ratio(best["step_s"], results[single_key]["step_s"]),
                        target="info", measured=f"{fmt_s(best['step_s'])} vs {fmt_s(results[single_key]['step_s'])}",
                        note="the difference is the text tower (C x k prompts, with gradient) + tokenization"))
    if "ac k=%d compiled" % s["k"] in results:
        a, b = results["ac k=%d compiled" % s["k"]], results["ac k=%d" % s["k"]]
        rows.append(row("torch.compile (visual tower) / eager: videos/s", ratio(a["videos_per_s"], b["videos_per_s"]),
                        target="info", measured=f"{a['videos_per_s']:.1f} vs {b['videos_per_s']:.1f} videos/s"))

    # ---- end to end: DataLoader over re-encoded videos -> H2D -> step ----
    workers = s["workers"] if s["workers"] is not None else max(1, (os.cpu_count() or 2) - 1)
    root = make_videos(workdir / "gpu_videos", s["videos"], s["video_spec"], jobs=max(1, workers))
    files = sorted(p.relative_to(root) for p in root.rglob("*.mp4"))
    n_needed = (s["loader_batches"] + 1) * s["batch"]
    records = [VideoRecord(str(files[i % len(files)]), i % s["classes"]) for i in range(n_needed)]
    model, optimizer = build_model_and_optimizer(s["model"], device=dev)
    if s["compile"]:
        model.clip.visual.compile()
    cfg = model.config
    transform = build_video_transform(cfg["image_size"], cfg["mean"], cfg["std"], train=True)
    dataset = VideoDataset(records, root, view=ViewSpec(s["frames"]), train=True, transform=transform)

    def loader():  # the loader training uses
        return TrainLoader(dataset, batch_size=s["batch"], num_workers=workers, seed=0,
                           pin_memory=dev.type == "cuda").epoch(0)

    # loader alone
    it = iter(loader())
    next(it)                                             # worker start-up is not throughput
    tic = time.perf_counter()
    n = 0
    for batch in it:
        n += len(batch["label"])
    load_rate = n / (time.perf_counter() - tic)
    # host-to-device copy alone
    cpu_batch = batch["video"]
    if dev.type == "cuda":
        cpu_batch = cpu_batch.pin_memory()
    h2d = timed_steps(lambda: cpu_batch.to(dev, non_blocking=True), dev, steps=5, warmup=1)
    # end to end
    step = Step(model, ac, "maka", s["k"], None, None, optimizer, autocast_dtype=amp)
    video0, labels0 = random_batch(model, s["batch"], s["frames"], s["classes"], device=dev)
    for _ in range(s["warmup"]):
        step(video0, labels0)
    sync(dev)
    it = iter(loader())
    first = next(it)
    step(first["video"].to(dev, non_blocking=True), first["label"].to(dev, non_blocking=True))
    sync(dev)
    tic = time.perf_counter()
    n = 0
    for batch in it:
        step(batch["video"].to(dev, non_blocking=True), batch["label"].to(dev, non_blocking=True))
        n += len(batch["label"])
    sync(dev)
    e2e_rate = n / (time.perf_counter() - tic)
    compute_rate = best["videos_per_s"]
    limits = {"decode + transforms (loader alone)": load_rate, "host-to-device copy": s["batch"] / h2d,
              "compute (fixed batch)": compute_rate}
    limiter = min(limits, key=limits.get)
    rows.append(row(f"end-to-end / compute-only videos/s ({workers} loader workers, re-encoded mp4, decord)",
                    ratio(e2e_rate, compute_rate), target="info (1.0 = data loading hidden)",
                    measured=f"{e2e_rate:.1f} vs {compute_rate:.1f} videos/s",
                    note="rates alone: " + ", ".join(f"{k} {v:.1f} videos/s" for k, v in limits.items())
                         + f"; limited by {limiter}"))
    r10_e2e = ratio(e2e_rate * s["frames"], VIFI_CLIP_FRAMES_PER_S)
    rows.append(row("end-to-end training frames/s / ViFi-CLIP's ~120 frames/s per A100", r10_e2e, target=">= 10x",
                    ok=(r10_e2e or 0) >= 10, measured=f"{e2e_rate * s['frames']:.0f} frames/s"))
    details.update(results=results, loader_videos_per_s=load_rate, h2d_s_per_batch=h2d, e2e_videos_per_s=e2e_rate,
                   loader_workers=workers, limiter=limiter, peak_bf16_flops=peak)
    return {"rows": rows, "details": details}
