"""Open-vocabulary use (`apclip_core.classify`): one video and any list of action names -> ranked actions.

    >>> from apclip_core import classify
    >>> result = classify("clip.mp4", ["juggling", "skipping rope"], checkpoint="runs/k400/checkpoint.safetensors")
    >>> result.ranking[:3]          # [(action, score), ...] best first
    >>> result.per_frame[0][:5]     # the top prompts of frame 0: [(action, prompt, score), ...]

Action-conditioned prompts come from the shipped prompt files (prompts/*.json) when they know the
name, else from the prompt generator when one is configured (an OpenAI-compatible server or
OPENAI_API_KEY), else the single prompt "a video of {action}" is used and the result says so.
`prompt_sets=["k400"]` searches only the sets named: sets of different datasets are written in different
styles, and a ranking across them can favour one set's names (`prompt_report` says which set each name used).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from apclip_core import paths
from apclip_core.data.video_io import BACKENDS

log = logging.getLogger(__name__)


@dataclass
class ClassifyResult:
    video: str
    ranking: list[tuple[str, float]]                   # (action, similarity), best first
    per_frame: list[list[tuple[str, str, float]]]      # per frame: (action, prompt, cosine), best first
    prompt_sources: dict[str, str]                     # action -> where its prompts came from
    similarity: str
    notes: list[str] = field(default_factory=list)
    similarity_chosen_by: str = "given"                # or why the default was taken (similarity.default_similarity)

    def to_dict(self) -> dict:
        return {"video": self.video, "similarity": self.similarity, "similarity_chosen_by": self.similarity_chosen_by,
                "ranking": self.ranking,
                "per_frame": self.per_frame, "prompt_sources": self.prompt_sources, "notes": self.notes}


def _key(name: str) -> str:
    """Compare class names across datasets' spellings: 'ApplyEyeMakeup' == 'apply eye makeup'."""
    from apclip_core.prompts.bank import readable_name

    return re.sub(r"[^a-z0-9]+", " ", readable_name(name).lower()).strip()


NOT_PROMPT_SETS = {"attribute_graph.json", "llm_prompts.json"}


def shipped_prompt_sets() -> dict[str, Path]:
    """The prompt sets shipped in prompts/, by name ('k400' -> prompts/k400.json)."""
    return {p.stem: p for p in sorted(paths.prompts_dir().glob("*.json")) if p.name not in NOT_PROMPT_SETS}


def prompt_search_order(prompt_files: Optional[Sequence[Path]] = None,
                        prompt_sets: Optional[Sequence[str]] = None) -> list[Path]:
    """Where classify looks for a name's prompts, first match wins: the files given, then the shipped
    sets named (`prompt_sets`, e.g. ["k400"]); when neither is given, every shipped set (prompts/*.json,
    alphabetical), then the complete sets a user generated (paths.user_prompts_dir(); *.partial.json never)."""
    if isinstance(prompt_sets, str):  # one set's name, as `papermill -p prompt_sets k400` passes it
        prompt_sets = [prompt_sets]
    if prompt_files is not None or prompt_sets is not None:
        shipped = shipped_prompt_sets()
        unknown = [s for s in prompt_sets or () if s not in shipped]
        if unknown:
            from apclip_core.errors import UserError

            raise UserError(f"unknown prompt set {', '.join(map(repr, unknown))}; shipped sets: {', '.join(shipped)}")
        return [Path(p) for p in prompt_files or ()] + [shipped[s] for s in prompt_sets or ()]
    generated = sorted(p for p in paths.user_prompts_dir().glob("*.json") if not p.name.endswith(".partial.json"))
    return list(shipped_prompt_sets().values()) + generated


def read_prompt_classes(path: Path) -> dict:
    """The "classes" of a prompt file the user named; a file that cannot be read as one is a UserError
    naming it (a set nobody named, found by searching, is skipped instead: see _shipped_classes)."""
    from apclip_core.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"prompt file {path} is a directory; name a prompt file (JSON), e.g. prompts/k400.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"prompt file {path} not found; the shipped sets are chosen by name with --prompt-set: "
                        f"{', '.join(shipped_prompt_sets())}") from None
    except OSError as err:
        raise UserError(f"prompt file {path} cannot be read ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise UserError(f"prompt file {path} is not valid JSON (line {err.lineno}: {err.msg}); it may be cut "
                        f"short: write it again with `python -m apclip_core prompts`") from None
    except UnicodeDecodeError:
        raise UserError(f"prompt file {path} is not a text (JSON) file") from None
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, dict):
        raise UserError(f"prompt file {path} is not a prompt file: expected a JSON object with \"classes\" (as "
                        f"`python -m apclip_core prompts` writes), got a {type(data).__name__}")
    if not any(isinstance(e, dict) and e.get("action_conditioned") for e in classes.values()):
        raise UserError(f"prompt file {path} holds no action-conditioned prompts ({len(classes)} classes)")
    return classes


def _shipped_classes(prompt_files: Optional[Sequence[Path]] = None,
                     prompt_sets: Optional[Sequence[str]] = None) -> list[tuple[Path, str]]:
    """(prompt file, class name) for every class with action-conditioned prompts, in search order."""
    named = set(map(Path, prompt_files or ()))
    out = []
    for path in prompt_search_order(prompt_files, prompt_sets):
        if path in named:
            classes = read_prompt_classes(path)
        else:
            try:
                classes = json.loads(Path(path).read_text()).get("classes", {})
            except (OSError, json.JSONDecodeError, AttributeError):
                log.warning("%s: not a readable prompt file; skipped", path)
                continue
        out += [(Path(path), name) for name, entry in classes.items()
                if isinstance(entry, dict) and entry.get("action_conditioned")]
    return out


def find_shipped_prompts(actions: Sequence[str], prompt_files: Optional[Sequence[Path]] = None,
                         classes: Optional[list[tuple[Path, str]]] = None) -> dict[str, tuple[Path, str]]:
    """action -> (prompt file, class name in that file) for every action a shipped file knows; names
    match across case, CamelCase and underscores ('juggling_balls' finds 'JugglingBalls')."""
    wanted = {_key(a): a for a in actions}
    found: dict[str, tuple[Path, str]] = {}
    for path, name in classes if classes is not None else _shipped_classes(prompt_files):
        action = wanted.get(_key(name))
        if action and action not in found:
            found[action] = (path, name)
    return found


def close_shipped_names(action: str, prompt_files: Optional[Sequence[Path]] = None, n: int = 3,
                        classes: Optional[list[tuple[Path, str]]] = None) -> list[str]:
    """Shipped class names close to `action` ('juggling' -> 'JugglingBalls'), best first, as
    'Name (file.json)': what the user may have meant, since a near miss silently gets the single prompt."""
    import difflib

    from apclip_core.prompts.validate import FUNCTION_WORDS

    def stems(text: str) -> set[str]:  # 'riding a bike' ~ 'ride bike': rid, bik
        return {w[:3] for w in text.split() if len(w) > 2 and w not in FUNCTION_WORDS}

    key = _key(action)
    own = stems(key)
    scored = {}
    for path, name in classes if classes is not None else _shipped_classes(prompt_files):
        other = _key(name)
        shared = own & stems(other)
        if not shared:  # a suggestion shares a content word's stem, not just letters
            continue
        score = difflib.SequenceMatcher(None, key, other).ratio() + 0.5 * len(shared) / max(1, len(own))
        label = f"{name} ({path.name})"
        if score >= 0.7 and score > scored.get(label, 0):
            scored[label] = score
    return sorted(scored, key=lambda k: -scored[k])[:n]


def build_prompt_bank(actions: Sequence[str], *, prompt_files: Optional[Sequence[Path]] = None,
                      prompt_sets: Optional[Sequence[str]] = None,
                      generate: bool = True, generator_options: Optional[dict] = None):
    """A PromptBank over `actions` using the best prompts available for each name, and the source of each."""
    from apclip_core.prompts.bank import PromptBank

    shipped_classes = _shipped_classes(prompt_files, prompt_sets)
    shipped = find_shipped_prompts(actions, classes=shipped_classes)
    prompts: list[list[str]] = []
    sources: dict[str, str] = {}
    missing = [a for a in actions if a not in shipped]
    generated: dict[str, list[str]] = {}
    if missing and generate:
        generated = _generate_prompts(missing, generator_options or {})
    for action in actions:
        if action in shipped:
            path, name = shipped[action]
            # the prefix names the action as the user wrote it, not as the file spells it ('ApplyEyeMakeup')
            bank = PromptBank.from_prompt_file(path, [name], strategy="action_conditioned", prefix_names=[action])
            prompts.append(bank.prompts[0])
            shipped_set = path.parent.resolve() == paths.prompts_dir().resolve()
            sources[action] = f"shipped: {path.name}" if shipped_set else f"prompt file: {path}"
        elif action in generated:
            prompts.append(generated[action])
            sources[action] = "generated"
        else:
            prompts.append(PromptBank.single([action]).prompts[0])
            close = close_shipped_names(action, classes=shipped_classes)
            sources[action] = (f"single prompt {prompts[-1][0]!r} (no prompt set knows this name" +
                               (f"; did you mean {' or '.join(close)}?" if close else "") + ")")
    return PromptBank(classnames=list(actions), prompts=prompts, strategy="mixed"), sources


def _generate_prompts(actions: Sequence[str], options: dict) -> dict[str, list[str]]:
    """Ask the configured LLM for action-conditioned prompts of `actions`; {} when no generator is
    configured. Answers go through the generator's validation and cache; only complete classes return."""
    import os

    if not (options.get("base_url") or os.environ.get("OPENAI_API_KEY")):
        return {}
    from apclip_core.prompts import generate_prompt_file
    from apclip_core.prompts.bank import PromptBank

    key = hashlib.sha256(json.dumps([sorted(actions), sorted(options.items())]).encode()).hexdigest()[:16]
    out = paths.cache_dir() / "classify_prompts" / f"{key}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = generate_prompt_file("classify", list(actions), out, **options)
    except Exception as err:  # a dead server or a refused key: fall back, loudly
        log.warning("prompt generation failed (%s); falling back to the single prompt", err)
        return {}
    for action, problems in report.failed.items():
        log.warning("no valid prompts generated for %r: %s", action, problems)
    done = [a for a in actions if a not in report.failed]
    if not done or not out.exists():
        return {}
    bank = PromptBank.from_prompt_file(out, done, strategy="action_conditioned")
    return dict(zip(done, bank.prompts))


def check_action_names(actions: Sequence[str]) -> list[str]:
    """The names to rank: blanks refused, spacing and repeats folded, at least two left (UserError otherwise)."""
    from apclip_core.errors import UserError

    blank = [i for i, a in enumerate(actions) if not str(a).strip()]
    if blank:
        raise UserError(f"action names must not be blank (blank at position {', '.join(map(str, blank))} of "
                        f"{len(actions)}); quote multi-word names, e.g. --actions \"making sushi\" juggling")
    names = list(dict.fromkeys(" ".join(str(a).split()) for a in actions))
    if len(names) < 2:
        raise UserError(f"give at least two different action names to rank (got {names})")
    return names


def prompt_report(sources: dict[str, str]) -> list[str]:
    """What a person reads before the ranking: where each action's prompts come from (a near miss with
    what was meant), and a warning when prompts of different styles are ranked against each other."""
    width = max(map(len, sources))
    lines = ["prompts:"] + [f"  {action:<{width}}  {source}" for action, source in sources.items()]
    sets = sorted({s.split(": ", 1)[1] for s in sources.values() if s.startswith(("shipped: ", "prompt file: "))})
    single = [a for a, s in sources.items() if s.startswith("single")]
    if len(sets) > 1:
        lines.append(f"note: these prompts come from {len(sets)} sets ({', '.join(sets)}), written for different "
                     f"datasets in different styles: a set's style can lift its actions above the others; "
                     f"rank within one set: --prompt-set NAME (prompt_sets=[NAME] in Python)")
    if single and len(single) < len(sources):
        lines.append(f"note: {', '.join(single)} {'has' if len(single) == 1 else 'have'} a single prompt while the "
                     f"others have action-conditioned ones: their scores are not strictly comparable")
    return lines


def classify(video: Union[str, Path], actions, *, model=None, checkpoint: Optional[Union[str, Path]] = None,
             model_name: str = "ViT-B-16", pretrained: str = "openai", quick_gelu: Optional[bool] = None,
             prompt_files=None, prompt_sets: Optional[Sequence[str]] = None,
             prompt_sources: Optional[dict[str, str]] = None,
             num_frames: int = 8, temporal_views: int = 1, spatial_crops: int = 1,
             similarity: Optional[str] = None, top_prompts: int = 5, generate: bool = True,
             generator_options: Optional[dict] = None, backend: str = "auto") -> ClassifyResult:
    """Rank `actions` (names, or a PromptBank with its `prompt_sources`) for one video file.

    The model: `model`, or a fine-tuned `checkpoint`, or open_clip's `model_name` with `pretrained` (a tag
    or a local weights file; for a file, say `quick_gelu`: True for OpenAI's weights). similarity: None for
    the model's default (a converted checkpoint's recorded pooling, e.g. ViFi-CLIP's mean_raw; else maka).
    Prompts come from `prompt_files`, then the shipped sets named in `prompt_sets` (default: every set).
    Names, prompt files and sizes are checked before the model is built."""
    import torch
    import torch.nn.functional as F

    from apclip_core.data.views import ViewSpec, check_decode_fits, decode_video
    from apclip_core.engine.evaluate import eval_transform_for
    from apclip_core.model import video_clip as model_lib
    from apclip_core.model.similarity import default_similarity, frame_features, get_similarity
    from apclip_core.progress import say
    from apclip_core.prompts.bank import PromptBank

    if similarity:
        get_similarity(similarity)  # a wrong name is said before the model is built
    view = ViewSpec(num_frames, temporal_views, spatial_crops, backend)
    if isinstance(actions, PromptBank):
        bank = actions
        sources = prompt_sources or {c: f"given bank ({actions.strategy})" for c in actions.classnames}
    else:
        bank, sources = build_prompt_bank(check_action_names(actions), prompt_files=prompt_files,
                                          prompt_sets=prompt_sets, generate=generate,
                                          generator_options=generator_options)
    check_decode_fits(video, num_frames, temporal_views, spatial_crops)  # the decoded frames alone: before minutes of model loading
    if model is None:
        say(f"loading the model ({checkpoint or f'{model_name}, {pretrained} weights'})")
        model = (model_lib.load_checkpoint(checkpoint) if checkpoint
                 else model_lib.create_model(model_name, pretrained, quick_gelu=quick_gelu))
    model.eval()
    similarity, chosen_by = default_similarity(model.config, similarity)
    score_fn = get_similarity(similarity)

    notes = [f"{a}: {s}" for a, s in sources.items() if s.startswith("single")]
    if notes and not (generator_options or {}).get("base_url") and not os.environ.get("OPENAI_API_KEY"):
        notes.append("to generate action-conditioned prompts for names no shipped file knows: set OPENAI_API_KEY, "
                     "or pass --base-url http://host:port/v1 (any OpenAI-compatible server)")
    if getattr(model, "config", {}).get("model_name") == "apclip-tiny":
        notes.append("this model is the embedded benchmark's toy (apclip-tiny): it knows the benchmark's synthetic "
                     "actions, not real videos; pass a real checkpoint or the default ViT-B-16 for those")
    if not isinstance(actions, PromptBank):
        notes.append("prompt files searched, first match wins: "
                     + ", ".join(str(p) for p in prompt_search_order(prompt_files, prompt_sets)))

    check_decode_fits(video, num_frames, temporal_views, spatial_crops, image_size=model.config.get("image_size"))
    say(f"decoding {view.frames * view.temporal_views} frames of {video}")
    clips = decode_video(video, view, eval_transform_for(model, spatial_crops)).clips
    video_tensor = clips.unsqueeze(0)                                    # [1, V, T, 3, S, S]

    say(f"encoding the frames and {sum(map(len, bank.prompts))} prompts")
    with torch.no_grad():
        raw = model.encode_video(video_tensor, normalize=False)          # [1, Nv, D]
        frames = F.normalize(raw, dim=-1)                                # for the per-frame cosines
        encoded = bank.encode(model)
        scores = score_fn(frame_features(similarity, raw), encoded.feats, encoded.mask)[0]
        # per frame, every (class, prompt) cosine; padded prompts never rank
        cos = torch.einsum("nd,cpd->ncp", frames[0], encoded.feats).masked_fill(~encoded.mask, float("-inf"))

    order = scores.argsort(descending=True).tolist()
    ranking = [(bank.classnames[i], float(scores[i])) for i in order]
    per_frame = []
    flat = cos.flatten(1)
    n_prompts = cos.shape[2]
    for f in range(flat.shape[0]):
        top = flat[f].topk(min(top_prompts, int(encoded.mask.sum()))).indices.tolist()
        per_frame.append([(bank.classnames[i // n_prompts], bank.prompts[i // n_prompts][i % n_prompts],
                           float(flat[f, i])) for i in top])
    return ClassifyResult(video=str(video), ranking=ranking, per_frame=per_frame,
                          prompt_sources=sources, similarity=similarity, notes=notes,
                          similarity_chosen_by=chosen_by)


def _count(text: str) -> int:
    """argparse type of --frames, --views, --crops: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """classify's command line; light: building it (and --help) imports neither torch nor a model."""
    parser = argparse.ArgumentParser(
        prog="python -m apclip_core classify", description="Rank action names for one video.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Prompts per name: a prompt set (prompts/*.json; names match across case, CamelCase and "
               "underscores, and near misses are suggested), else an LLM (OPENAI_API_KEY, or --base-url), else the "
               "single prompt 'a video of {action}'. Where each name's prompts come from is said before the "
               "ranking. Without --checkpoint the model is open_clip's --model with --pretrained weights "
               "(downloaded once into the Hugging Face cache). Example: python -m apclip_core classify clip.mp4 "
               "--actions juggling \"skipping rope\" --prompt-set k400")
    parser.add_argument("video", type=Path, help="the video file (any container FFmpeg reads: mp4, avi, webm, ...)")
    parser.add_argument("--actions", nargs="+", required=True, default=argparse.SUPPRESS,
                        help="action names (quote multi-word names), at least two")
    parser.add_argument("--checkpoint", type=Path, default=argparse.SUPPRESS,
                        help="a fine-tuned apclip checkpoint: the checkpoint.safetensors a `train` run writes (or an older run's checkpoint.pt), or one "
                             "`convert` wrote (default: none, open_clip's --model)")
    parser.add_argument("--model", default="ViT-B-16", help="open_clip model name when no checkpoint is given")
    parser.add_argument("--pretrained", default="openai", help="open_clip pretrained tag or weights file")
    parser.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                        help="the weights' activation (OpenAI's CLIP: --quick-gelu); needed for a local weights "
                             "file (default: open_clip's registry)")
    sets = list(shipped_prompt_sets())
    parser.add_argument("--prompt-set", nargs="+", choices=sets, default=argparse.SUPPRESS, metavar="NAME",
                        help=f"search only these shipped prompt sets, in this order: {', '.join(sets)} "
                             f"(default: every set, alphabetical, then the sets you generated)")
    parser.add_argument("--prompts", type=Path, nargs="+", default=argparse.SUPPRESS, metavar="FILE",
                        help="prompt files of your own to search first (as `python -m apclip_core prompts` writes); "
                             "with neither this nor --prompt-set, every set is searched")
    parser.add_argument("--similarity", default=argparse.SUPPRESS,
                        help="maka | mean | mean_raw, or any registered similarity (default: the one matching the "
                             "video pooling a converted checkpoint records, e.g. ViFi-CLIP's mean_raw; else maka)")
    parser.add_argument("--frames", type=_count, default=8, help="frames sampled per view")
    parser.add_argument("--views", type=_count, default=1, help="temporal views")
    parser.add_argument("--crops", type=_count, default=1, help="spatial crops")
    parser.add_argument("--video-backend", default="auto", choices=list(BACKENDS),
                        help="decoder: auto (the faster one for the file's container), decord or pyav")
    parser.add_argument("--no-generate", action="store_true", help="never call an LLM for unknown names")
    parser.add_argument("--base-url", default=argparse.SUPPRESS,
                        help="OpenAI-compatible server for prompts of unknown names, e.g. http://localhost:8000/v1 "
                             "(default: OpenAI's, when OPENAI_API_KEY is set)")
    parser.add_argument("--llm-model", default=argparse.SUPPRESS,
                        help="LLM model name for prompt generation (default: the generator's)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from apclip_core.errors import ActivationUnstated
    from apclip_core.progress import say

    # everything the user typed is checked here, in seconds, before the model loads (minutes on a CPU)
    if not args.video.exists():
        parser.error(f"video not found: {args.video}")
    if args.video.is_dir():
        parser.error(f"{args.video} is a directory; give one video file")
    say(f"reading {args.video}, the names and their prompts")
    from apclip_core.data.video_io import VideoDecodeError, probe_video
    from apclip_core.data.views import check_decode_fits

    probe = probe_video(args.video, args.video_backend)
    if not probe["ok"]:
        raise VideoDecodeError(args.video, probe["error"])
    check_decode_fits(args.video, args.frames, args.views, args.crops)
    actions = check_action_names(args.actions)
    options = {k: v for k, v in {"base_url": getattr(args, "base_url", None),
                                 "model": getattr(args, "llm_model", None)}.items() if v}
    prompt_files, prompt_sets = getattr(args, "prompts", None), getattr(args, "prompt_set", None)
    bank, sources = build_prompt_bank(actions, prompt_files=prompt_files, prompt_sets=prompt_sets,
                                      generate=not args.no_generate, generator_options=options)
    # said before the ranking, on stderr under --json so that stdout stays one JSON document
    print("\n".join(prompt_report(sources)), file=sys.stderr if args.json else sys.stdout, flush=True)
    try:
        result = classify(args.video, bank, prompt_sources=sources, checkpoint=getattr(args, "checkpoint", None),
                          model_name=args.model, pretrained=args.pretrained,
                          quick_gelu=getattr(args, "quick_gelu", None),
                          similarity=getattr(args, "similarity", None), num_frames=args.frames,
                          temporal_views=args.views, spatial_crops=args.crops, backend=args.video_backend,
                          generator_options=options)
    except ActivationUnstated as err:  # a weights file whose activation is not stated: a usage error
        parser.error(str(err))
    result.notes.append("prompt files searched, first match wins: "
                        + ", ".join(str(p) for p in prompt_search_order(prompt_files, prompt_sets)))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    from apclip_core.model.similarity import said_why

    print(f"{result.video} (similarity {result.similarity}: {said_why(result.similarity_chosen_by)})")
    for rank, (action, score) in enumerate(result.ranking[:10], 1):
        print(f"{rank:>3}. {action:<30} {score:.4f}   [{result.prompt_sources.get(action, '')}]")
    if result.per_frame:
        print("frame 0, top prompts:")
        for action, prompt, score in result.per_frame[0]:
            print(f"     {score:.3f}  {prompt}")
    for note in result.notes:
        if not note.startswith(tuple(f"{a}: single" for a in sources)):  # said above, before the ranking
            print(f"note: {note}")
    return 0
