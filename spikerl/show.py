"""See what a trained agent does: decision rasters, per-decision summaries, an episode video.

    spikerl show runs/CartPole-v1__fts-snn__s0__.../ --episodes 1 --out show/

:func:`run_episode` plays one episode and keeps, for every decision, the kernel's own spike
array of that decision (``SpikingPolicy.act(..., keep_raster=True)``: up to ``t*``, the array
the learning rule records and replays; under the default output score, ``marginal``, the rule
continues its input and hidden spikes to ``T`` with the outputs silent) and its decision step ``t*``; :func:`plot_rasters`,
:func:`plot_decisions` and :func:`write_video` draw them; :func:`show` writes all three
(rasters and summaries for spiking agents, the video for every agent whose env renders
``rgb_array``). ``spikerl train`` logs the same files to W&B at the end of a run.

In the sampled mode (the default here: the mode a chip runs and the one the learning rule
sees) a decision is one network run. In the vote mode (the spiking agent's deterministic
mode) a decision is ``vote_samples`` runs; the raster shows the first of them, with its own
``t*`` (its first output spike), and the summaries add up the samples as ``predict`` does.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from .coding import obs_array
from .evaluation import make_env
from .policy import SpikingPolicy

POPULATIONS = ("input", "hidden", "output")


@dataclass
class Decision:
    """One decision of an episode. ``raster`` is ``(N, T)`` (neurons in the kernel's order:
    inputs, hidden, outputs) and ``t_star`` the step at which the action was decided; both
    ``None`` for an ANN agent."""

    step: int
    obs: np.ndarray
    action: object
    output: int  # index of the winning output (into the agent's action values)
    raster: np.ndarray | None = None
    t_star: int | None = None
    spikes: np.ndarray | None = None  # (3,) input, hidden, output spikes of the decision
    latency: int | None = None  # steps until the decision (t* + 1; vote: the slowest sample)
    no_spike: bool = False  # no output spiked within T steps (the fallback chose)
    reward: float = 0.0


@dataclass
class Episode:
    env_id: str
    mode: str
    seed: int
    decisions: list = field(default_factory=list)
    frames: list = field(default_factory=list)  # rgb frame seen by decision i (the first max_frames)
    ret: float = 0.0


def is_spiking(model) -> bool:
    return isinstance(getattr(model, "policy", None), SpikingPolicy)


def _first_output_step(raster: np.ndarray, out0: int) -> int:
    hits = np.nonzero(raster[out0:].any(0))[0]
    return int(hits[0]) if hits.size else raster.shape[1] - 1


def decide_one(model, obs, deterministic: bool) -> Decision:
    """The agent's decision for one observation, with its raster when the agent spikes."""
    if not is_spiking(model):
        action, _ = model.predict(obs, deterministic=deterministic)
        return Decision(0, np.asarray(obs), action, int(np.asarray(action).ravel()[0]) if np.ndim(action) else int(action))
    batch = obs_array(model.observation_space, obs)[None]
    out = model.decide(batch, deterministic, keep_raster=True)
    raster = out.raster[0]
    if raster.ndim == 3:  # vote: (K, N, T), the first sample shown
        raster = raster[0]
        topo = model.policy.topo
        t_star = _first_output_step(raster, topo.n_in + topo.n_hid) if model.policy.decoder == "first_to_spike" \
            else raster.shape[1] - 1
    else:
        t_star = int(out.latency[0]) - 1
    index = int(out.action[0])
    return Decision(0, batch[0], model.action_values[index], index, raster.copy(), t_star,
                    np.asarray(out.spikes[0]).copy(), int(out.latency[0]), bool(out.no_spike[0]))


def run_episode(model, env_id: str, *, seed: int = 0, deterministic: bool = False, video: bool = True,
                max_frames: int = 300, make_kwargs: dict | None = None) -> Episode:
    """Play one episode from ``env.reset(seed=seed)``; frames when the env renders ``rgb_array``."""
    env = make_env(env_id, make_kwargs)
    render = video and "rgb_array" in env.metadata.get("render_modes", [])
    if render:
        env.close()
        try:
            env = make_env(env_id, make_kwargs, render_mode="rgb_array")
            env.reset(seed=seed)
            env.render()
        except gym.error.DependencyNotInstalled as exc:  # e.g. pygame for the classic-control envs
            warnings.warn(f"{env_id}: no video ({exc})", stacklevel=2)
            render = False
            env = make_env(env_id, make_kwargs)
    mode = "sampled" if not deterministic else (model.config.deterministic_outputs if is_spiking(model) else "deterministic")
    ep = Episode(env_id, mode, seed)
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        if render and len(ep.frames) < max_frames:
            ep.frames.append(np.asarray(env.render(), dtype=np.uint8))
        d = decide_one(model, obs, deterministic)
        d.step = len(ep.decisions)
        obs, r, term, trunc, _ = env.step(d.action)
        d.reward = float(r)
        ep.ret += float(r)
        ep.decisions.append(d)
        done = term or trunc
    env.close()
    return ep


def _plt():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - dev installs have it
        raise ImportError("spikerl show draws with matplotlib: pip install 'spikerl[plots]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _neuron_labels(model):
    """Y-tick positions and labels: input groups by observation dimension, hidden, one per action."""
    topo = model.policy.topo
    ticks, labels = [], []
    for label, a, b in model.policy.encoder.input_groups():
        ticks.append((a + b - 1) / 2)
        labels.append(label)
    if topo.n_hid:
        ticks.append(topo.n_in + (topo.n_hid - 1) / 2)
        labels.append(f"hidden ({topo.n_hid})")
    out0 = topo.n_in + topo.n_hid
    for o in range(topo.n_out):
        ticks.append(out0 + o)
        labels.append(f"out: {_fmt(model.action_values[o])}")
    return ticks, labels


def _fmt(x) -> str:
    a = np.asarray(x)
    if a.ndim == 0:
        return f"{a.item():g}" if a.dtype.kind == "f" else str(a.item())
    return "[" + ", ".join(f"{v:.2g}" for v in a.ravel()) + "]"


def pick_decisions(episode: Episode, n: int) -> list[int]:
    """``n`` decisions spread over the episode (first and last included)."""
    k = len(episode.decisions)
    return sorted(set(np.linspace(0, k - 1, min(n, k)).round().astype(int).tolist()))


def plot_rasters(model, episode: Episode, path, indices: list[int] | None = None):
    """One panel per decision: every neuron's spikes over the decision's steps (the kernel's
    array, drawn as is), populations shaded, the decision step ``t*`` marked, the winning
    output circled; the title gives the action and the observation. Returns the figure."""
    plt = _plt()
    indices = pick_decisions(episode, 4) if indices is None else list(indices)
    topo = model.policy.topo
    n_in, out0 = topo.n_in, topo.n_in + topo.n_hid
    fig, axes = plt.subplots(1, len(indices), figsize=(3.2 * len(indices) + 1.5, 0.055 * topo.n_neurons + 2.4),
                             squeeze=False, sharey=True)
    ticks, labels = _neuron_labels(model)
    from matplotlib.colors import ListedColormap

    spike_cmap = ListedColormap([(0, 0, 0, 0), (0, 0, 0, 1)])  # no spike: transparent
    for ax, i in zip(axes[0], indices):
        d = episode.decisions[i]
        T = d.raster.shape[1]
        for (a, b), colour in zip(((0, n_in), (n_in, out0), (out0, topo.n_neurons)), ("#dbe9f6", "#e6f2e0", "#fbe3d6")):
            if b > a:
                ax.axhspan(a - 0.5, b - 0.5, color=colour, zorder=0)
        for _, a, _b in model.policy.encoder.input_groups()[1:]:
            ax.axhline(a - 0.5, color="#9db8d6", lw=0.6, zorder=0)
        ax.imshow(d.raster, aspect="auto", interpolation="nearest", cmap=spike_cmap, vmin=0, vmax=1, origin="upper",
                  extent=(-0.5, T - 0.5, topo.n_neurons - 0.5, -0.5), zorder=1)
        ax.axvline(d.t_star, color="crimson", ls="--", lw=1.2, zorder=2, label="t* (decision)")
        ax.scatter([d.t_star], [out0 + d.output], s=120, facecolors="none", edgecolors="crimson", lw=1.5, zorder=3)
        ax.set_xlabel("step of the decision")
        ax.set_xticks(range(T))
        ax.set_title(f"decision {d.step}: action {_fmt(d.action)}, t*={d.t_star}\nobs {_fmt(d.obs)}", fontsize=8)
    axes[0][0].set_yticks(ticks)
    axes[0][0].set_yticklabels(labels, fontsize=7)
    axes[0][-1].legend(loc="upper right", fontsize=7)
    note = " (first of the voting samples)" if episode.mode == "vote" else ""
    fig.suptitle(f"{episode.env_id}: spikes of each neuron during a decision, {episode.mode} mode{note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def plot_decisions(episode: Episode, path):
    """Per-decision summaries over the episode: latency, spikes per population, winning output."""
    plt = _plt()
    ds = episode.decisions
    x = np.arange(len(ds))
    fig, ax = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
    latency = np.array([d.latency for d in ds], dtype=float)
    ax[0].plot(x, latency, drawstyle="steps-mid", color="crimson", lw=0.6, alpha=0.6)
    w = max(1, len(ds) // 25)
    ax[0].plot(x, np.convolve(latency, np.ones(w) / w, mode="same"), color="black", lw=1.2, label=f"mean of {w}")
    ax[0].set_ylabel("latency (steps)")
    ax[0].legend(fontsize=8)
    spikes = np.array([d.spikes for d in ds])
    for k, name in enumerate(POPULATIONS):
        ax[1].plot(x, spikes[:, k], label=name, lw=1)
    ax[1].set_ylabel("spikes")
    ax[1].legend(fontsize=8, ncol=3)
    outputs, fallback = np.array([d.output for d in ds]), np.array([d.no_spike for d in ds])
    ax[2].scatter(x[~fallback], outputs[~fallback], s=6, label="first output spike")
    ax[2].scatter(x[fallback], outputs[fallback], s=10, marker="x", color="grey", label="no output spike (fallback)")
    ax[2].set_yticks(range(int(outputs.max()) + 1))
    ax[2].set_ylabel("winning output")
    ax[2].legend(fontsize=8, ncol=2)
    ax[2].set_xlabel("decision")
    fig.suptitle(f"{episode.env_id}, {episode.mode} mode: return {episode.ret:.1f} over {len(ds)} decisions", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def annotate_frames(episode: Episode, width: int = 320) -> list[np.ndarray]:
    """The episode's frames scaled to ``width`` pixels with a caption strip below each:
    decision, action, and (spiking agents) decision latency and spikes."""
    from PIL import Image, ImageDraw

    out = []
    for frame, d in zip(episode.frames, episode.decisions):
        img = Image.fromarray(frame)
        scale = width / img.width
        img = img.resize((width, max(1, round(img.height * scale))), Image.NEAREST)
        canvas = Image.new("RGB", (img.width, img.height + 16), "white")
        canvas.paste(img, (0, 0))
        text = f"#{d.step} action {_fmt(d.action)}"
        if d.latency is not None:
            text += f"  latency {d.latency}  spikes {int(d.spikes.sum())}"
        ImageDraw.Draw(canvas).text((3, img.height + 2), text, fill=(0, 0, 0))
        out.append(np.asarray(canvas))
    return out


def write_video(episode: Episode, path, fps: int = 15, width: int = 320) -> Path | None:
    """An animated GIF of the episode's frames with their captions (``None`` if no frames)."""
    from PIL import Image

    frames = annotate_frames(episode, width)
    if not frames:
        return None
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=max(1, round(1000 / fps)), loop=0)
    return Path(path)


def show(model, env_id: str, out, *, episodes: int = 1, seed: int = 0, deterministic: bool = False,
         n_rasters: int = 4, video: bool = True, max_frames: int = 300, make_kwargs: dict | None = None) -> dict:
    """Write ``raster.png`` and ``decisions.png`` (spiking agents), ``episode.gif`` (where the
    env renders) and ``show.json`` into ``out``; returns ``{name: path}`` of what was written."""
    for name, value, least in (("episodes", episodes, 1), ("n_rasters", n_rasters, 1), ("max_frames", max_frames, 0)):
        if int(value) != value or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    eps = [run_episode(model, env_id, seed=seed + k, deterministic=deterministic, video=video and k == 0,
                       max_frames=max_frames, make_kwargs=make_kwargs) for k in range(episodes)]
    first, written = eps[0], {}
    if is_spiking(model):
        plt = _plt()
        plt.close(plot_rasters(model, first, out / "raster.png", pick_decisions(first, n_rasters)))
        plt.close(plot_decisions(first, out / "decisions.png"))
        written["raster"], written["decisions"] = out / "raster.png", out / "decisions.png"
    if video:
        gif = write_video(first, out / "episode.gif")
        if gif is not None:
            written["video"] = gif
    summary = {"env": env_id, "mode": first.mode, "seed": seed, "episodes": []}
    for ep in eps:
        row = {"seed": ep.seed, "return": ep.ret, "decisions": len(ep.decisions)}
        if is_spiking(model):
            row["mean_latency"] = float(np.mean([d.latency for d in ep.decisions]))
            row["mean_spikes"] = {name: float(np.mean([d.spikes[k] for d in ep.decisions]))
                                  for k, name in enumerate(POPULATIONS)}
        summary["episodes"].append(row)
    summary["files"] = {k: str(v.name) for k, v in written.items()}
    (out / "show.json").write_text(json.dumps(summary, indent=2))
    written["summary"] = out / "show.json"
    return written


__all__ = ["Decision", "Episode", "run_episode", "plot_rasters", "plot_decisions", "write_video", "show"]
