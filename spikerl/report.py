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


def table_rows(env_id: str, by_agent: dict) -> list[str]:
    rows = ["| agent | final return IQM [95% CI] | solved (seeds) | median steps to solve | wall time s | env steps/s (with evaluations) | "
            "parameters | spikes / decision | synaptic ops / decision | MACs / decision | energy / decision (nJ) | latency (steps) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for agent, runs in by_agent.items():
        final = [r["summary"]["final_mean_return"] for r in runs]
        _, lo, hi = iqm_ci(final)
        solved = [r["summary"].get("first_solved_step") for r in runs]
        solved_steps = [s for s in solved if s is not None]
        sm = lambda k: float(np.mean([r["summary"].get(k) or 0.0 for r in runs]))  # noqa: E731
        spikes, sops, macs = sm("spikes_per_decision"), sm("sops_per_decision"), sm("macs_per_decision")
        energy = (sops * E_AC_PJ + macs * E_MAC_PJ) / 1000.0
        rows.append(
            f"| {agent} | {_fmt(iqm(final))} [{_fmt(lo)}, {_fmt(hi)}] | {len(solved_steps)}/{len(runs)} | "
            f"{_fmt(float(np.median(solved_steps)) if solved_steps else None, 0)} | {_fmt(sm('wall_time'))} | "
            f"{_fmt(sm('steps_per_second'), 0)} | {int(sm('n_parameters')):,} | {_fmt(spikes) if spikes else '-'} | "
            f"{_fmt(sops, 0) if sops else '-'} | {_fmt(macs, 0) if macs else '-'} | {_fmt(energy, 2)} | {_fmt(sm('latency'), 2)} |"
        )
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
        spiking = {a: rs for a, rs in by_agent.items() if rs[0]["cfg"]["kind"] == "spiking"}
        if spiking:
            lines += ["Spiking agents in sampling mode (stochastic first-to-spike decisions, same episodes):", "",
                      "| agent | return IQM [95% CI] | spikes / decision | hidden spikes / decision | "
                      "synaptic ops / decision | energy / decision (nJ) | latency (steps) |",
                      "|---|---|---|---|---|---|---|"]
            for agent, rs in spiking.items():
                sm = [r["summary"]["sampled"] for r in rs]
                ret = [x["mean_return"] for x in sm]
                _, lo, hi = iqm_ci(ret)
                avg = lambda k: float(np.mean([x[k] for x in sm]))  # noqa: E731
                lines.append(f"| {agent} | {_fmt(iqm(ret))} [{_fmt(lo)}, {_fmt(hi)}] | {_fmt(avg('spikes_per_decision'))} | "
                             f"{_fmt(avg('hidden_spikes_per_decision'))} | {_fmt(avg('sops_per_decision'), 0)} | "
                             f"{_fmt(avg('sops_per_decision') * E_AC_PJ / 1000, 2)} | {_fmt(avg('latency'), 2)} |")
            lines.append("")
        sources = {r["cfg"]["agent"]: r["cfg"].get("hyperparameter_source") for rs in by_agent.values() for r in rs}
        for agent, src in sources.items():
            if src:
                lines.append(f"- {agent} hyperparameters: {src}")
        lines.append("")
    lines += ["## Energy model", "",
              f"Energy per decision = synaptic accumulate operations x {E_AC_PJ:.1f} pJ (spiking) + multiply-accumulates "
              f"x {E_MAC_PJ:.1f} pJ (ANN). Source: {ENERGY_SOURCE}. In the main tables spiking figures are measured "
              "on the evaluation decisions in deterministic mode (the threshold network, spike iff u > 0; when no "
              "output crosses 0 the decision waits for T steps); the 'sampling mode' tables give the "
              "same trained networks making stochastic first-to-spike decisions, the mode the model is built and "
              "trained for. ANN MACs count the layers one `predict` runs.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
