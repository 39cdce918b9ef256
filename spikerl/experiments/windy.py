"""The seed experiment (Rosenfeld, Simeone & Rajendran, "Learning First-to-Spike Policies
for Neuromorphic Control Using Policy Gradients", SPAWC 2019) on the windy grid world.

For each tile resolution (1x1 -> 70 inputs, 2x2 -> 20, 4x4 -> 6, 6x6 -> 4) and seed it trains

(a) ``fts-snn``: the first-to-spike GLM SNN with the three-factor rule,
(b) ``pg-mlp``: an ANN policy with the same number of parameters (a linear softmax over
    the same tile features) trained by the same policy gradient,
(c) ``converted``: (b) converted to a rate-coded integrate-and-fire network,

and reports, for the final policies scored by spikerl's one evaluation protocol in both modes,
steps to reach the goal, spikes per episode and decision latency;
then sweeps the presentation length T (2, 4, 8, 16) at 1x1 tiles for (a) and (c), and
compares rate with time (latency) input coding for (a). Configs come from
``agents/fts-snn.yaml``, ``agents/pg-mlp.yaml`` and ``envs/spikerl__WindyGridWorld-v0.yaml``.

    spikerl experiment windy --seeds 3 --out runs/windy

Seeds ``first_seed .. first_seed + seeds - 1``: by default 100 on, the reporting seeds, which no
tuning of the defaults saw (the tuning runs used seeds 0-4).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ENV_ID = "spikerl/WindyGridWorld-v0"
RESOLUTIONS = ((1, 1), (2, 2), (4, 4), (6, 6))
T_SWEEP = (2, 4, 8, 16)


def _hp(agent: str) -> tuple[dict, int]:
    from ..config import load_agent_file, load_env_file, resolve_hyperparameters

    _, af, _ = load_agent_file(agent)
    ef, _ = load_env_file(ENV_ID)
    return resolve_hyperparameters(af, ef, {}), ef.budget


EVAL_SEED = 50_000
EVAL_EPISODES = 100
MODES = (("sampled", False), ("deterministic", True))


def score(model, deterministic: bool) -> dict:
    """spikerl's one evaluation protocol (:func:`spikerl.evaluation.evaluate_model`: final
    policy, 100 episodes, evaluation seed 50,000), in the windy grid world's terms."""
    from ..evaluation import evaluate_model

    r = evaluate_model(model, ENV_ID, n_episodes=EVAL_EPISODES, seed=EVAL_SEED, deterministic=deterministic)
    lengths = np.asarray(r["lengths"], float)
    return {"steps_to_goal": float(lengths.mean()), "reached": float(np.mean(lengths < 200)),
            "spikes_per_episode": float(r.get("spikes_per_decision", 0.0) * lengths.mean()),
            "latency": float(r["latency"]), "macs_per_decision": float(r.get("macs_per_decision", 0.0)),
            "mean_return": r["mean_return"]}


def both_modes(model, **row) -> list[dict]:
    """One row per mode, each mode's figures from its own episodes."""
    return [{**row, "mode": mode, **score(model, det)} for mode, det in MODES]


def train_snn(tile, T, seed, steps, code="rate"):
    from ..agent import SpikingAgent

    hp, _ = _hp("fts-snn")
    # the paper's input codes (rate vs time) and this study's deterministic mode (the vote of 15),
    # whatever the agent's defaults (regular inputs, the threshold network) became since
    hp.update(tile=list(tile), T=T, memory=max(T, 1), code=code, deterministic_outputs="vote")
    return SpikingAgent(ENV_ID, seed=seed, **hp).learn(steps)


def train_mlp(tile, seed, steps):
    from ..pg_mlp import PGMLPAgent

    hp, _ = _hp("pg-mlp")
    hp.update(tile=list(tile))
    return PGMLPAgent(ENV_ID, seed=seed, **hp).learn(steps)


def convert(agent, T, seed):
    """The pg-mlp policy as a rate-coded integrate-and-fire network (calibrated on every cell)."""
    from ..conversion import ConvertedSNN

    return ConvertedSNN(agent, np.arange(70), T=T, seed=seed)


FIRST_SEED = 100


def run(seeds: int = 3, out: str | Path = "runs/windy", steps: int | None = None,
        first_seed: int = FIRST_SEED) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _, budget = _hp("fts-snn")
    steps = steps or budget
    rows = []
    seed_list = range(first_seed, first_seed + seeds)
    for tile in RESOLUTIONS:
        t = f"{tile[0]}x{tile[1]}"
        for seed in seed_list:
            snn = train_snn(tile, 8, seed, steps)
            rows += both_modes(snn, study="resolution", method="fts-snn", tile=t, T=8, code="rate", seed=seed,
                               n_params=int(snn.policy.learnable.sum()))
            mlp = train_mlp(tile, seed, steps)
            rows += both_modes(mlp, study="resolution", method="pg-mlp", tile=t, T=1, code="-", seed=seed,
                               n_params=int(mlp.policy.n_params))
            rows += both_modes(convert(mlp, 8, seed), study="resolution", method="converted", tile=t, T=8,
                               code="rate", seed=seed)
            if tile == (1, 1):
                for T in T_SWEEP:
                    rows += both_modes(convert(mlp, T, seed), study="T", method="converted", tile=t, T=T,
                                       code="rate", seed=seed)
    for seed in seed_list:
        for T in T_SWEEP:
            rows += both_modes(train_snn((1, 1), T, seed, steps), study="T", method="fts-snn", tile="1x1", T=T,
                               code="rate", seed=seed)
        rows += both_modes(train_snn((1, 1), 8, seed, steps, code="time"), study="code", method="fts-snn",
                           tile="1x1", T=8, code="time", seed=seed)
    (out / "results.json").write_text(json.dumps({"steps": steps, "seeds": list(seed_list), "eval_episodes": EVAL_EPISODES,
                                                  "eval_seed": EVAL_SEED, "rows": rows}, indent=1))
    write_tables(rows, out, steps, list(seed_list))
    plot(rows, out)
    return out


def _group(rows, keys):
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def _cell(rs, key, nd=1):
    v = np.array([r[key] for r in rs], float)
    return f"{v.mean():.{nd}f} ± {v.std():.{nd}f}"


def write_tables(rows, out: Path, steps: int, seeds: list) -> None:
    lines = ["# Windy grid world: first-to-spike SNN vs ANN vs converted ANN", "",
             f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]}), {steps:,} training steps per run; every row scored by "
             "spikerl's one evaluation protocol "
             f"(final policy, {EVAL_EPISODES} episodes from evaluation seed {EVAL_SEED:,}) in its mode: sampled "
             "(fts-snn samples its first-to-spike decisions, pg-mlp its softmax) or deterministic (fts-snn: the "
             "majority of 15 sampled decisions; pg-mlp: the most probable action); the converted network samples "
             "its input spikes in both. Steps, spikes and latency of a row come from the same episodes. "
             "Shortest path: 15 steps; 200 = never reached the goal. Mean ± std over seeds.", "",
             "## Input resolution (T = 8)", "",
             "| tiles | inputs | method | mode | steps to goal | spikes / episode | latency (steps) | reached |",
             "|---|---|---|---|---|---|---|---|"]
    n_in = {"1x1": 70, "2x2": 20, "4x4": 6, "6x6": 4}
    res = [r for r in rows if r["study"] == "resolution"]
    for (tile, method, mode), rs in _group(res, ["tile", "method", "mode"]).items():
        lines.append(f"| {tile} | {n_in[tile]} | {method} | {mode} | {_cell(rs, 'steps_to_goal')} | "
                     f"{_cell(rs, 'spikes_per_episode', 0) if method != 'pg-mlp' else '-'} | {_cell(rs, 'latency', 2)} | "
                     f"{_cell(rs, 'reached', 2)} |")
    lines += ["", "## Presentation length T (1x1 tiles)", "",
              "| T | method | mode | steps to goal | spikes / episode | latency (steps) |", "|---|---|---|---|---|---|"]
    for (T, method, mode), rs in sorted(_group([r for r in rows if r["study"] == "T"], ["T", "method", "mode"]).items()):
        lines.append(f"| {T} | {method} | {mode} | {_cell(rs, 'steps_to_goal')} | {_cell(rs, 'spikes_per_episode', 0)} | "
                     f"{_cell(rs, 'latency', 2)} |")
    lines += ["", "## Rate vs time coding (fts-snn, 1x1 tiles, T = 8)", "",
              "| code | mode | steps to goal | spikes / episode | latency (steps) |", "|---|---|---|---|---|"]
    for mode, _ in MODES:
        rate = [r for r in rows if r["study"] == "T" and r["method"] == "fts-snn" and r["T"] == 8 and r["mode"] == mode]
        time_ = [r for r in rows if r["study"] == "code" and r["mode"] == mode]
        for name, rs in (("rate", rate), ("time", time_)):
            lines.append(f"| {name} | {mode} | {_cell(rs, 'steps_to_goal')} | {_cell(rs, 'spikes_per_episode', 0)} | "
                         f"{_cell(rs, 'latency', 2)} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")


def plot(rows, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    res = [r for r in rows if r["study"] == "resolution"]
    tiles = [f"{a}x{b}" for a, b in RESOLUTIONS]
    for method in ("fts-snn", "pg-mlp", "converted"):
        for mode, _ in MODES:
            m = [np.mean([r["steps_to_goal"] for r in res if r["method"] == method and r["tile"] == t
                          and r["mode"] == mode]) for t in tiles]
            axes[0].plot(tiles, m, marker="o", ls="-" if mode == "sampled" else "--", label=f"{method} ({mode})")
    axes[0].axhline(15, color="grey", ls=":", label="shortest path")
    axes[0].set_xlabel("tile size")
    axes[0].set_ylabel("steps to goal (200 = never)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    tsw = [r for r in rows if r["study"] == "T" and r["mode"] == "sampled"]
    for method in ("fts-snn", "converted"):
        Ts = sorted({r["T"] for r in tsw if r["method"] == method})
        axes[1].plot(Ts, [np.mean([r["steps_to_goal"] for r in tsw if r["method"] == method and r["T"] == T]) for T in Ts],
                     marker="o", label=method)
        axes[2].plot(Ts, [np.mean([r["spikes_per_episode"] for r in tsw if r["method"] == method and r["T"] == T]) for T in Ts],
                     marker="o", label=method)
    axes[1].set_xlabel("presentation length T")
    axes[1].set_ylabel("steps to goal")
    axes[1].set_yscale("log")
    axes[2].set_xlabel("presentation length T")
    axes[2].set_ylabel("spikes per episode")
    axes[2].set_yscale("log")
    for ax in axes[1:]:
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
    fig.suptitle("Windy grid world (1x1 tiles and sampled mode for the T sweep)")
    fig.tight_layout()
    fig.savefig(out / "windy.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--out", default="runs/windy")
    ap.add_argument("--first-seed", type=int, default=FIRST_SEED)
    a = ap.parse_args()
    print(run(a.seeds, a.out, a.steps, a.first_seed) / "table.md")
