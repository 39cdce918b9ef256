"""The evaluation protocol, written once: every score in spikerl (``evaluate_model``, the
callbacks, ``spikerl eval``, train, bench, tune and the benchmarks) plays its episodes here.
Imports nothing of the package."""
from __future__ import annotations

import numpy as np


def run_episodes(model, env, n_episodes: int, seed: int | None, deterministic: bool) -> tuple[list, list]:
    """Returns and lengths of ``n_episodes`` of ``model.predict`` on ``env`` (reset with
    ``seed`` first, then unseeded)."""
    returns, lengths = [], []
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=seed) if ep == 0 else env.reset()
        done, ret, n = False, 0.0, 0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            if isinstance(action, np.ndarray) and action.ndim == 0:
                action = action.item()  # SB3 answers a Discrete observation with a 0-d array; a vector env would index it
            obs, r, term, trunc, _ = env.step(action)
            ret += float(r)
            n += 1
            done = term or trunc
        returns.append(ret)
        lengths.append(n)
    return returns, lengths


__all__ = ["run_episodes"]
