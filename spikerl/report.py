"""``spikerl report BENCH_DIR``: a Markdown report with PNG figures.

Per env: learning curves of every agent (evaluation return: mean over seeds and its 95%
bootstrap confidence band); a table of final return (interquartile mean over seeds with a
95% bootstrap CI), steps to the solved threshold, wall time, env steps per second,
parameters; energy per decision (spiking: spikes and synaptic accumulate operations; ANN:
multiply-accumulates) converted to energy with published per-operation figures; decision
latency. The IQM intervals are rliable's (:mod:`spikerl.stats`); the curve bands scipy's
bootstrap; plots matplotlib.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .runs import read_config, read_metrics
from .energy import TABLES, breakdown_markdown, decision_energy, network_facts, sources_markdown
from .stats import iqm_ci

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm:
# 32-bit float add 0.9 pJ, 32-bit float multiply 3.7 pJ.
E_AC_PJ = 0.9
E_MAC_PJ = 3.7 + 0.9
ENERGY_SOURCE = ("M. Horowitz, \"Computing's energy problem (and what we can do about it)\", ISSCC 2014 "
                 "(45 nm CMOS, 32-bit float: add 0.9 pJ, multiply 3.7 pJ; an accumulate = 0.9 pJ, "
                 "a multiply-accumulate = 4.6 pJ)")


def iqm(x) -> float:
    from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(x, float), 0.25))


def bootstrap_ci(x, stat=np.mean, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of ``stat`` over seeds (degenerate samples give a point)."""
    from scipy.stats import bootstrap

    x = np.asarray(x, float)
    if x.size < 2 or np.allclose(x, x[0]):
        return float(x.mean()), float(x.mean())
    res = bootstrap((x,), stat, confidence_level=0.95, n_resamples=2000, method="percentile",
                    random_state=np.random.default_rng(seed), vectorized=False)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def collect(bench_dir: Path) -> list[dict]:
    runs = []
    for run_dir in sorted((Path(bench_dir) / "runs").glob("*")):
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            continue
        summary = json.loads(summary_path.read_text())
        if summary.get("status") not in ("finished", "solved"):
            continue
        cfg = read_config(run_dir)
        if cfg["kind"] == "spiking":
            summary["sampled"] = summary.get("sampled") or _sampled(run_dir, cfg)
            summary["n_parameters"] = _learnable(run_dir, summary)
        freq = max(int(cfg["eval"]["freq"]), 1)
        evals = [dict(r, step=int(round(r["step"] / freq)) * freq)  # vector envs overshoot by a few steps
                 for r in read_metrics(run_dir) if r["type"] == "eval" and not r.get("confirm")]
        runs.append({"dir": run_dir, "cfg": cfg, "summary": summary, "evals": evals})
    return runs


def _sampled(run_dir: Path, cfg: dict) -> dict:
    """Sampling-mode figures of a spiking run that predates them (cached in sampled.json)."""
    cache = run_dir / "sampled.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from .config import load_env_file
    from .serialization import load_model
    from .train import sampled_evaluation

    env_file, _ = load_env_file(cfg["env"])
    res = sampled_evaluation(load_model(run_dir / "model.spk"), env_file, cfg["eval"]["episodes"])
    cache.write_text(json.dumps(res))
    return res


def _learnable(run_dir: Path, summary: dict) -> int:
    from .serialization import load_model

    return int(load_model(run_dir / "model.spk").policy.learnable.sum())


def _curve(runs: list[dict], grid: np.ndarray) -> np.ndarray:
    """Periodic evaluation returns of each run on a common step grid (last value carried
    forward; confirmation evaluations are left out)."""
    out = np.full((len(runs), grid.size), np.nan)
    for i, r in enumerate(runs):
        steps = np.array([e["step"] for e in r["evals"]])
        vals = np.array([e["mean_return"] for e in r["evals"]])
        for j, g in enumerate(grid):
            k = np.searchsorted(steps, g, side="right") - 1
            if k >= 0:
                out[i, j] = vals[k]
    return out


def plot_env(env_id: str, by_agent: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    all_steps = sorted({e["step"] for runs in by_agent.values() for r in runs for e in r["evals"]})
    grid = np.array(all_steps) if all_steps else np.array([0])
    for agent, runs in by_agent.items():
        curves = _curve(runs, grid)
        keep = ~np.isnan(curves).any(0)
        if not keep.any():
            continue
        g, c = grid[keep], curves[:, keep]
        mean = c.mean(0)
        lo, hi = np.array([bootstrap_ci(c[:, j]) for j in range(c.shape[1])]).T
        ax.plot(g, mean, label=f"{agent} (n={len(runs)})")
        ax.fill_between(g, lo, hi, alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(f"{env_id}: mean over seeds, 95% bootstrap CI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x, nd=1) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:,.{nd}f}"


def energy_facts(run: dict) -> dict:
    """What the energy model needs of a run's network (read from its saved model)."""
    if "facts" not in run:
        cfg, d = run["cfg"], run["dir"]
        if cfg["kind"] == "sb3":
            from .baselines import load_sb3

            model = load_sb3(cfg["algo"], d / "model.zip")
        else:
            from .serialization import load_model

            model = load_model(d / "model.spk")
        run["facts"] = network_facts(model)
    return run["facts"]


def mode_figures(run: dict, mode: str) -> dict | None:
    """Return, latency, spikes, operations and energy (both tables) of a run's final policy in
    ``mode`` (deterministic: the final evaluation; sampled: the sampled one), all from the same
    episodes; ``None`` when the run has no such evaluation."""
    s = run["summary"]
    if mode == "deterministic":
        fig = {k: s.get(k) for k in ("spikes_per_decision", "sops_per_decision", "macs_per_decision", "latency")}
        fig["mean_return"] = s["final_mean_return"]
    else:
        if not s.get("sampled"):
            return None
        fig = dict(s["sampled"])
    facts = energy_facts(run)
    # an ANN's sampled evaluation may not repeat its MACs: the network's are the same in both modes
    measured = {**fig, "macs_per_decision": fig.get("macs_per_decision") or s.get("macs_per_decision") or 0.0}
    fig["ops"], fig["energy"] = decision_energy(facts, measured, sampled=mode != "deterministic",
                                                outputs=facts.get("det_mode"))
    return fig


def table_rows(env_id: str, by_agent: dict) -> list[str]:
    """One row per agent and mode; a row's return, latency, spikes, operations and energy come
    from the same evaluation episodes."""
    rows = ["| agent | mode | final return IQM [95% CI] | solved (seeds) | median steps to solve | wall time s | "
            "env steps/s (with evaluations) | parameters | spikes / decision | synaptic ops / decision | "
            "MACs / decision | energy / decision, 45 nm CMOS (nJ) | energy / decision, Loihi (nJ) | latency (steps) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for agent, runs in by_agent.items():
        solved = [r["summary"].get("first_solved_step") for r in runs]
        solved_steps = [s for s in solved if s is not None]
        sm = lambda k: float(np.mean([r["summary"].get(k) or 0.0 for r in runs]))  # noqa: E731
        for mode in ("deterministic", "sampled"):
            figs = [mode_figures(r, mode) for r in runs]
            if any(f is None for f in figs):
                continue
            final = [f["mean_return"] for f in figs]
            _, lo, hi = iqm_ci(final)
            fm = lambda k: float(np.mean([f.get(k) or 0.0 for f in figs]))  # noqa: E731
            spikes, sops, macs = fm("spikes_per_decision"), fm("sops_per_decision"), fm("macs_per_decision")
            en = {t.name: (None if any(f["energy"][t.name] is None for f in figs)
                           else float(np.mean([f["energy"][t.name]["total"] for f in figs])) / 1000.0) for t in TABLES}
            rows.append(
                f"| {agent} | {mode} | {_fmt(iqm(final))} [{_fmt(lo)}, {_fmt(hi)}] | "
                f"{f'{len(solved_steps)}/{len(runs)}' if mode == 'deterministic' else '-'} | "
                f"{_fmt(float(np.median(solved_steps)) if solved_steps and mode == 'deterministic' else None, 0)} | "
                f"{_fmt(sm('wall_time'))} | {_fmt(sm('steps_per_second'), 0)} | {int(sm('n_parameters')):,} | "
                f"{_fmt(spikes) if spikes else '-'} | {_fmt(sops, 0) if sops else '-'} | {_fmt(macs, 0) if macs else '-'} | "
                f"{_fmt(en['45 nm CMOS'], 3)} | {_fmt(en['Loihi'], 3)} | {_fmt(fm('latency'), 2)} |")
    return rows


def write_report(bench_dir: Path, out: Path | None = None) -> Path:
    bench_dir = Path(bench_dir)
    runs = collect(bench_dir)
    if not runs:
        raise FileNotFoundError(f"{bench_dir}: no finished runs under {bench_dir / 'runs'}")
    out = Path(out) if out else bench_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    envs: dict[str, dict[str, list]] = {}
    for r in runs:
        envs.setdefault(r["cfg"]["env"], {}).setdefault(r["cfg"]["agent"], []).append(r)
    lines = [f"# spikerl benchmark: {bench_dir.name}", "",
             "Every agent trains with the same step budget and seeds (a note under an env says when some seeds "
             "did not finish) and is evaluated with the same protocol "
             "(SB3 `evaluate_policy`, deterministic actions, the same evaluation seeds). Final return: the last "
             "evaluation of each seed; the IQM and its 95% bootstrap CI (rliable) are over seeds.", ""]
    for env_id, by_agent in envs.items():
        fig = out / f"{env_id.replace('/', '-')}_curves.png"
        plot_env(env_id, by_agent, fig)
        threshold = next(iter(by_agent.values()))[0]["cfg"].get("solved_threshold")
        steps = next(iter(by_agent.values()))[0]["cfg"]["steps"]
        lines += [f"## {env_id}", "", f"Budget {steps:,} steps per run; solved threshold {threshold}.", ""]
        seeds = {agent: sorted(r["cfg"]["seed"] for r in rs) for agent, rs in by_agent.items()}
        if len({tuple(v) for v in seeds.values()}) > 1:  # say so when agents finished different seeds
            lines += ["Finished seeds differ between agents: " + "; ".join(
                f"{agent} {', '.join(map(str, v))}" for agent, v in sorted(seeds.items())) + ".", ""]
        lines += [f"![learning curves]({fig.name})", ""]
        lines += table_rows(env_id, by_agent)
        lines.append("")
        sources = {r["cfg"]["agent"]: r["cfg"].get("hyperparameter_source") for rs in by_agent.values() for r in rs}
        for agent, src in sources.items():
            if src:
                lines.append(f"- {agent} hyperparameters: {src}")
        lines.append("")
    breakdown = []
    for kind in ("spiking", "ann"):  # one agent of each kind, both modes, mean over its seeds
        pick = next(((env_id, agent, rs) for env_id, by_agent in envs.items() for agent, rs in by_agent.items()
                     if energy_facts(rs[0])["kind"] == kind), None)
        if pick is None:
            continue
        env_id, agent, rs = pick
        for mode in ("deterministic", "sampled"):
            figs = [mode_figures(r, mode) for r in rs]
            if any(f is None for f in figs):
                continue
            ops = {k: float(np.mean([f["ops"][k] for f in figs])) for k in figs[0]["ops"]}
            en = {t.name: (None if figs[0]["energy"][t.name] is None else
                           {k: float(np.mean([f["energy"][t.name][k] for f in figs])) for k in figs[0]["energy"][t.name]})
                  for t in TABLES}
            breakdown.append((f"{agent} on {env_id}, {mode}", ops, en))
    lines += ["## Energy model", "",
              "Every operation of a decision is counted on both sides (spiking: synaptic accumulates, neuron updates, "
              "sigmoids, comparisons, random draws, spikes and the encoder's exponentials; ANN: MACs, activations, the "
              "softmax and its draw; `spikerl/energy.py` says how each is counted) and priced with two published "
              "per-operation tables; a row's energy is that of its own mode. The spiking agent's deterministic mode "
              "is its `deterministic_outputs` (the threshold network by default; a vote counts each of its sampled "
              "decisions).", "",
              breakdown_markdown(breakdown) if breakdown else "", "Per-operation figures:", "", sources_markdown()]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
