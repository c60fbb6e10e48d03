"""The paper's Figure 5 for one video (matplotlib), and an interactive frame-by-frame view for JupyterLab.

Layout (``render_figure5``), one column per sampled frame:

1. the frames as decoded (the model's crop drawn dashed, the actor's box in green when known);
2. the attention map (rollout by default, or the last layer's CLS attention) over the crop, with
   its peak marked - the point the pointing game scores;
3. the top-5 prompts (over every class's prompts) as horizontal bars with their CLIP match
   (cosine) to the right; consecutive frames with the same top-5 set share one chart, as in the
   paper; bar colour = the prompt's attribute group (Scene / Actor / Body), a bold label = a prompt
   of the true class;
4. MAKA's choices for the predicted class: the frame x prompt cosine matrix, with the prompt each
   frame picked (eq. 4, dot) and the frame each prompt picked (eq. 5, ring).

``interactive_view`` shows rows 2-3 for one frame at a time under an ipywidgets slider.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np

from apclip_core.interpret.explain import VideoExplanation

__all__ = ["render_figure5", "save_figure", "interactive_view", "attention_strip", "explore", "short_prompt",
           "GROUP_COLOURS"]

GROUP_COLOURS = {"scene": "#4c9a6a", "actor": "#d9822b", "body": "#3c78b4", "": "#8c8c8c"}
_PREFIX = re.compile(r"^a video of [^.]*\.\s*", re.IGNORECASE)


def short_prompt(text: str) -> str:
    """A prompt without its "a video of {action}. " prefix (the class is shown separately)."""
    return _PREFIX.sub("", text) or text


def _group(explanation: VideoExplanation, c: int, j: int) -> str:
    if explanation.attributes is None:
        return ""
    return explanation.attributes[c][j].split(".")[0]


def _draw_frame(ax, ex: VideoExplanation, t: int, *, crop: bool = True) -> None:
    ax.imshow(ex.frames[t], interpolation="nearest")
    h, w = ex.frames.shape[1:3]
    if crop:
        x0, x1, y1, y0 = ex.geometry.extent()
        ax.add_patch(_rect(x0, y0, x1, y1, "white", "--", 1.0))
    if ex.boxes is not None:
        b = ex.boxes[t]
        ax.add_patch(_rect(b[0], b[1], b[2], b[3], "#39e639", "-", 1.5))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _rect(x0, y0, x1, y1, colour, style, lw):
    from matplotlib.patches import Rectangle

    # boxes are in pixel-edge coordinates; imshow puts pixel centres at integers
    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linestyle=style, linewidth=lw)


def _draw_attention(ax, ex: VideoExplanation, t: int, kind: str) -> None:
    grey = ex.frames[t].mean(axis=2)
    ax.imshow(grey, cmap="gray", interpolation="nearest", vmin=0, vmax=255)
    m = ex._map(kind)[t]
    m = (m - m.min()) / (m.max() - m.min() + 1e-12)
    x0, x1, y1, y0 = ex.geometry.extent()
    ax.imshow(m, cmap="jet", alpha=0.5, extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5), interpolation="bilinear")
    if ex.boxes is not None:
        b = ex.boxes[t]
        ax.add_patch(_rect(b[0], b[1], b[2], b[3], "#39e639", "-", 1.5))
    px, py = ex.attention_peak(t, kind)
    ax.plot([px - 0.5], [py - 0.5], marker="x", color="white", markersize=9, markeredgewidth=2.5)
    ax.plot([px - 0.5], [py - 0.5], marker="x", color="black", markersize=7, markeredgewidth=1.2)
    h, w = ex.frames.shape[1:3]
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_bars(ax, ex: VideoExplanation, scored: list[tuple[int, int, float]], *, wrap: int, fontsize: float) -> None:
    """Horizontal bars, best on top; the prompt's text above its bar, the score right of it."""
    n = len(scored)
    top = max(s for _, _, s in scored)
    right = max(top, 1e-6) * 1.3
    for i, (c, j, s) in enumerate(scored):
        y = n - 1 - i
        ax.barh(y, s, height=0.38, color=GROUP_COLOURS.get(_group(ex, c, j), GROUP_COLOURS[""]), align="center")
        ax.text(s + right * 0.02, y, f"{s:.3f}", va="center", ha="left", fontsize=fontsize)
        label = f"[{ex.classnames[c]}] {short_prompt(ex.prompts[c][j])}"
        ax.text(0, y + 0.24, textwrap.fill(label, wrap, max_lines=2, placeholder=" ..."), va="bottom", ha="left",
                fontsize=fontsize * 0.92, fontweight="bold" if c == ex.label else "normal", linespacing=1.0)
    ax.set_xlim(0, right)
    ax.set_ylim(-0.6, n - 0.1 + 0.55)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=fontsize * 0.85)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def render_figure5(ex: VideoExplanation, path: Optional[str | Path] = None, *, attention: str = "rollout",
                   top_k: int = 5, maka_class: Optional[int] = None, column_width: float = 2.7,
                   fontsize: float = 10.0, title: Optional[str] = None):
    """The Figure 5 layout for one explained video; saved as <path>.png and <path>.pdf when path is given
    (suffix ignored). Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    T = ex.num_frames
    groups = ex.groups(top_k)
    choices = ex.maka_choices(maka_class)
    n_prompts = len(choices.prompts)
    fig = plt.figure(figsize=(column_width * T, 2.2 * 2 + 4.2 + 3.4), constrained_layout=True)
    grid = fig.add_gridspec(4, T, height_ratios=[2.0, 2.0, 4.2, 3.0])
    for t in range(T):
        ax = fig.add_subplot(grid[0, t])
        _draw_frame(ax, ex, t)
        ax.set_title(f"frame {ex.frame_indices[t]}", fontsize=fontsize + 1)
        ax = fig.add_subplot(grid[1, t])
        _draw_attention(ax, ex, t, attention)
        if t == 0:
            ax.set_ylabel({"rollout": "attention rollout", "last": "last-layer CLS attn."}[attention],
                          fontsize=fontsize)
    for start, end in groups:
        ax = fig.add_subplot(grid[2, start:end])
        span = end - start
        _draw_bars(ax, ex, ex.group_scores(start, end, top_k), wrap=int(34 * span * column_width / 2.7), fontsize=fontsize)
        frames = (f"frame {ex.frame_indices[start]}" if span == 1
                  else f"frames {ex.frame_indices[start]}-{ex.frame_indices[end - 1]}")
        ax.set_title(f"top-{top_k} prompts, {frames}", fontsize=fontsize)

    ax = fig.add_subplot(grid[3, :])
    cos = choices.cosine
    im = ax.imshow(cos, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.scatter(choices.frame_to_prompt, np.arange(T), s=40, color="white", edgecolor="black", zorder=3,
               label="prompt each frame picked (max over prompts)")
    ax.scatter(np.arange(n_prompts), choices.prompt_to_frame, s=90, facecolor="none", edgecolor="red", linewidth=1.5,
               zorder=3, label="frame each prompt picked (max over frames)")
    ax.set_yticks(range(T), [str(i) for i in ex.frame_indices], fontsize=fontsize * 0.85)
    ax.set_ylabel("frame", fontsize=fontsize)
    if ex.attributes is not None:
        keys = ex.attributes[choices.class_index][:n_prompts]
        ax.set_xticks(range(n_prompts), [k.split(".")[-1].replace("_", " ") for k in keys], rotation=90,
                      fontsize=fontsize * 0.8)
        for k, tick in zip(keys, ax.get_xticklabels()):
            tick.set_color(GROUP_COLOURS.get(k.split(".")[0], GROUP_COLOURS[""]))
    else:
        ax.set_xlabel("prompt", fontsize=fontsize)
    true = f", true class '{ex.classnames[ex.label]}'" if ex.label is not None else ""
    ax.set_title(f"MAKA choices for '{choices.classname}' (predicted, MAKA score {choices.score:.3f}{true}): "
                 "frame x prompt cosine", fontsize=fontsize)
    ax.legend(loc="upper left", bbox_to_anchor=(1.06, 1.0), fontsize=fontsize * 0.85, frameon=False)
    fig.colorbar(im, ax=ax, fraction=0.015, pad=0.01)

    handles = [Patch(color=GROUP_COLOURS[g], label=g.capitalize()) for g in ("scene", "actor", "body")]
    handles += [Line2D([], [], color="#39e639", label="actor box"), Line2D([], [], color="0.45", linestyle="--",
                                                                            label="model's crop (white)"),
                Line2D([], [], marker="x", color="black", linestyle="", label="attention peak")]
    fig.legend(handles=handles, loc="outside upper right", ncol=len(handles), fontsize=fontsize, frameon=False)
    fig.suptitle(title or f"{Path(ex.video).name}: per-frame attention and top-{top_k} prompts "
                 "(bold label = a prompt of the true class)", fontsize=fontsize + 3, x=0.01, ha="left")
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig, path: str | Path) -> list[Path]:
    """Save as <path>.png (150 dpi) and <path>.pdf; returns both paths."""
    stem = Path(path).with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(out[0], dpi=150, facecolor="white")
    # no creation date: the same figure gives the same bytes, so a re-render leaves git clean
    fig.savefig(out[1], facecolor="white", metadata={"CreationDate": None})
    return out


def _frame_figure(ex: VideoExplanation, t: int, attention: str, top_k: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1, 1, 2.2]}, constrained_layout=True)
    _draw_frame(axes[0], ex, t)
    axes[0].set_title(f"frame {ex.frame_indices[t]}")
    _draw_attention(axes[1], ex, t, attention)
    axes[1].set_title(attention)
    _draw_bars(axes[2], ex, ex.top_prompts(t, top_k), wrap=70, fontsize=10)
    choice = ex.maka_choices()
    picked = short_prompt(choice.prompts[choice.frame_to_prompt[t]])
    axes[2].set_title(f"top-{top_k} prompts; MAKA ('{choice.classname}') picks: {textwrap.shorten(picked, 60)}",
                      fontsize=10)
    return fig


def interactive_view(ex: VideoExplanation, *, top_k: int = 5):
    """A frame slider (ipywidgets) over overlay + top-k bars, for exploring a video in JupyterLab."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    # reads in the video's frame numbers (what the figure's titles say), not in sampled positions 0..T-1
    slider = widgets.SelectionSlider(options=[(str(int(f)), t) for t, f in enumerate(ex.frame_indices)], value=0,
                                     description="frame", continuous_update=False)
    kind = widgets.Dropdown(options=sorted(ex.maps), value="rollout", description="attention")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig = _frame_figure(ex, slider.value, kind.value, top_k)
            display(fig)
            plt.close(fig)

    slider.observe(draw, names="value")
    kind.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([slider, kind]), out])


def attention_strip(ex: VideoExplanation, attention: str = "rollout"):
    """Every sampled frame's attention overlay in one row, titled with its frame number: what the slider
    shows, as a picture that a stored notebook keeps (a widget is only text there)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ex.num_frames, figsize=(1.9 * ex.num_frames, 2.0), squeeze=False,
                             constrained_layout=True)
    for t, ax in enumerate(axes[0]):
        _draw_attention(ax, ex, t, attention)
        ax.set_title(f"frame {ex.frame_indices[t]}", fontsize=9)
    fig.suptitle(f"{attention} attention on every sampled frame (x: peak; green: actor box)", fontsize=10)
    return fig


def explore(ex: VideoExplanation, *, top_k: int = 5, attention: str = "rollout"):
    """The notebook's explore cell: displays the live slider, and under it the static strip of all frames.
    Returns nothing: a widget returned as a cell's last value is drawn a second time."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    view = interactive_view(ex, top_k=top_k)
    display(view)
    strip = attention_strip(ex, attention)
    display(strip)
    plt.close(strip)
