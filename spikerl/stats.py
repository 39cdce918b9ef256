"""Aggregate statistics over seeds and tasks with rliable (Agarwal et al., "Deep
Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS 2021): IQM and
optimality gap with stratified-bootstrap confidence intervals, performance profiles, and the
probability that one agent improves on another.

Scores are normalised per task: ``(return - random) / (threshold - random)``, where
``random`` is the mean return of a uniformly random policy over 100 episodes (measured here,
seeded) and ``threshold`` the env file's solved threshold; 1 is "solved", 0 is random.
Optimality gap: the mean shortfall below 1.

Needs the ``stats`` extra (``pip install spikerl[stats]``: rliable, and pandas < 3 for the
``arch`` version rliable supports).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

REPS = 2000
"""Bootstrap resamples."""


def _rliable():
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError as exc:  # pragma: no cover - the stats/dev extras install it
        raise ImportError("aggregate statistics need rliable: pip install 'spikerl[stats]'") from exc
    return rly, metrics


@lru_cache(maxsize=None)
def random_score(env_id: str, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of a uniformly random policy (reset seeds ``seed``+, actions seeded too)."""
    from .evaluation import make_env

    env = make_env(env_id)
    env.action_space.seed(seed)
    total = 0.0
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
    env.close()
    return total / episodes


def normalise(returns, env_id: str, threshold: float) -> np.ndarray:
    lo = random_score(env_id)
    return (np.asarray(returns, float) - lo) / (threshold - lo)


def iqm_ci(values, reps: int = REPS, seed: int = 0) -> tuple[float, float, float]:
    """IQM of one task's per-seed values and its 95% bootstrap interval (rliable)."""
    rly, metrics = _rliable()
    x = np.asarray(values, float).reshape(-1, 1)
    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    point, ci = rly.get_interval_estimates({"a": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps)
    return float(point["a"][0]), float(ci["a"][0, 0]), float(ci["a"][1, 0])


def aggregate(scores: dict, reps: int = REPS, seed: int = 0) -> dict:
    """``scores``: agent -> (runs, tasks) normalised scores. Per agent: IQM, median, mean and
    optimality gap, each with its 95% stratified-bootstrap interval."""
    rly, metrics = _rliable()
    fn = lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_median(s), metrics.aggregate_mean(s),  # noqa: E731
                             metrics.aggregate_optimality_gap(s)])
    np.random.seed(seed)
    point, ci = rly.get_interval_estimates(scores, fn, reps=reps)
    names = ("iqm", "median", "mean", "optimality_gap")
    return {a: {n: (float(point[a][i]), float(ci[a][0, i]), float(ci[a][1, i])) for i, n in enumerate(names)}
            for a in scores}


def probability_of_improvement(scores: dict, pairs: list[tuple[str, str]], reps: int = REPS, seed: int = 0) -> dict:
    """P(X > Y) per pair (X, Y): the probability that a run of X scores above a run of Y on a
    randomly chosen task (Mann-Whitney), with its 95% interval."""
    rly, metrics = _rliable()
    data = {f"{x},{y}": (scores[x], scores[y]) for x, y in pairs}
    np.random.seed(seed)
    point, ci = rly.get_interval_estimates(data, metrics.probability_of_improvement, reps=reps)
    return {k: (float(np.ravel(point[k])[0]), float(np.ravel(ci[k])[0]), float(np.ravel(ci[k])[1])) for k in data}


def performance_profile(scores: dict, path, title: str = "", reps: int = REPS) -> None:
    """Fraction of runs whose normalised score exceeds tau, per agent, with 95% bands."""
    rly, _ = _rliable()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allv = np.concatenate([np.ravel(v) for v in scores.values()])
    taus = np.linspace(max(0.0, allv.min() - 0.05), allv.max() + 0.02, 81)
    np.random.seed(0)
    dist, cis = rly.create_performance_profile(scores, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(6, 4))
    for agent in scores:
        ax.plot(taus, dist[agent], label=agent)
        ax.fill_between(taus, cis[agent][0], cis[agent][1], alpha=0.2)
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel("normalised score tau (0 random, 1 solved threshold)")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def improvement_figure(poi: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.6 * len(poi) + 1.2))
    for i, (k, (p, lo, hi)) in enumerate(poi.items()):
        ax.errorbar([p], [i], xerr=[[p - lo], [hi - p]], fmt="o", capsize=4)
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.set_yticks(range(len(poi)))
    ax.set_yticklabels([k.replace(",", " > ") for k in poi], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(X > Y)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["random_score", "normalise", "iqm_ci", "aggregate", "probability_of_improvement", "performance_profile",
           "improvement_figure"]
