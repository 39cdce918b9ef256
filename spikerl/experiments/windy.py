"""The seed experiment (Rosenfeld, Simeone & Rajendran, "Learning First-to-Spike Policies
for Neuromorphic Control Using Policy Gradients", SPAWC 2019) on the windy grid world.

For each tile resolution (1x1 -> 70 inputs, 2x2 -> 20, 4x4 -> 6, 6x6 -> 4) and seed it trains

(a) ``fts-snn``: the first-to-spike GLM SNN with the three-factor rule,
(b) ``pg-mlp``: an ANN policy with the same number of parameters (a linear softmax over
    the same tile features) trained by the same policy gradient,
(c) ``converted``: (b) converted to a rate-coded integrate-and-fire network,

and reports steps to reach the goal after training, spikes per episode and decision latency;
then sweeps the presentation length T (2, 4, 8, 16) at 1x1 tiles for (a) and (c), and
compares rate with time (latency) input coding for (a). Configs come from
``agents/fts-snn.yaml``, ``agents/pg-mlp.yaml`` and ``envs/spikerl__WindyGridWorld-v0.yaml``.

    spikerl experiment windy --seeds 3 --out runs/windy
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


def _episodes(policy_act, n: int, seed: int) -> dict:
    """Play ``n`` episodes with ``policy_act(obs_batch) -> PolicyOutput``."""
    from ..evaluation import make_env

    env = make_env(ENV_ID)
    lengths, spikes, latency, decisions = [], 0.0, 0.0, 0
    for ep in range(n):
        obs, _ = env.reset(seed=seed + ep)
        done, steps = False, 0
        while not done:
            out = policy_act(np.asarray([obs]))
            obs, _, term, trunc, _ = env.step(int(out.action[0]))
            spikes += float(out.spikes.sum())
            latency += float(out.latency.sum())
            decisions += 1
            steps += 1
            done = term or trunc
        lengths.append(steps)
    return {"steps_to_goal": float(np.mean(lengths)), "spikes_per_episode": spikes / n,
            "latency": latency / max(decisions, 1), "reached": float(np.mean([length < 200 for length in lengths]))}


def train_snn(tile, T, seed, steps, code="rate"):
    from ..agent import SpikingAgent

    hp, _ = _hp("fts-snn")
    hp.update(tile=list(tile), T=T, memory=max(T, 1), code=code)
    agent = SpikingAgent(ENV_ID, seed=seed, **hp).learn(steps)
    rng = np.random.default_rng(seed)
    res = _episodes(lambda o: agent.policy.act(o, rng, deterministic=False), 20, 10_000)
    res["n_params"] = int(agent.policy.learnable.sum())
    return res


def train_mlp(tile, seed, steps):
    from ..pg_mlp import PGMLPAgent

    hp, _ = _hp("pg-mlp")
    hp.update(tile=list(tile))
    return PGMLPAgent(ENV_ID, seed=seed, **hp).learn(steps)


def eval_mlp(agent, sampled: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    res = _episodes(lambda o: agent.policy.act(o, rng, deterministic=not sampled), 20 if sampled else 1, 10_000)
    res.update(latency=1.0, macs_per_decision=float(agent.policy.macs), n_params=int(agent.policy.n_params))
    return res


def eval_converted(agent, T, seed) -> dict:
    from ..conversion import ConvertedSNN

    snn = ConvertedSNN(agent, np.arange(70), T=T, seed=seed)
    return _episodes(lambda o: snn.act(o), 20, 10_000)


def run(seeds: int = 3, out: str | Path = "runs/windy", steps: int | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _, budget = _hp("fts-snn")
    steps = steps or budget
    rows = []
    for tile in RESOLUTIONS:
        for seed in range(seeds):
            rows.append({"study": "resolution", "method": "fts-snn", "tile": f"{tile[0]}x{tile[1]}", "T": 8,
                         "code": "rate", "seed": seed, **train_snn(tile, 8, seed, steps)})
            mlp = train_mlp(tile, seed, steps)
            rows.append({"study": "resolution", "method": "pg-mlp", "tile": f"{tile[0]}x{tile[1]}", "T": 1,
                         "code": "-", "seed": seed, **eval_mlp(mlp)})
            rows.append({"study": "resolution", "method": "pg-mlp sampled", "tile": f"{tile[0]}x{tile[1]}", "T": 1,
                         "code": "-", "seed": seed, **eval_mlp(mlp, sampled=True, seed=seed)})
            rows.append({"study": "resolution", "method": "converted", "tile": f"{tile[0]}x{tile[1]}", "T": 8,
                         "code": "rate", "seed": seed, **eval_converted(mlp, 8, seed)})
            if tile == (1, 1):
                for T in T_SWEEP:
                    rows.append({"study": "T", "method": "converted", "tile": "1x1", "T": T, "code": "rate", "seed": seed,
                                 **eval_converted(mlp, T, seed)})
    for seed in range(seeds):
        for T in T_SWEEP:
            rows.append({"study": "T", "method": "fts-snn", "tile": "1x1", "T": T, "code": "rate", "seed": seed,
                         **train_snn((1, 1), T, seed, steps)})
        rows.append({"study": "code", "method": "fts-snn", "tile": "1x1", "T": 8, "code": "time", "seed": seed,
                     **train_snn((1, 1), 8, seed, steps, code="time")})
    (out / "results.json").write_text(json.dumps({"steps": steps, "seeds": seeds, "rows": rows}, indent=1))
    write_tables(rows, out, steps, seeds)
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


def write_tables(rows, out: Path, steps: int, seeds: int) -> None:
    lines = ["# Windy grid world: first-to-spike SNN vs ANN vs converted ANN", "",
             f"{seeds} seeds, {steps:,} training steps per run; evaluation: 20 episodes (fts-snn samples its "
             "first-to-spike decisions, converted samples its input spikes; pg-mlp is evaluated greedily and, as "
             "'pg-mlp sampled', by sampling its softmax). "
             "Shortest path: 15 steps; 200 = never reached the goal. Mean ± std over seeds.", "",
             "## Input resolution (T = 8)", "",
             "| tiles | inputs | method | steps to goal | spikes / episode | latency (steps) | reached |",
             "|---|---|---|---|---|---|---|"]
    n_in = {"1x1": 70, "2x2": 20, "4x4": 6, "6x6": 4}
    res = [r for r in rows if r["study"] == "resolution"]
    for (tile, method), rs in _group(res, ["tile", "method"]).items():
        lines.append(f"| {tile} | {n_in[tile]} | {method} | {_cell(rs, 'steps_to_goal')} | "
                     f"{_cell(rs, 'spikes_per_episode', 0) if not method.startswith('pg-mlp') else '-'} | {_cell(rs, 'latency', 2)} | "
                     f"{_cell(rs, 'reached', 2)} |")
    lines += ["", "## Presentation length T (1x1 tiles)", "",
              "| T | method | steps to goal | spikes / episode | latency (steps) |", "|---|---|---|---|---|"]
    for (T, method), rs in sorted(_group([r for r in rows if r["study"] == "T"], ["T", "method"]).items()):
        lines.append(f"| {T} | {method} | {_cell(rs, 'steps_to_goal')} | {_cell(rs, 'spikes_per_episode', 0)} | "
                     f"{_cell(rs, 'latency', 2)} |")
    lines += ["", "## Rate vs time coding (fts-snn, 1x1 tiles, T = 8)", "",
              "| code | steps to goal | spikes / episode | latency (steps) |", "|---|---|---|---|"]
    rate = [r for r in rows if r["study"] == "T" and r["method"] == "fts-snn" and r["T"] == 8]
    time_ = [r for r in rows if r["study"] == "code"]
    for name, rs in (("rate", rate), ("time", time_)):
        lines.append(f"| {name} | {_cell(rs, 'steps_to_goal')} | {_cell(rs, 'spikes_per_episode', 0)} | {_cell(rs, 'latency', 2)} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")


def plot(rows, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    res = [r for r in rows if r["study"] == "resolution"]
    tiles = [f"{a}x{b}" for a, b in RESOLUTIONS]
    for method in ("fts-snn", "pg-mlp", "pg-mlp sampled", "converted"):
        m = [np.mean([r["steps_to_goal"] for r in res if r["method"] == method and r["tile"] == t]) for t in tiles]
        axes[0].plot(tiles, m, marker="o", label=method)
    axes[0].axhline(15, color="grey", ls=":", label="shortest path")
    axes[0].set_xlabel("tile size")
    axes[0].set_ylabel("steps to goal (200 = never)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    tsw = [r for r in rows if r["study"] == "T"]
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
    fig.suptitle("Windy grid world (1x1 tiles for the T sweep)")
    fig.tight_layout()
    fig.savefig(out / "windy.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--out", default="runs/windy")
    a = ap.parse_args()
    print(run(a.seeds, a.out, a.steps) / "table.md")
