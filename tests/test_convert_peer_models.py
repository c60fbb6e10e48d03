"""Importing MoTE and TC-CLIP (apclip_core.model.convert, model.mote, model.tcclip).

Tiny random models are written in each peer's file layout (embedded.peer_files: MoTE's image tower plus
temporal module, no text tower; TC-CLIP's split q/k/v attention, bias tables, learned context, prompt-
generation layer and pickled omegaconf config). Each converted model's logits and features are compared with
a reference written below from the peers' published evaluation, by hand (loops over frames and heads), with
and without each peer's evaluation-time weight interpolation. Nothing here uses apclip's model code for the
reference; only the tokenizer is shared (the peers' BPE is open_clip's).
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from apclip_core.embedded import peer_files
from apclip_core.model import convert as conv
from apclip_core.model.mote import LabelSetDependent
from apclip_core.model.video_clip import load_checkpoint

# TC-CLIP needs the embedding width equal to the text width; the image tower differs, to catch transposes
VW, VL, PATCH, IMG = 192, 2, 8, 32        # image tower: 2 blocks of width 192 (3 heads), 4x4 patches
TW, TL, CTX, VOCAB = 128, 2, 77, 49408    # text tower: 2 blocks of width 128 (2 heads)
EMBED, FRAMES = 128, 4
NAMES = ["juggling", "skipping_rope", "cartwheel", "PlayingGuitar", "rock climbing"]   # MoTE scores >= 5
TC_CONFIG = dict(peer_files.TCCLIP_TINY_CONFIG, num_frames=FRAMES)   # k = 6 context tokens, r = 4, a = 0.3


def shapes() -> dict:
    block = lambda w: {"attn.in_proj_weight": (3 * w, w), "attn.in_proj_bias": (3 * w,), "attn.out_proj.weight": (w, w),
                       "attn.out_proj.bias": (w,), "ln_1.weight": (w,), "ln_1.bias": (w,), "ln_2.weight": (w,),
                       "ln_2.bias": (w,), "mlp.c_fc.weight": (4 * w, w), "mlp.c_fc.bias": (4 * w,),
                       "mlp.c_proj.weight": (w, 4 * w), "mlp.c_proj.bias": (w,)}
    grid = IMG // PATCH
    out = {"visual.conv1.weight": (VW, 3, PATCH, PATCH), "visual.class_embedding": (VW,),
           "visual.positional_embedding": (grid * grid + 1, VW), "visual.ln_pre.weight": (VW,),
           "visual.ln_pre.bias": (VW,), "visual.ln_post.weight": (VW,), "visual.ln_post.bias": (VW,),
           "visual.proj": (VW, EMBED), "token_embedding.weight": (VOCAB, TW), "positional_embedding": (CTX, TW),
           "ln_final.weight": (TW,), "ln_final.bias": (TW,), "text_projection": (TW, EMBED), "logit_scale": ()}
    for prefix, width, layers in (("visual.transformer", VW, VL), ("transformer", TW, TL)):
        for i in range(layers):
            out.update({f"{prefix}.resblocks.{i}.{k}": s for k, s in block(width).items()})
    return out


def random_clip(seed: int, base: dict | None = None) -> dict:
    """A random OpenAI-layout CLIP, or (base given) the base plus a change large enough to matter."""
    g = torch.Generator().manual_seed(seed)
    if base is not None:
        return {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    sd = {}
    for k, s in shapes().items():
        if k == "logit_scale":
            sd[k] = torch.tensor(math.log(1 / 0.07))
        elif ".ln_" in k or k.startswith(("ln_", "visual.ln_")):
            sd[k] = (1 if k.endswith("weight") else 0) + 0.1 * torch.randn(s, generator=g)
        else:
            sd[k] = 0.2 * torch.randn(s, generator=g)
    return sd


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    root = tmp_path_factory.mktemp("peer_models")
    g = torch.Generator().manual_seed(7)
    base = random_clip(0)
    tuned = {"mote": random_clip(1, base), "tcclip": random_clip(2, base)}
    fusion = peer_files.mote_fusion(tuned["mote"], g, layers=2, experts=3, classes=12)
    # as MoTE's training stores them: the training classes' features (here 3 of NAMES among random ones), so
    # that the modulation is neither 0 nor 1
    fusion["spe_cls_feature"][:3] = torch.stack([mote_class_feature(base, n) for n in NAMES[:3]])
    extras = peer_files.tcclip_extras(tuned["tcclip"], g)
    peer_files.write_peer_file("openai", base, root / "ViT-tiny.pt")
    peer_files.write_peer_file("mote", tuned["mote"], root / "MoTE_tiny.pt", extras=fusion)
    peer_files.write_peer_file("tcclip", tuned["tcclip"], root / "tc_clip_tiny.pth", extras=extras, config=TC_CONFIG)
    assert "omegaconf" not in sys.modules     # the stand-in is gone; conversion must not need omegaconf
    return {"root": root, "base": base, "tuned": tuned, "fusion": fusion, "extras": extras, "cache": {}}


def converted(peers, fmt: str, **kw):
    key = (fmt, tuple(sorted(kw.items())))
    if key not in peers["cache"]:
        src = peers["root"] / ("MoTE_tiny.pt" if fmt == "mote" else "tc_clip_tiny.pth")
        dst = peers["root"] / "out" / f"{fmt}-{len(peers['cache'])}.safetensors"
        model = conv.convert(src, dst, fmt, base=str(peers["root"] / "ViT-tiny.pt"), **kw).eval()
        peers["cache"][key] = (model, dst)
    return peers["cache"][key]


VIDEO = torch.randn(1, 2, FRAMES, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))   # [B, V, T, 3, S, S]


# ---- the reference: the peers' published computation, by hand ------------------------------------------
def ln(x, p, name, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * p[name + ".weight"] + p[name + ".bias"]


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def mha(q_in, kv_in, w_in, b_in, w_out, b_out, heads, mask=None, bias=None):
    """Multi-head attention, head by head: q_in [..., Lq, W], kv_in [..., Lk, W]. bias(hd) -> [Lk] added to the
    logits. Returns (output [..., Lq, W], attention weights [heads, ..., Lq, Lk])."""
    W = q_in.shape[-1]
    wq, wk, wv = w_in.split(W)
    bq, bk, bv = b_in.split(W)
    q, k, v = q_in @ wq.T + bq, kv_in @ wk.T + bk, kv_in @ wv.T + bv
    d = W // heads
    out, weights = torch.empty_like(q), []
    for hd in range(heads):
        c = slice(hd * d, (hd + 1) * d)
        logits = q[..., c] @ k[..., c].transpose(-1, -2) / math.sqrt(d)
        if mask is not None:
            logits = logits + mask
        if bias is not None:
            logits = logits + bias(hd)
        a = torch.softmax(logits, dim=-1)
        weights.append(a)
        out[..., c] = a @ v[..., c]
    return out @ w_out.T + b_out, torch.stack(weights)


def mlp(x, p, b):
    return quick_gelu(x @ p[b + "c_fc.weight"].T + p[b + "c_fc.bias"]) @ p[b + "c_proj.weight"].T + p[b + "c_proj.bias"]


def patch_tokens(p, frame):
    """One frame [3, S, S] -> its N = 1 + P tokens after ln_pre."""
    x = F.conv2d(frame[None], p["visual.conv1.weight"], stride=PATCH)[0].flatten(1).T
    x = torch.cat([p["visual.class_embedding"][None], x]) + p["visual.positional_embedding"]
    return ln(x, p, "visual.ln_pre")


def clip_frame(p, frame):
    """Plain CLIP image tower: raw projected CLS feature."""
    x = patch_tokens(p, frame)
    for i in range(VL):
        b = f"visual.transformer.resblocks.{i}."
        x = x + mha(ln(x, p, b + "ln_1"), ln(x, p, b + "ln_1"), p[b + "attn.in_proj_weight"], p[b + "attn.in_proj_bias"],
                    p[b + "attn.out_proj.weight"], p[b + "attn.out_proj.bias"], VW // 64)[0]
        x = x + mlp(ln(x, p, b + "ln_2"), p, b + "mlp.")
    return ln(x[0], p, "visual.ln_post") @ p["visual.proj"]


def text_block(x, p, b, mask):
    h = ln(x, p, b + "ln_1")
    x = x + mha(h, h, p[b + "attn.in_proj_weight"], p[b + "attn.in_proj_bias"], p[b + "attn.out_proj.weight"],
                p[b + "attn.out_proj.bias"], TW // 64, mask=mask)[0]
    return x + mlp(ln(x, p, b + "ln_2"), p, b + "mlp.")


def causal(L):
    return torch.full((L, L), float("-inf")).triu(1)


def clip_texts(p, texts: list[str]) -> torch.Tensor:
    """CLIP's causal text tower, pooled at the end-of-text token: [P, D] L2-normalised."""
    tokens = open_clip.tokenize(texts)
    L = int(tokens.argmax(dim=-1).max()) + 1
    x = p["token_embedding.weight"][tokens[:, :L]] + p["positional_embedding"][:L]
    for i in range(TL):
        x = text_block(x, p, f"transformer.resblocks.{i}.", causal(L))
    x = ln(x, p, "ln_final")[torch.arange(len(texts)), tokens.argmax(dim=-1)]
    return F.normalize(x @ p["text_projection"], dim=-1)


MOTE_OPENINGS = ["a photo of", "a video of", "a example of", "a demonstration of"]
MOTE_ENDINGS = ["{}.", "a person {}.", "a person using {}.", "a person doing {}.", "a person during {}.",
                "a person performing {}.", "a person practicing {}."]
_MOTE_CLASSES: dict = {}


def mote_class_feature(base: dict, name: str) -> torch.Tensor:
    """MoTE's classifier row: the 28 prompts through the original CLIP, L2, mean, L2 (memoised: text is the base's)."""
    if name not in _MOTE_CLASSES:
        texts = [f"{o} {e}".format(name) for o in MOTE_OPENINGS for e in MOTE_ENDINGS]
        _MOTE_CLASSES[name] = F.normalize(clip_texts(base, texts).mean(0), dim=0)
    return _MOTE_CLASSES[name]


def mote_weights(peers, patch: bool) -> dict:
    base, tuned = peers["base"], peers["tuned"]["mote"]
    w = dict(base)  # the text side is always the original CLIP's
    for k in [k for k in tuned if k.startswith("visual.") or k == "logit_scale"]:
        w[k] = 0.99 * tuned[k] + 0.01 * base[k] if patch else tuned[k]
    return w


def reference_mote(peers, patch: bool, video=VIDEO, names=NAMES):
    """MoTE's zero-shot evaluation: (logits [B, C], video features [B, V, D])."""
    p, f = mote_weights(peers, patch), peers["fusion"]
    classes = torch.stack([mote_class_feature(peers["base"], n) for n in names])
    logits, feats = torch.zeros(video.shape[0], len(names)), torch.zeros(*video.shape[:2], EMBED)
    for b in range(video.shape[0]):
        for view in range(video.shape[1]):
            X = torch.stack([clip_frame(p, fr) for fr in video[b, view]])               # [T, D]
            x_bar = F.normalize(X.mean(0), dim=0)
            g5 = classes[(classes @ x_bar).topk(5).indices]
            s5 = f["spe_cls_feature"][(f["spe_cls_feature"] @ x_bar).topk(5).indices]
            m = (g5 @ s5.T).max(dim=1).values.mean()
            w = torch.exp(-(1 - m) / 0.05)
            Z = X + f["frame_position_embeddings.weight"][:len(X)]
            for i in range(2):
                bk = f"transformer.resblocks.{i}."
                h = ln(Z, f, bk + "ln_1", eps=1e-12)
                Z = Z + mha(h, h, f[bk + "attn.in_proj_weight"], f[bk + "attn.in_proj_bias"],
                            f[bk + "attn.out_proj.weight"], f[bk + "attn.out_proj.bias"], TW // 64)[0]
                a = torch.softmax(f[bk + "mlp.mote_fusion_weight"], 0)
                merged = {n: sum(a[e] * f[f"{bk}mlp.{n}.{e}.{kind}"] for e in range(3)) for n in ("fc_up", "fc_dn")
                          for kind in ("weight",)}
                bias = {n: sum(a[e] * f[f"{bk}mlp.{n}.{e}.bias"] for e in range(3)) for n in ("fc_up", "fc_dn")}
                h = ln(Z, f, bk + "ln_2", eps=1e-12)
                Z = Z + quick_gelu(h @ merged["fc_up"].T + bias["fc_up"]) @ merged["fc_dn"].T + bias["fc_dn"]
            v = F.normalize((w * Z + X).mean(0), dim=0)
            feats[b, view] = v
            logits[b] += 100 * classes @ v / video.shape[1]
    return logits, feats


def tcclip_weights(peers, alpha: float) -> dict:
    base, tuned = peers["base"], peers["tuned"]["tcclip"]
    w = {k: ((1 - alpha) * base[k] + alpha * v if alpha else v) for k, v in tuned.items()}
    w["token_embedding.weight"] = base["token_embedding.weight"]   # never saved: the original's
    return w


def tome(tokens: list, r_per_layer: int, k: int) -> list:
    """ToMe bipartite soft matching, step by step, to k tokens; tokens: list of (vector, size)."""
    steps, cnt = [], len(tokens)
    for _ in range(int((cnt - k) / r_per_layer)):
        steps.append(min(r_per_layer, cnt // 2))
        cnt -= steps[-1]
    while cnt > k:
        steps.append(min(cnt - k, cnt // 2))
        cnt -= steps[-1]
    for r in steps:
        A, B = tokens[0::2], tokens[1::2]
        best = []
        for i, (a, _) in enumerate(A):
            sims = [float(F.cosine_similarity(a, b, dim=0)) for b, _ in B]
            j = max(range(len(B)), key=lambda j: sims[j])
            best.append((sims[j], i, j))
        best.sort(key=lambda e: -e[0])
        B = [list(t) for t in B]
        sums = [[b * s, s] for b, s in B]
        for _, i, j in best[:r]:
            a, s = A[i]
            sums[j][0] = sums[j][0] + a * s
            sums[j][1] = sums[j][1] + s
        tokens = [A[i] for _, i, _ in best[r:]] + [(total / size, size) for total, size in sums]
    return tokens


def reference_tcclip_clip(p, extras, clip):
    """TC-CLIP's image tower on one clip [T, 3, S, S]: (L2 video feature [D], context tokens [k, D])."""
    T, heads = clip.shape[0], VW // 64
    frames = [patch_tokens(p, fr) for fr in clip]
    N = frames[0].shape[0]
    x = torch.cat(frames)                                       # [T*N, W]
    context = x[:0]
    level = TL - 1
    for i in range(VL):
        b = f"visual.transformer.resblocks.{i}."
        table = extras.get(f"image_encoder.transformer.resblocks.{i}.attn.local_global_bias_table")
        h_ctx = ln(context, p, b + "ln_1")
        out, seeds = torch.empty_like(x), []
        for t in range(T):
            rows = slice(t * N, (t + 1) * N)
            h = ln(x[rows], p, b + "ln_1")
            bias = None if table is None else (lambda hd: torch.cat([table[hd, 0, 0].expand(N),
                                                                     table[hd, 0, 1].expand(len(context))]))
            o, a = mha(h, torch.cat([h, h_ctx]), p[b + "attn.in_proj_weight"], p[b + "attn.in_proj_bias"],
                       p[b + "attn.out_proj.weight"], p[b + "attn.out_proj.bias"], heads, bias=bias)
            out[rows] = o
            cls_row = a[:, 0, 1:N].mean(0)
            seeds.append(cls_row.topk(int((N - 1) * TC_CONFIG["seed_token_a"])).indices)
        x = x + out
        gathered = [(x[t * N + 1 + int(j)], torch.ones(1)) for t in range(T) for j in seeds[t]]
        context = torch.stack([v for v, _ in tome(gathered, TC_CONFIG["tome_r"], TC_CONFIG["context_token_k"])])
        y = torch.cat([x, context])
        y = y + mlp(ln(y, p, b + "ln_2"), p, b + "mlp.")
        x, context = y[:T * N], y[T * N:]
        if i == level:
            context_out = ln(context, p, "visual.ln_post") @ p["visual.proj"]
    cls = ln(x[0::N], p, "visual.ln_post") @ p["visual.proj"]
    return F.normalize(cls.mean(0), dim=0), context_out


def reference_tcclip_text(p, extras, name: str, context, description: bool = False) -> torch.Tensor:
    """One class's text for one video: learned context in place of 'a photo of a', rewritten before the last
    text block by cross-attention to the video's context tokens. description: `name` is a whole prompt, put
    after the learned context, in a context of 77."""
    if description:
        tokens, L = open_clip.tokenize([f"a photo of a {name}"])[0], 77
    else:
        name = re.sub(r"([A-Z])", r" \1", name).strip().replace("_", " ")
        tokens, L = open_clip.tokenize([f"a photo of a {name}."], context_length=30)[0], 30
    x = p["token_embedding.weight"][tokens] + p["positional_embedding"][:L]
    x = torch.cat([x[:1], extras["prompt_learner.ctx"] + p["positional_embedding"][1:5], x[5:]])
    g = {k[len("text_encoder.prompt_generation_layer.0."):]: v for k, v in extras.items()
         if k.startswith("text_encoder.prompt_generation_layer.0.")}
    for i in range(TL):
        if i == TL - 1:
            ctx = x[1:5]
            ctx = ctx + mha(ln(ctx, g, "ln_1"), ln(context, g, "ln_1_kv"), g["attn.in_proj_weight"],
                            g["attn.in_proj_bias"], g["attn.out_proj.weight"], g["attn.out_proj.bias"], 8)[0]
            ctx = ctx + mlp(ln(ctx, g, "ln_2"), g, "mlp.")
            x = torch.cat([x[:1], ctx, x[5:]])
        x = text_block(x, p, f"transformer.resblocks.{i}.", causal(L))
    return F.normalize(ln(x, p, "ln_final")[int(tokens.argmax())] @ p["text_projection"], dim=0)


def reference_tcclip(peers, alpha: float, video=VIDEO, names=NAMES):
    """TC-CLIP's zero-shot evaluation: (logits [B, C] as log of the views' mean softmax, video features
    [B, V, D], text features [B, V, C, D])."""
    p, extras = tcclip_weights(peers, alpha), peers["extras"]
    B, V = video.shape[:2]
    probs, feats, texts = torch.zeros(B, len(names)), torch.zeros(B, V, EMBED), torch.zeros(B, V, len(names), EMBED)
    for b in range(B):
        for view in range(V):
            v, context = reference_tcclip_clip(p, extras, video[b, view])
            t = torch.stack([reference_tcclip_text(p, extras, n, context) for n in names])
            feats[b, view], texts[b, view] = v, t
            probs[b] += torch.softmax(p["logit_scale"].exp() * t @ v, dim=0) / V
    return probs.log(), feats, texts


# ---- MoTE ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("interpolate", [True, False])
def test_mote_logits_equal_its_published_evaluation(peers, interpolate):
    model, _ = converted(peers, "mote", interpolate=interpolate)
    expected, expected_feats = reference_mote(peers, interpolate)
    with torch.no_grad():
        logits = model.zero_shot_logits(VIDEO, NAMES)
        classes = model.class_features(NAMES)
        feats = model.mote(model.frame_features(VIDEO).flatten(0, 1), classes).reshape(*VIDEO.shape[:2], -1)
    assert logits.shape == (1, len(NAMES))
    assert F.cosine_similarity(feats, expected_feats, dim=-1).min() > 0.9999
    torch.testing.assert_close(logits, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())


def test_mote_interpolation_and_label_set_matter(peers):
    on, path = converted(peers, "mote")
    off, _ = converted(peers, "mote", interpolate=False)
    with torch.no_grad():
        assert (on.zero_shot_logits(VIDEO, NAMES) - off.zero_shot_logits(VIDEO, NAMES)).abs().max() > 1e-3
        # the modulation reads the label set: the same video scores "juggling" differently among other classes
        few = on.zero_shot_logits(VIDEO, NAMES[:5])[:, 0]
        more = on.zero_shot_logits(VIDEO, ["cooking", "surfing", "knitting", "fencing"] + NAMES[:1])[:, 4]
    assert (few - more).abs().max() > 1e-4
    record = json.loads(Path(str(path) + ".json").read_text())
    assert record["model"]["interpolation"] == {"original_weight": 0.01, "method": "MoTE's weight patch",
                                                "default_original_weight": 0.01, "applied": True}
    assert record["model"]["mote"] == {"width": EMBED, "layers": 2, "experts": 3, "positions": 77, "classes": 12,
                                       "heads": TW // 64}
    assert record["model"]["frames_per_clip"] == 8 and record["converted_from"]["from_base"] == "text tower"
    assert record["model"]["mean"] == list(conv.CLIP_MEAN)
    with pytest.raises(ValueError, match="at least 5 classes"):
        on.zero_shot_logits(VIDEO, NAMES[:4])


# ---- TC-CLIP -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [None, 0.7])
def test_tcclip_logits_equal_its_published_evaluation(peers, alpha):
    model, _ = converted(peers, "tcclip", **({} if alpha is None else {"wise_ft": alpha}))
    video = VIDEO
    expected, expected_feats, expected_texts = reference_tcclip(peers, alpha or 0.0, video)
    with torch.no_grad():
        logits = model.zero_shot_logits(video, NAMES)
        feats, context = model.encode_clips(video.flatten(0, 1))
        prefix = model.text_prefix(NAMES)
        texts = torch.stack([model.text_features(prefix, c) for c in context])
    assert F.cosine_similarity(feats, expected_feats.flatten(0, 1), dim=-1).min() > 0.9999
    assert F.cosine_similarity(texts, expected_texts.flatten(0, 1), dim=-1).min() > 0.9999
    torch.testing.assert_close(logits, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())


def test_tcclip_wise_ft_follows_its_code_and_is_recorded(peers):
    off, path_off = converted(peers, "tcclip")
    on, path_on = converted(peers, "tcclip", wise_ft=0.7)
    one, _ = converted(peers, "tcclip", wise_ft=1.0)
    key, base, tuned = "clip.visual.proj", peers["base"]["visual.proj"], peers["tuned"]["tcclip"]["visual.proj"]
    torch.testing.assert_close(off.state_dict()[key], tuned)                 # 0: no fusion (zero_shot.yaml)
    torch.testing.assert_close(on.state_dict()[key], 0.3 * base + 0.7 * tuned)
    torch.testing.assert_close(one.state_dict()[key], tuned)                 # 1: the checkpoint (not the docs' "vanilla")
    torch.testing.assert_close(on.state_dict()["tc.ctx"], peers["extras"]["prompt_learner.ctx"])  # never fused
    rec_on = json.loads(Path(str(path_on) + ".json").read_text())
    rec_off = json.loads(Path(str(path_off) + ".json").read_text())
    assert rec_on["model"]["interpolation"]["original_weight"] == pytest.approx(0.3)
    assert rec_off["model"]["interpolation"]["applied"] is False
    assert rec_off["model"]["frames_per_clip"] == FRAMES and rec_off["model"]["tcclip"]["context_token_k"] == 6
    assert rec_off["converted_from"]["dropped_keys"] == ["module.prompt_learner.token_prefix",
                                                        "module.prompt_learner.token_suffix"]
    assert "prompt_generation_layer_level" in rec_off["converted_from"]["settings_defaulted"]
    assert rec_off["model"]["std"] == pytest.approx([s / 255 for s in conv.IMAGENET_STD_255])
    with pytest.raises(conv.ConvertUsageError, match="--wise-ft 1.5: ALPHA is the checkpoint's weight"):
        converted(peers, "tcclip", wise_ft=1.5)


def test_the_text_before_the_prompt_generation_layer_is_computed_once_per_label_set(peers):
    model, _ = converted(peers, "tcclip")
    with torch.no_grad():
        prefix = model.text_prefix(NAMES)
        torch.testing.assert_close(model.logits_for(VIDEO, prefix), model.zero_shot_logits(VIDEO, NAMES))


# ---- one contract, and what a label-set-dependent model cannot give --------------------------------------
@pytest.mark.parametrize("fmt", ["mote", "tcclip"])
def test_checkpoint_reloads_and_refuses_encode_video(peers, fmt):
    model, path = converted(peers, fmt)
    loaded = load_checkpoint(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.zero_shot_logits(VIDEO, NAMES), model.zero_shot_logits(VIDEO, NAMES))
    with pytest.raises(LabelSetDependent, match="zero_shot_logits\\(frames, classnames\\)"):
        loaded.encode_video(VIDEO)


# ---- refusals ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("file,given,found", [("MoTE_tiny.pt", "tcclip", "MoTE"), ("MoTE_tiny.pt", "vificlip", "MoTE"),
                                              ("MoTE_tiny.pt", "openai", "MoTE"), ("tc_clip_tiny.pth", "mote", "TC-CLIP"),
                                              ("tc_clip_tiny.pth", "vificlip", "TC-CLIP"),
                                              ("tc_clip_tiny.pth", "ost", "TC-CLIP"), ("vificlip.pth", "tcclip", "ViFi-CLIP"),
                                              ("openvclip.pth", "mote", "Open-VCLIP")])
def test_every_wrong_pairing_is_refused_naming_what_was_found(peers, tmp_path, file, given, found):
    src = peers["root"] / file
    if not src.exists():
        peer_files.write_peer_file(file.split(".")[0], peers["base"], src)
    right = {"MoTE": "mote", "TC-CLIP": "tcclip", "ViFi-CLIP": "vificlip", "Open-VCLIP": "openvclip"}[found]
    with pytest.raises(conv.ConvertUsageError) as err:
        conv.convert(src, tmp_path / "out.safetensors", given, base=str(peers["root"] / "ViT-tiny.pt"))
    message = str(err.value)
    assert f"looks like a {found} checkpoint" in message and f"run again with --from {right}" in message
    assert message.count("\n") == 0 and not (tmp_path / "out.safetensors").exists()


def test_what_must_come_from_base_is_named(peers, tmp_path):
    for fmt, src, need in (("mote", "MoTE_tiny.pt", "whole text tower"), ("tcclip", "tc_clip_tiny.pth", "token embedding")):
        with pytest.raises(conv.ConvertUsageError, match=f"needs the original CLIP .*{need}.*pass --base"):
            conv.convert(peers["root"] / src, tmp_path / "out.safetensors", fmt)
    with pytest.raises(conv.ConvertUsageError, match="--wise-ft is TC-CLIP's .*MoTE has its own"):
        conv.convert(peers["root"] / "MoTE_tiny.pt", tmp_path / "out.safetensors", "mote", wise_ft=0.7)


def test_tcclip_config_is_read_without_omegaconf_and_nothing_else_is_trusted(peers, tmp_path):
    payload = conv.read_file(peers["root"] / "tc_clip_tiny.pth")
    assert conv.plain_config(payload["config"]) == TC_CONFIG
    assert "omegaconf" not in sys.modules

    class Gadget:
        def __reduce__(self):
            return print, ("unpickled a call",)

    with peer_files.OmegaConfStandIn() as dict_config:
        torch.save({"model": {"module.prompt_learner.ctx": torch.zeros(4, TW)},
                    "config": dict_config({"num_frames": 16, "hook": [Gadget()]})}, tmp_path / "evil.pth")
    with pytest.raises(conv.ConvertError, match="refused to unpickle the global builtins.print"):
        conv.convert(tmp_path / "evil.pth", tmp_path / "out.safetensors", "tcclip", base=str(peers["root"] / "ViT-tiny.pt"))


def test_strict_keys_for_the_peers_own_modules(peers, tmp_path):
    fusion = {k: v for k, v in peers["fusion"].items() if k != "transformer.resblocks.1.ln_2.bias"}
    fusion["transformer.resblocks.0.mlp.gate"] = torch.zeros(3)
    torch.save(peer_files.mote_payload(peers["tuned"]["mote"], fusion), tmp_path / "broken.pt")
    with pytest.raises(conv.ConvertError) as err:
        conv.convert(tmp_path / "broken.pt", tmp_path / "out.safetensors", "mote", base=str(peers["root"] / "ViT-tiny.pt"))
    message = str(err.value)
    assert "MoTE's own modules" in message and "missing keys (1): transformer.resblocks.1.ln_2.bias" in message
    assert "unexpected keys (1): transformer.resblocks.0.mlp.gate" in message


def test_cli_converts_both_and_says_what_it_applied(peers, tmp_path, capsys):
    from apclip_core.__main__ import main

    root, base = peers["root"], str(peers["root"] / "ViT-tiny.pt")
    assert main(["convert", "--from", "tcclip", str(root / "tc_clip_tiny.pth"), str(tmp_path / "t.safetensors"), "--base", base,
                 "--wise-ft", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "TC-CLIP" in out and "interpolation 0.3" in out and f"{FRAMES} frames per clip" in out
    assert main(["convert", "--from", "tcclip", str(root / "MoTE_tiny.pt"), str(tmp_path / "x.safetensors"), "--base", base]) == 2
    assert main(["convert", "--from", "mote", str(root / "MoTE_tiny.pt"), str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "looks like a MoTE checkpoint" in err and "pass --base" in err and "Traceback" not in err
    assert err.count("error:") == 2 and not (tmp_path / "x.safetensors").exists()


def test_tcclip_clip_length_is_fixed_at_build_and_can_be_stated(peers, tmp_path):
    model, _ = converted(peers, "tcclip")
    with pytest.raises(ValueError, match=f"built for clips of {FRAMES} frames.*--frames 3"):
        model.zero_shot_logits(VIDEO[:, :, :3], NAMES)
    three = conv.convert(peers["root"] / "tc_clip_tiny.pth", tmp_path / "t3.safetensors", "tcclip",
                         base=str(peers["root"] / "ViT-tiny.pt"), frames=3).eval()
    assert three.config["frames_per_clip"] == 3
    with torch.no_grad():
        assert three.zero_shot_logits(VIDEO[:, :, :3], NAMES).shape == (1, len(NAMES))


def test_a_split_is_evaluated_with_the_models_own_scoring(peers, bench_root):
    """evaluate_zero_shot: decoded benchmark videos scored by zero_shot_logits; the frame-feature path refuses."""
    from apclip_core.data.datasets import VideoDataset
    from apclip_core.data.protocols import bench_base_to_novel
    from apclip_core.data.views import ViewSpec
    from apclip_core.engine.evaluate import eval_subset, eval_transform_for, evaluate, evaluate_zero_shot
    from apclip_core.prompts.strategies import build_prompt_bank

    model, _ = converted(peers, "tcclip")
    split = eval_subset(bench_base_to_novel(bench_root).eval[1], 3)
    view = ViewSpec(FRAMES, 2, 1)
    result = evaluate_zero_shot(model, split, view=view, batch_size=2)
    assert (result.n_evaluated, result.n_failed, result.n_classes) == (3, 0, len(split.classnames))
    assert result.protocol["source_format"] == "tcclip" and result.protocol["frames"] == FRAMES
    dataset = VideoDataset(list(split.records), split.root, view=view, train=False,
                           transform=eval_transform_for(model, view.spatial_crops))
    items = [dataset[i] for i in range(3)]
    with torch.no_grad():
        logits = model.zero_shot_logits(torch.stack([it["video"] for it in items]), split.classnames)
    labels = torch.tensor([it["label"] for it in items])
    assert result.top1 == pytest.approx(100 * (logits.argmax(1) == labels).float().mean().item())
    with pytest.raises(LabelSetDependent, match="evaluate_zero_shot"):
        evaluate(model, split, build_prompt_bank("single", split.classnames), view=view)


def test_the_zoo_scores_them_as_their_own_evaluations_beside_their_published_numbers(peers, bench_root):
    from apclip_core.data.views import ViewSpec
    from apclip_core.paper import zoo

    models = [zoo.ZooModel("MoTE", converted(peers, "mote")[1]), zoo.ZooModel("TC-CLIP", converted(peers, "tcclip")[1])]
    run = zoo.evaluate_zoo(models, ["apclip_bench"], view=ViewSpec(3, 1, 1), max_videos=4, batch_size=2)
    assert [(r["model"], r["prompts"], r["similarity"], r["n_evaluated"]) for r in run.rows] == [
        ("MoTE", "set", "mean", 4), ("MoTE", "action_conditioned", "mean", 4), ("TC-CLIP", "single", "mean", 4),
        ("TC-CLIP", "action_conditioned", "mean", 4)]
    assert run.rows[1]["n_prompts"] > run.rows[1]["n_classes"]            # several descriptions per class
    assert run.models["TC-CLIP"]["built_for_frames"] == {"zoo": 3, "its own": FRAMES}   # recorded, not hidden
    assert run.models["MoTE"]["similarities"] == {"own": "zero_shot_logits"} and run.encoded["MoTE"] == 4
    table, gains = zoo.build_table(run, paper_dataset="HMDB-51", paper_backbone="ViT-B/16")
    own = table[table["prompts"] != "action_conditioned"].set_index("model")
    assert own["published"].to_dict() == {"MoTE": 55.8, "TC-CLIP": 54.2}
    assert "16 frames x 2 temporal views" in own["published by"]["TC-CLIP"] and not len(gains)
    assert set(table[table["prompts"] == "action_conditioned"]["note"]) == {zoo.NEW}


def test_tcclip_scores_each_description_through_its_per_video_text_path(peers):
    model, _ = converted(peers, "tcclip")
    prompts = [["a video of juggling, three balls in the air.", "a video of juggling, hands moving fast."],
               ["a video of skipping rope."], ["a video of a cartwheel on grass.", "a video of a cartwheel."],
               ["a video of playing guitar."], ["a video of rock climbing, chalk on the hands."]]
    video = VIDEO[:, :1]
    with torch.no_grad():
        logits = model.zero_shot_logits(video, NAMES, prompts=prompts)
    p = tcclip_weights(peers, 0.0)
    v, context = reference_tcclip_clip(p, peers["extras"], video[0, 0])
    classes = F.normalize(torch.stack([torch.stack([reference_tcclip_text(p, peers["extras"], t, context, True)
                                                    for t in texts]).mean(0) for texts in prompts]), dim=-1)
    expected = p["logit_scale"].exp() * classes @ v
    torch.testing.assert_close(logits[0], expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())


def test_prompts_take_the_place_of_motes_templates(peers):
    from apclip_core.model.mote import TEMPLATES

    model, _ = converted(peers, "mote")
    with torch.no_grad():
        own = model.zero_shot_logits(VIDEO, NAMES)
        given = model.zero_shot_logits(VIDEO, NAMES, prompts=[[t.format(n) for t in TEMPLATES] for n in NAMES])
        other = model.zero_shot_logits(VIDEO, NAMES, prompts=[[f"a video of {n}."] for n in NAMES])
    torch.testing.assert_close(given, own)
    assert (other - own).abs().max() > 1e-3
