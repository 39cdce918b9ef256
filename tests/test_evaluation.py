"""The one evaluation protocol (spikerl.protocol.run_episodes) gives what SB3's
evaluate_policy gives on a seeded one-env DummyVecEnv, for spiking and SB3 agents alike, and
the callbacks score through it too."""
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from spikerl.baselines import sb3_evaluate
from spikerl.callbacks import evaluate
from spikerl.evaluation import evaluate_model, make_env
from spikerl.serialization import load_model

TRAINED = Path(__file__).resolve().parents[1] / "results" / "show" / "cartpole-fts-snn-s100.spk"


@pytest.mark.parametrize("deterministic", [False, True])
def test_protocol_equals_sb3_evaluate_policy_for_a_spiking_agent(deterministic):
    model = load_model(TRAINED)
    model.predict_rng = np.random.default_rng(9)
    mine = evaluate_model(model, "CartPole-v1", n_episodes=6, seed=123, deterministic=deterministic)
    model.predict_rng = np.random.default_rng(9)
    theirs, lengths = sb3_evaluate(model, lambda: make_env("CartPole-v1"), 6, 123, deterministic)
    assert mine["returns"] == [float(r) for r in theirs]
    assert mine["mean_length"] == pytest.approx(np.mean(lengths))


def test_protocol_equals_sb3_evaluate_policy_for_ppo():
    import torch
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", n_steps=64, batch_size=64).learn(640)
    for det in (False, True):
        torch.manual_seed(5)
        mine = evaluate_model(model, "CartPole-v1", n_episodes=5, seed=77, deterministic=det)["returns"]
        torch.manual_seed(5)
        theirs = sb3_evaluate(model, lambda: make_env("CartPole-v1"), 5, 77, det)[0]
        assert mine == [float(r) for r in theirs]
    assert len(set(mine)) > 1  # episodes differ: the env is not reseeded between them


def test_callbacks_evaluate_is_the_same_protocol():
    model = load_model(TRAINED)
    model.predict_rng = np.random.default_rng(1)
    a = evaluate(model, gym.make("CartPole-v1"), 4, deterministic=False, seed=5)
    model.predict_rng = np.random.default_rng(1)
    b = evaluate_model(model, "CartPole-v1", n_episodes=4, seed=5, deterministic=False)
    assert a["returns"] == b["returns"] and a["latency"] == pytest.approx(b["latency"])
    assert a["sops_per_decision"] == pytest.approx(b["sops_per_decision"]) and a["sops_per_decision"] > 0


def test_sb3_agents_are_scored_on_discrete_observation_tasks():
    """SB3's predict answers an int observation (FrozenLake, Taxi) with a 0-d array, which the
    toy-text envs cannot index; the protocol steps with its value, as SB3's vector env does."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    model = PPO("MlpPolicy", "FrozenLake-v1", device="cpu", seed=0, n_steps=64)
    res = evaluate_model(model, "FrozenLake-v1", n_episodes=5, seed=3, deterministic=True)
    ref, _ = evaluate_policy(model, make_vec_env("FrozenLake-v1", n_envs=1, seed=3), n_eval_episodes=5,
                             deterministic=True, return_episode_rewards=True)
    assert res["returns"] == ref
