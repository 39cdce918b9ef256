"""One evaluation protocol for every agent (spiking and ANN), written once
(:func:`spikerl.protocol.run_episodes`): ``n`` episodes on one env, reset with ``seed`` before the first and
unseeded between episodes, one ``predict`` per step, plus the energy figures of the decisions
made. It is Stable-Baselines3's ``evaluate_policy`` on a seeded one-env ``DummyVecEnv``
(``tests/test_evaluation.py`` checks that both give the same returns), without needing SB3.
:func:`evaluate_model`, the callbacks' :func:`spikerl.callbacks.evaluate`, ``spikerl eval``,
the bench and the benchmarks all score through it."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from . import envs  # noqa: F401  (registers spikerl's envs)
from .protocol import run_episodes


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
    from .agent import PolicyGradientAgent
    from .conversion import ConvertedSNN

    if isinstance(model, PolicyGradientAgent) and model.policy.spiking or isinstance(model, ConvertedSNN):
        e = model.energy_summary("predict")
        return {"spikes_per_decision": e["input_spikes"] + e["hidden_spikes"] + e["output_spikes"],
                "hidden_spikes_per_decision": e["hidden_spikes"], "sops_per_decision": e["sops"],
                "latency": e["latency"], "macs_per_decision": 0.0}
    if isinstance(model, PolicyGradientAgent):  # pg-mlp
        return {"macs_per_decision": float(model.policy.macs), "latency": 1.0}
    from .baselines import macs_per_forward

    return {"macs_per_decision": float(macs_per_forward(model)), "latency": 1.0}


def evaluate_model(model, env_id: str, *, n_episodes: int = 10, seed: int = 10_000, deterministic: bool = True,
                   make_kwargs: dict | None = None) -> dict:
    """Mean/std/IQM-ready returns of ``n_episodes`` and the energy figures of those decisions."""
    from .agent import PolicyGradientAgent
    from .conversion import ConvertedSNN

    if isinstance(model, (PolicyGradientAgent, ConvertedSNN)):
        model.predict_stats[:] = 0.0
    env = make_env(env_id, make_kwargs)
    try:
        returns, lengths = run_episodes(model, env, n_episodes, seed, deterministic)
    finally:
        env.close()
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "returns": returns,
            "mean_length": float(np.mean(lengths)), "lengths": lengths, **energy_of(model)}
