"""Importing the peers' checkpoints (apclip_core.model.convert).

The checkpoints are random tiny CLIPs written in each peer's layout as their training scripts save
them (key names, prefixes, top-level entries, ViFi-CLIP's missing token embedding and its pickled yacs
config) by apclip_core.embedded.peer_files, the stand-ins the smoke zoo uses too. Each converted
model's frame features are compared with a reference forward written below from the peers' description, independently of apclip and open_clip: plain frame-wise CLIP for
ViFi-CLIP/OST/OpenAI, neighbour-frame attention for Open-VCLIP/FROSTER, with and without the
evaluation-time interpolation.
"""
from __future__ import annotations

import json
import math
import pickle
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from apclip_core.embedded import peer_files
from apclip_core.model import convert as conv
from apclip_core.model.similarity import frame_features, get_similarity, pooled_similarity
from apclip_core.model.video_clip import create_model_and_transforms, load_checkpoint

REPO = Path(__file__).resolve().parent.parent

# a tiny OpenAI CLIP: widths differ between towers and from the embedding, to catch transposed tensors
VW, VL, PATCH, IMG = 64, 2, 8, 32        # image tower: 2 blocks of width 64 (1 head), 4x4 patches
TW, TL, CTX, VOCAB = 128, 1, 77, 49408   # text tower: 1 block of width 128 (2 heads)
EMBED = 32
FRAMES = 4                               # Open-VCLIP/FROSTER clips in these tests (--frames 4)


# ---- tiny checkpoints in the peers' layouts ----------------------------------------------------------
def block_shapes(width: int) -> dict:
    return {"attn.in_proj_weight": (3 * width, width), "attn.in_proj_bias": (3 * width,),
            "attn.out_proj.weight": (width, width), "attn.out_proj.bias": (width,),
            "ln_1.weight": (width,), "ln_1.bias": (width,), "mlp.c_fc.weight": (4 * width, width),
            "mlp.c_fc.bias": (4 * width,), "mlp.c_proj.weight": (width, 4 * width), "mlp.c_proj.bias": (width,),
            "ln_2.weight": (width,), "ln_2.bias": (width,)}


def openai_shapes(vw=VW, vl=VL, patch=PATCH, img=IMG, tw=TW, tl=TL, ctx=CTX, vocab=VOCAB, embed=EMBED) -> dict:
    """OpenAI CLIP's state-dict names and shapes (the note's key lists)."""
    grid = img // patch
    shapes = {"visual.conv1.weight": (vw, 3, patch, patch), "visual.class_embedding": (vw,),
              "visual.positional_embedding": (grid * grid + 1, vw), "visual.ln_pre.weight": (vw,),
              "visual.ln_pre.bias": (vw,), "visual.ln_post.weight": (vw,), "visual.ln_post.bias": (vw,),
              "visual.proj": (vw, embed), "token_embedding.weight": (vocab, tw), "positional_embedding": (ctx, tw),
              "ln_final.weight": (tw,), "ln_final.bias": (tw,), "text_projection": (tw, embed), "logit_scale": ()}
    for i in range(vl):
        shapes.update({f"visual.transformer.resblocks.{i}.{k}": s for k, s in block_shapes(vw).items()})
    for i in range(tl):
        shapes.update({f"transformer.resblocks.{i}.{k}": s for k, s in block_shapes(tw).items()})
    return shapes


def random_clip(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in openai_shapes().items():
        if k.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", "ln_final.weight")):
            sd[k] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif k == "logit_scale":
            sd[k] = torch.tensor(math.log(1 / 0.07))
        else:
            sd[k] = 0.2 * torch.randn(shape, generator=g)
    return sd


def fine_tuned(base: dict, seed: int) -> dict:
    """The base plus a change big enough for interpolation to matter."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Base CLIP and one checkpoint per peer (written by the library's stand-in writers, in each peer's
    layout), with the state dicts they were made from."""
    root = tmp_path_factory.mktemp("peers")
    base = random_clip(0)
    tuned = {name: fine_tuned(base, seed) for seed, name in enumerate(["vificlip", "ost", "openvclip", "froster"], 1)}
    peer_files.write_peer_file("openai", base, root / "ViT-tiny-openai.pt")
    for name, sd in tuned.items():
        peer_files.write_peer_file(name, sd, root / f"{name}.pth")
    peer_files.write_peer_file("xclip", tuned["ost"], root / "xclip.pth")
    assert "yacs" not in sys.modules  # conversion must not need it
    return {"root": root, "base": base, "tuned": tuned, "base_path": root / "ViT-tiny-openai.pt"}


@pytest.fixture(scope="module")
def converted(files):
    """(format, interpolate) -> (converted VideoCLIP, checkpoint path), converted once per module."""
    cache = {}

    def get(fmt: str, interpolate: bool = True):
        if (fmt, interpolate) not in cache:
            src = files["base_path"] if fmt == "openai" else files["root"] / f"{fmt}.pth"
            dst = files["root"] / "out" / f"{fmt}-{interpolate}.safetensors"
            model = conv.convert(src, dst, fmt, base=str(files["base_path"]), interpolate=interpolate,
                                 frames=FRAMES if fmt in ("openvclip", "froster") else None)
            cache[fmt, interpolate] = (model.eval(), dst)
        return cache[fmt, interpolate]
    return get


# ---- the reference forward, from the peers' description --------------------------------------------
def layer_norm(x, p, name):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], eps=1e-5)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def reference_attention(h, p, b, num_frames, neighbours: bool):
    """Per frame, per head, by hand. neighbours: keys/values of frames t-1, t, t+1; a missing neighbour
    is L zero keys/values that still count in the softmax."""
    NT, L, W = h.shape
    heads, d = W // 64, 64
    q, k, v = (h @ p[b + "attn.in_proj_weight"].T + p[b + "attn.in_proj_bias"]).split(W, dim=-1)
    out = torch.empty_like(q)
    for i in range(NT):
        t = i % num_frames
        if neighbours:
            zero = torch.zeros(L, W)
            ks = [k[i - 1] if t > 0 else zero, k[i], k[i + 1] if t < num_frames - 1 else zero]
            vs = [v[i - 1] if t > 0 else zero, v[i], v[i + 1] if t < num_frames - 1 else zero]
            keys, values = torch.cat(ks), torch.cat(vs)
        else:
            keys, values = k[i], v[i]
        for hd in range(heads):
            cols = slice(hd * d, (hd + 1) * d)
            weights = torch.softmax(q[i, :, cols] @ keys[:, cols].T / math.sqrt(d), dim=-1)
            out[i, :, cols] = weights @ values[:, cols]
    return out @ p[b + "attn.out_proj.weight"].T + p[b + "attn.out_proj.bias"]


def reference_block(x, p, b, num_frames=1, neighbours=False):
    x = x + reference_attention(layer_norm(x, p, b + "ln_1"), p, b, num_frames, neighbours)
    h = quick_gelu(layer_norm(x, p, b + "ln_2") @ p[b + "mlp.c_fc.weight"].T + p[b + "mlp.c_fc.bias"])
    return x + h @ p[b + "mlp.c_proj.weight"].T + p[b + "mlp.c_proj.bias"]


def reference_frames(p: dict, clips: torch.Tensor, neighbours: bool, normalize: bool = True) -> torch.Tensor:
    """CLIP's image tower (OpenAI names without 'visual.'), clips [N, T, 3, S, S] -> L2-normalised [N, T, D]
    (normalize=False: the raw projected features)."""
    N, T = clips.shape[:2]
    x = F.conv2d(clips.reshape(N * T, *clips.shape[2:]), p["conv1.weight"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([p["class_embedding"].expand(N * T, 1, -1), x], dim=1) + p["positional_embedding"]
    x = layer_norm(x, p, "ln_pre")
    for i in range(VL):
        x = reference_block(x, p, f"transformer.resblocks.{i}.", T, neighbours)
    feats = layer_norm(x[:, 0], p, "ln_post") @ p["proj"]
    return (F.normalize(feats, dim=-1) if normalize else feats).reshape(N, T, -1)


def reference_text(p: dict, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP's causal text tower, pooled at the end-of-text token (the largest id)."""
    L = tokens.shape[1]
    x = p["token_embedding.weight"][tokens] + p["positional_embedding"][:L]
    mask = torch.full((L, L), float("-inf")).triu(1)
    for i in range(TL):
        b = f"transformer.resblocks.{i}."
        h = layer_norm(x, p, b + "ln_1")
        q, k, v = (h @ p[b + "attn.in_proj_weight"].T + p[b + "attn.in_proj_bias"]).split(TW, dim=-1)
        heads = [torch.softmax(q[..., s:s + 64] @ k[..., s:s + 64].transpose(1, 2) / 8 + mask, -1) @ v[..., s:s + 64]
                 for s in range(0, TW, 64)]
        x = x + torch.cat(heads, -1) @ p[b + "attn.out_proj.weight"].T + p[b + "attn.out_proj.bias"]
        h = quick_gelu(layer_norm(x, p, b + "ln_2") @ p[b + "mlp.c_fc.weight"].T + p[b + "mlp.c_fc.bias"])
        x = x + h @ p[b + "mlp.c_proj.weight"].T + p[b + "mlp.c_proj.bias"]
    x = layer_norm(x, p, "ln_final")[torch.arange(len(tokens)), tokens.argmax(-1)]
    return F.normalize(x @ p["text_projection"], dim=-1)


def peer_weights(files, fmt: str, interpolate: bool) -> dict:
    """What the peer evaluates with, in OpenAI names: its weights, its token embedding source, and
    its interpolation with the original CLIP (Open-VCLIP 0.5, OST 0.2 of the original)."""
    base = files["base"]
    tuned = dict(base if fmt == "openai" else files["tuned"][fmt])
    if fmt == "vificlip":
        tuned["token_embedding.weight"] = base["token_embedding.weight"]
    alpha = {"openvclip": 0.5, "ost": 0.2}.get(fmt) if interpolate else None
    return tuned if alpha is None else {k: alpha * base[k] + (1 - alpha) * v for k, v in tuned.items()}


def visual(p: dict) -> dict:
    return {k[len("visual."):]: v for k, v in p.items() if k.startswith("visual.")}


CLIPS = torch.randn(2, 2, FRAMES, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))  # [B, V, T, ...]
CASES = [("openai", True), ("vificlip", True), ("ost", True), ("ost", False), ("openvclip", True),
         ("openvclip", False), ("froster", True)]


# ---- round trips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,interpolate", CASES)
def test_frame_features_equal_the_reference_forward(files, converted, fmt, interpolate):
    model, _ = converted(fmt, interpolate)
    with torch.no_grad():
        ours = model.encode_video(CLIPS)                                       # [B, V*T, D]
    neighbours = fmt in ("openvclip", "froster")
    ref = reference_frames(visual(peer_weights(files, fmt, interpolate)), CLIPS.flatten(0, 1), neighbours)
    torch.testing.assert_close(ours, ref.reshape(ours.shape), atol=2e-5, rtol=1e-4)
    if neighbours:  # a frame-wise tower with the same weights is measurably different
        plain = reference_frames(visual(peer_weights(files, fmt, interpolate)), CLIPS.flatten(0, 1), False)
        assert (plain.reshape(ours.shape) - ours).abs().max() > 1e-3


@pytest.mark.parametrize("fmt,interpolate", [("vificlip", True), ("ost", True), ("openvclip", False)])
def test_text_features_equal_the_reference_forward(files, converted, fmt, interpolate):
    model, _ = converted(fmt, interpolate)
    tokens = model.tokenize(["a video of juggling", "a person doing a cartwheel on grass"])
    with torch.no_grad():
        ours = model.encode_text(tokens)
    torch.testing.assert_close(ours, reference_text(peer_weights(files, fmt, interpolate), tokens),
                               atol=2e-5, rtol=1e-4)


def test_vificlip_pooling_weights_frames_by_their_norm(files, converted):
    # ViFi-CLIP averages RAW frame features, then L2-normalises: "mean_raw", named by the recorded pooling
    model, path = converted("vificlip")
    recorded = json.loads(Path(str(path) + ".json").read_text())["model"]
    assert pooled_similarity(recorded) == pooled_similarity(model.config) == "mean_raw"
    assert [pooled_similarity(converted(f, False)[0].config) for f in ("ost", "openvclip")] == ["mean", "mean"]
    assert pooled_similarity({}) == "mean"                     # apclip's own checkpoints record no pooling
    with pytest.raises(ValueError, match="unknown video_pooling 'max'"):
        pooled_similarity({"video_pooling": "max"})
    weights = peer_weights(files, "vificlip", True)
    tokens = model.tokenize(["a video of juggling", "a video of skipping rope", "a person doing a cartwheel"])
    raw_ref = reference_frames(visual(weights), CLIPS.flatten(0, 1), False, normalize=False).reshape(2, -1, EMBED)
    expected = F.normalize(raw_ref.mean(dim=1), dim=-1) @ reference_text(weights, tokens).T   # [B, C]
    with torch.no_grad():
        raw = model.encode_video(CLIPS, normalize=False)                   # [B, V*T, D]
        prompts = model.encode_text(tokens)[:, None]                       # one prompt per class
        scores = {name: get_similarity(name)(frame_features(name, raw), prompts, None) for name in ("mean_raw", "mean")}
    torch.testing.assert_close(scores["mean_raw"], expected, atol=2e-5, rtol=1e-4)
    norms = raw.norm(dim=-1)
    assert norms.max() / norms.min() > 1.05                    # the frames' norms differ...
    assert (scores["mean_raw"] - scores["mean"]).abs().max() > 1e-3   # ...so the two poolings differ


def test_interpolation_changes_the_weights_and_is_recorded(files, converted):
    on, path_on = converted("openvclip", True)
    off, path_off = converted("openvclip", False)
    key = "clip.visual.proj"
    tuned, base = files["tuned"]["openvclip"]["visual.proj"], files["base"]["visual.proj"]
    torch.testing.assert_close(off.state_dict()[key], tuned)
    torch.testing.assert_close(on.state_dict()[key], 0.5 * base + 0.5 * tuned)
    record_on = json.loads(Path(str(path_on) + ".json").read_text())
    record_off = json.loads(Path(str(path_off) + ".json").read_text())
    assert record_on["model"]["interpolation"]["original_weight"] == 0.5
    assert record_on["converted_from"]["interpolation"]["applied"] is True
    assert record_off["model"]["interpolation"]["original_weight"] is None
    assert record_on["model"]["expand_temporal_view"] == FRAMES


def test_checkpoint_records_the_source(files, converted):
    _, path = converted("vificlip")
    record = json.loads(Path(str(path) + ".json").read_text())
    assert record["converted_from"]["token_embedding_from_base"] is True
    assert record["converted_from"]["dropped_keys"] == ["module.prompt_learner.token_prefix",
                                                        "module.prompt_learner.token_suffix"]
    assert record["model"]["video_pooling"] == "mean_then_l2"
    assert record["model"]["quick_gelu"] is True and record["model"]["expand_temporal_view"] == 0
    _, path = converted("froster")
    record = json.loads(Path(str(path) + ".json").read_text())
    assert sorted(record["converted_from"]["dropped_keys"]) == [
        "projector_t.0.weight", "projector_t.2.weight", "projector_v.0.weight", "projector_v.2.weight"]


class Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchscript_file(sd: dict, path: Path) -> Path:
    """A TorchScript archive holding `sd` under the same names, as OpenAI's released ViT-B-16.pt does."""
    root = Holder()
    for key, value in sd.items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, Holder())
            module = getattr(module, part)
        module.register_buffer(leaf, value.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(root).save(str(path))
    return path


def test_base_can_be_openai_torchscript(files, converted, tmp_path):
    jit = torchscript_file({**files["base"], "input_resolution": torch.tensor(IMG)}, tmp_path / "ViT-tiny.pt")
    model = conv.convert(files["root"] / "vificlip.pth", tmp_path / "out.pt", "vificlip", base=str(jit)).eval()
    torch.testing.assert_close(model.state_dict()["clip.token_embedding.weight"], files["base"]["token_embedding.weight"])
    reference, _ = converted("vificlip")
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(CLIPS), reference.encode_video(CLIPS))


def test_converted_checkpoint_loads_in_a_fresh_registry(converted):
    """load_checkpoint rebuilds the generated architecture from the checkpoint alone."""
    import open_clip

    model, path = converted("openvclip", False)
    name = model.config["model_name"]
    assert name.startswith("apclip-import-")
    open_clip.factory._MODEL_CONFIGS.pop(name)   # as in a new process
    loaded = load_checkpoint(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_video(CLIPS), model.encode_video(CLIPS))
    # training's starting point: `pretrained: <converted checkpoint>`
    started, train_tf, _ = create_model_and_transforms("apclip-tiny", pretrained=str(path))
    assert started.config["model_name"] == name and started.expand_temporal_view == FRAMES


def test_clip_length_must_match_the_neighbour_frame_attention(converted):
    model, _ = converted("openvclip", False)
    with pytest.raises(ValueError, match=f"--frames {FRAMES}"):
        model.encode_video(CLIPS[:, :, :3])


# ---- pixels ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["vificlip", "openvclip"])
def test_the_transform_uses_the_source_normalisation(converted, fmt):
    import numpy as np

    from apclip_core.engine.evaluate import eval_transform_for

    _, path = converted(fmt)
    model, _, eval_tf = create_model_and_transforms(checkpoint=path)
    pixel = np.array([200, 100, 30], dtype=np.uint8)
    video = np.broadcast_to(pixel, (FRAMES, 40, 48, 3)).copy()
    for tf in (eval_tf, eval_transform_for(model, 1)):
        out = tf(video)[0, 0, :, 0, 0]
        if fmt == "vificlip":   # ImageNet statistics on the 0-255 scale
            expected = (torch.tensor([200., 100., 30.]) - torch.tensor(conv.IMAGENET_MEAN_255)) / torch.tensor(
                conv.IMAGENET_STD_255)
        else:                   # CLIP's on 0-1
            expected = (torch.tensor([200., 100., 30.]) / 255 - torch.tensor(conv.CLIP_MEAN)) / torch.tensor(
                conv.CLIP_STD)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


# ---- refusals ----------------------------------------------------------------------------------------
def test_strict_key_check_lists_missing_and_unexpected_keys(files, tmp_path):
    state = {"model." + k: v for k, v in files["tuned"]["openvclip"].items() if k != "ln_final.bias"}
    state["model.visual.transformer.resblocks.0.attn.extra_gate"] = torch.zeros(VW)
    torch.save({"model_state": state}, tmp_path / "broken.pth")
    with pytest.raises(conv.ConvertError) as err:
        conv.convert(tmp_path / "broken.pth", tmp_path / "out.pt", "openvclip", interpolate=False)
    message = str(err.value)
    assert "broken.pth" in message
    assert "missing keys (1): ln_final.bias" in message
    assert "unexpected keys (1): visual.transformer.resblocks.0.attn.extra_gate" in message
    assert not list(tmp_path.glob("out*"))


@pytest.mark.parametrize("fmt,given,right", [("vificlip", "openvclip", "vificlip"), ("ost", "vificlip", "ost"),
                                              ("vificlip", "ost", "vificlip"), ("froster", "openvclip", "froster"),
                                              ("openvclip", "openai", "openvclip")])
def test_a_wrong_from_is_caught(files, tmp_path, fmt, given, right):
    with pytest.raises(conv.ConvertUsageError, match=f"run again with --from {right}"):
        conv.convert(files["root"] / f"{fmt}.pth", tmp_path / "out.pt", given, base=str(files["base_path"]))


def test_xclip_and_unknown_files_are_refused_with_the_reason(files, tmp_path):
    with pytest.raises(conv.ConvertError, match="X-CLIP-style checkpoint .* cannot be loaded as one") as err:
        conv.convert(files["root"] / "xclip.pth", tmp_path / "out.pt", "vificlip", base=str(files["base_path"]))
    assert not isinstance(err.value, conv.ConvertUsageError)
    torch.save({"net": {"encoder.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(conv.ConvertError, match="not a checkpoint layout apclip knows .*top-level keys net"):
        conv.convert(tmp_path / "other.pth", tmp_path / "out.pt", "openai")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(conv.ConvertError, match="text.pth: not a PyTorch checkpoint"):
        conv.convert(tmp_path / "text.pth", tmp_path / "out.pt", "openai")


class Gadget:
    """A pickle that calls a function when loaded (harmless here: print)."""

    def __reduce__(self):
        return print, ("unpickled a call",)


def test_the_unpickler_refuses_any_other_global(files, tmp_path, capsys):
    with peer_files.YacsStandIn() as CfgNode:  # a yacs file: weights_only fails and the restricted unpickler reads it
        payload = peer_files.trainer_payload(peer_files.vificlip_layout(files["tuned"]["ost"], with_tokens=True),
                                             CfgNode)
        payload["config"]["HOOK"] = Gadget()
        torch.save(payload, tmp_path / "evil.pth")
    with pytest.raises(conv.ConvertError, match="refused to unpickle the global builtins.print"):
        conv.convert(tmp_path / "evil.pth", tmp_path / "out.pt", "vificlip", base=str(files["base_path"]))
    with pytest.raises(pickle.UnpicklingError):  # and the yacs file is indeed beyond weights_only
        torch.load(files["root"] / "vificlip.pth", weights_only=True)
    assert "unpickled a call" not in capsys.readouterr().out


def test_missing_base_is_a_usage_error_that_says_what_to_pass(files, tmp_path):
    with pytest.raises(conv.ConvertUsageError, match="never saves the text token embedding .*; pass --base"):
        conv.convert(files["root"] / "vificlip.pth", tmp_path / "out.pt", "vificlip")
    with pytest.raises(conv.ConvertUsageError, match="--no-interpolate"):
        conv.convert(files["root"] / "ost.pth", tmp_path / "out.pt", "ost")
    with pytest.raises(conv.ConvertUsageError, match="--frames applies to Open-VCLIP/FROSTER"):
        conv.convert(files["root"] / "ost.pth", tmp_path / "out.pt", "ost", interpolate=False, frames=8)


def test_architecture_is_read_from_shapes_only():
    meta = {k: torch.empty(s, device="meta") for k, s in openai_shapes(768, 12, 16, 224, 512, 12, 77, 49408, 512).items()}
    cfg = conv.infer_architecture(meta)
    assert conv.model_name_for(cfg) == "ViT-B-16"
    meta = {k: torch.empty(s, device="meta") for k, s in openai_shapes(128, 3, 16, 48, 64, 2, 16, 500, 24).items()}
    cfg = conv.infer_architecture(meta)
    assert (cfg["vision_cfg"]["image_size"], cfg["vision_cfg"]["patch_size"], cfg["vision_cfg"]["layers"],
            cfg["text_cfg"]["context_length"], cfg["text_cfg"]["vocab_size"], cfg["embed_dim"]) == (48, 16, 3, 16, 500, 24)
    assert conv.model_name_for(cfg).startswith("apclip-import-w128-l3-p16-i48-")


# ---- the command line --------------------------------------------------------------------------------
def test_cli_exit_codes_and_messages(files, tmp_path, capsys):
    from apclip_core.__main__ import main

    root, base = files["root"], str(files["base_path"])
    assert main(["convert", "--from", "froster", str(root / "froster.pth"), str(tmp_path / "f.pt"),
                 "--frames", str(FRAMES)]) == 0
    # DST named .pt: written as safetensors, and the message names the file written
    assert f"wrote {tmp_path / 'f.safetensors'} (" in capsys.readouterr().out
    assert (tmp_path / "f.safetensors.json").is_file() and not (tmp_path / "f.pt").exists()
    assert main(["convert", "--from", "openvclip", str(root / "vificlip.pth"), str(tmp_path / "x.pt")]) == 2
    assert main(["convert", "--from", "vificlip", str(root / "xclip.pth"), str(tmp_path / "x.pt"), "--base", base]) == 1
    assert main(["convert", "--from", "openai", str(tmp_path / "nothing.pt"), str(tmp_path / "x.pt")]) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["convert", "--from", "clip4clip", str(root / "froster.pth"), str(tmp_path / "x.pt")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "vificlip.pth looks like a ViFi-CLIP checkpoint" in err and "run again with --from vificlip" in err
    assert "xclip.pth is an X-CLIP-style checkpoint" in err and "nothing.pt: no such file" in err
    assert "invalid choice: 'clip4clip'" in err and "Traceback" not in err
    assert err.count("error:") == 4  # one message per failed command


# ---- used by classify and evaluate ---------------------------------------------------------------------
def test_classify_and_evaluate_accept_a_converted_checkpoint(converted, bench_root):
    from apclip_core.classify import classify
    from apclip_core.data.protocols import bench_base_to_novel
    from apclip_core.data.views import ViewSpec
    from apclip_core.engine.evaluate import eval_subset, evaluate
    from apclip_core.prompts.strategies import build_prompt_bank

    _, path = converted("openvclip", False)
    split = eval_subset(bench_base_to_novel(bench_root).eval[1], 3)
    result = classify(split.root / split.records[0].path, ["juggling", "skipping rope", "blorping"], checkpoint=path,
                      num_frames=FRAMES, similarity="mean", generate=False)
    assert len(result.ranking) == 3 and len(result.per_frame) == FRAMES
    scored = evaluate(load_checkpoint(path), split, build_prompt_bank("single", split.classnames), similarity="maka",
                      view=ViewSpec(FRAMES, 1, 1))
    assert scored.n_evaluated == 3 and scored.n_failed == 0


def test_heads_and_activation_default_to_openais_and_can_be_stated(files, converted, tmp_path, capsys):
    """Shapes cannot tell the head count nor the activation: OpenAI's convention (heads of 64, QuickGELU) unless
    --heads / --no-quick-gelu state another (a CLIP that is not OpenAI's); either way recorded in DST.json."""
    from apclip_core.__main__ import main

    _, path = converted("openai")
    record = json.loads(Path(str(path) + ".json").read_text())["converted_from"]
    assert (record["heads"], record["quick_gelu"], record["heads_and_activation_stated"]) == ([VW // 64, TW // 64], True, False)
    src, dst = str(files["base_path"]), tmp_path / "stated.safetensors"
    assert main(["convert", "--from", "openai", src, str(dst), "--heads", "2,4", "--no-quick-gelu"]) == 0
    assert "heads 2/4, GELU" in capsys.readouterr().out
    stated = load_checkpoint(dst)
    assert stated.config["quick_gelu"] is False
    assert [stated.clip.visual.transformer.resblocks[0].attn.num_heads,
            stated.clip.transformer.resblocks[0].attn.num_heads] == [2, 4]
    assert json.loads(Path(str(dst) + ".json").read_text())["converted_from"]["heads"] == [2, 4]
    with pytest.raises(conv.ConvertUsageError, match="width 64 does not split into 3 heads"):
        conv.convert(files["base_path"], tmp_path / "x.pt", "openai", heads=3)
    with pytest.raises(SystemExit):
        main(["convert", "--from", "openai", src, str(tmp_path / "x.pt"), "--heads", "two"])
    assert "--heads: expected N or N,M" in capsys.readouterr().err


def test_evaluate_and_classify_default_to_the_similarity_of_the_recorded_pooling(converted, bench_root, tmp_path,
                                                                                  capsys):
    """A converted ViFi-CLIP checkpoint is scored as its authors pool (mean_raw) unless --similarity says
    otherwise, in the library, the CLI and classify, and every output says which similarity and why."""
    from apclip_core.classify import classify
    from apclip_core.data.protocols import bench_base_to_novel
    from apclip_core.data.views import ViewSpec
    from apclip_core.engine import evaluate as ev
    from apclip_core.model.similarity import default_similarity
    from apclip_core.prompts.strategies import build_prompt_bank

    model, path = converted("vificlip")
    split = ev.eval_subset(bench_base_to_novel(bench_root).eval[1], 2)
    bank, view = build_prompt_bank("single", split.classnames), ViewSpec(FRAMES, 1, 1)
    default, given = ev.evaluate_variants(model, split, [(bank, None), (bank, "maka")], view=view)
    assert default.protocol["similarity"] == "mean_raw" and given.protocol["similarity"] == "maka"
    assert "recorded video pooling mean_then_l2" in default.protocol["similarity_chosen_by"]
    assert given.protocol["similarity_chosen_by"] == "given"
    assert default_similarity({})[0] == "maka"  # apclip's own checkpoints record no pooling: the paper's MAKA

    out = tmp_path / "eval.json"
    from apclip_core.engine import evaluate_cli

    assert evaluate_cli.main(["--checkpoint", str(path), "--protocol", "bench_base_to_novel", "--protocol-arg",
                    f"root={bench_root}", "--frames", str(FRAMES), "--temporal-views", "1", "--spatial-crops", "1",
                    "--max-videos", "2", "--out", str(out)]) == 0
    assert "similarity: mean_raw (the checkpoint's recorded video pooling mean_then_l2" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["similarity"] == "mean_raw" and {r["protocol"]["similarity"] for r in data["results"]} == {"mean_raw"}

    video, actions = split.root / split.records[0].path, ["juggling", "skipping rope", "blorping"]
    chosen = classify(video, actions, checkpoint=path, num_frames=FRAMES, generate=False)
    as_given = classify(video, actions, checkpoint=path, num_frames=FRAMES, generate=False, similarity="mean_raw")
    assert chosen.similarity == "mean_raw" and chosen.to_dict()["similarity_chosen_by"].startswith("the checkpoint's")
    assert chosen.ranking == as_given.ranking and as_given.similarity_chosen_by == "given"
    assert classify(video, actions, checkpoint=path, num_frames=FRAMES, generate=False,
                    similarity="maka").similarity == "maka"  # an explicit similarity still wins

    # fine-tuned from it by apclip: scored as trained, not with the pooling of the weights it started from
    from apclip_core.model.video_clip import load_checkpoint, save_checkpoint

    tuned = save_checkpoint(model, tmp_path / "tuned.pt", train_config={"similarity": "maka"})
    assert default_similarity(load_checkpoint(tuned).config) == ("maka", "the similarity the checkpoint was trained with")


# ---- one scoring contract: zero_shot_logits as each peer's own zero-shot evaluation ----------------------
OPENVCLIP_SET = [f"{p} {f}." for p in ("a photo of", "a video of", "a example of", "a demonstration of")
                 for f in ("{}", "a person {}", "a person using {}", "a person doing {}", "a person during {}",
                           "a person performing {}", "a person practicing {}")]
OWN_TEXT = {"openai": ["{}"], "vificlip": ["a photo of a {}."], "ost": ["a photo of a {}."],
            "openvclip": OPENVCLIP_SET, "froster": OPENVCLIP_SET}


@pytest.mark.parametrize("fmt,interpolate", [("openai", True), ("vificlip", True), ("ost", True), ("openvclip", True),
                                             ("froster", True)])
def test_zero_shot_logits_score_as_each_peer_evaluates(files, converted, fmt, interpolate):
    """Its class text (templates L2, averaged, L2), its frame pooling per view, logit_scale.exp(), views averaged."""
    import open_clip

    model, _ = converted(fmt, interpolate)
    weights = peer_weights(files, fmt, interpolate)
    names = ["juggling", "skipping rope", "cartwheel"]
    classes = F.normalize(torch.stack([reference_text(weights, open_clip.tokenize([t.format(n) for t in OWN_TEXT[fmt]]))
                                       .mean(0) for n in names]), dim=-1)
    raw = reference_frames(visual(weights), CLIPS.flatten(0, 1), fmt in ("openvclip", "froster"), normalize=False)
    if fmt == "vificlip":                      # mean of raw frame features, then L2
        videos = F.normalize(raw.mean(1), dim=-1)
    elif fmt in ("openvclip", "froster"):      # the mean of the frames' cosines
        videos = F.normalize(raw, dim=-1).mean(1)
    else:                                      # L2 per frame, mean, L2
        videos = F.normalize(F.normalize(raw, dim=-1).mean(1), dim=-1)
    expected = (weights["logit_scale"].exp() * videos @ classes.T).reshape(CLIPS.shape[0], CLIPS.shape[1], -1).mean(1)
    with torch.no_grad():
        logits = model.zero_shot_logits(CLIPS, names)
    torch.testing.assert_close(logits, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())
