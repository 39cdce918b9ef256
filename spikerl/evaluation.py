"""One evaluation protocol for every agent (spiking and ANN): ``n`` episodes on a fresh
``DummyVecEnv`` seeded with ``seed``, scored by Stable-Baselines3's ``evaluate_policy``
(when SB3 is installed; an equivalent loop otherwise), plus the energy figures of the
decisions made during the evaluation."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from . import envs  # noqa: F401  (registers spikerl's envs)


EVAL_MAX_EPISODE_STEPS = 1_000
"""Evaluation episodes of an env without a time limit (CliffWalking, Blackjack, ...) end
after this many steps, so a policy that loops cannot hang an evaluation; an env's YAML can
set ``make_kwargs: {max_episode_steps: N}`` instead."""


def make_env(env_id: str, make_kwargs: dict | None = None, render_mode: str | None = None):
    kwargs = dict(make_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if "max_episode_steps" not in kwargs and gym.spec(env_id).max_episode_steps is None:
        kwargs["max_episode_steps"] = EVAL_MAX_EPISODE_STEPS
    return gym.make(env_id, **kwargs)


def energy_of(model) -> dict:
    """Per-decision energy figures: spiking agents from their predict statistics, SB3 and
    pg-mlp from MACs per forward pass."""
    from .agent import SpikingAgent

    if isinstance(model, SpikingAgent) and hasattr(model.policy, "topo"):
        e = model.energy_summary("predict")
        return {"spikes_per_decision": e["input_spikes"] + e["hidden_spikes"] + e["output_spikes"],
                "hidden_spikes_per_decision": e["hidden_spikes"], "sops_per_decision": e["sops"],
                "latency": e["latency"], "macs_per_decision": 0.0}
    if isinstance(model, SpikingAgent):  # pg-mlp
        return {"macs_per_decision": float(model.policy.macs), "latency": 1.0}
    from .baselines import macs_per_forward

    return {"macs_per_decision": float(macs_per_forward(model)), "latency": 1.0}


def evaluate_model(model, env_id: str, *, n_episodes: int = 10, seed: int = 10_000, deterministic: bool = True,
                   make_kwargs: dict | None = None) -> dict:
    """Mean/std/IQM-ready returns of ``n_episodes`` and the energy figures of those decisions."""
    from .agent import SpikingAgent

    if isinstance(model, SpikingAgent):
        model.predict_stats[:] = 0.0
    from .baselines import sb3_available, sb3_evaluate

    if sb3_available():
        returns, lengths = sb3_evaluate(model, lambda: make_env(env_id, make_kwargs), n_episodes, seed, deterministic)
    else:
        returns, lengths = _evaluate_loop(model, env_id, n_episodes, seed, deterministic, make_kwargs)
    returns = [float(r) for r in returns]
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "returns": returns,
            "mean_length": float(np.mean(lengths)), **energy_of(model)}


def _evaluate_loop(model, env_id, n_episodes, seed, deterministic, make_kwargs):
    env = make_env(env_id, make_kwargs)
    returns, lengths = [], []
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, ret, n = False, 0.0, 0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, r, term, trunc, _ = env.step(action)
            ret += float(r)
            n += 1
            done = term or trunc
        returns.append(ret)
        lengths.append(n)
    env.close()
    return returns, lengths
