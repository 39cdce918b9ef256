"""Does a trained spiking policy use its hidden layer? Scores saved agents (sampled decisions,
evaluation seeds 50_000+) intact and with every hidden -> output synapse cut (weight 0); a
policy whose score does not move decides from its input -> output synapses alone.

    python benchmarks/hidden_lesion.py Acrobot-v1 runs/tune-post/Acrobot-v1__fts-snn__post__s1.spk [more.spk ...]
"""
from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from spikerl import SpikingAgent


def mean_return(agent, env_id: str, episodes: int) -> float:
    env = gym.make(env_id)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=50_000 + ep)
        done, total = False, 0.0
        while not done:
            action, _ = agent.predict(obs, deterministic=False)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("env")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args()
    for path in args.models:
        agent = SpikingAgent.load(path)
        intact = mean_return(agent, args.env, args.episodes)
        topo = agent.policy.topo
        out0 = topo.n_in + topo.n_hid
        theta = agent.policy.theta.copy()
        cut = (topo.pre >= topo.n_in) & (topo.pre < out0) & (topo.post >= out0)
        agent.policy.params.w[cut] = 0.0
        agent.policy.set_theta(agent.policy.theta)  # predictors rebuild from the changed parameters
        agent.__dict__.pop("_predictors", None)
        lesioned = mean_return(agent, args.env, args.episodes)
        agent.policy.set_theta(theta)
        print(f"{path}: intact {intact:.1f}, hidden -> output cut {lesioned:.1f} "
              f"({int(cut.sum())} synapses, {args.episodes} sampled episodes)")


if __name__ == "__main__":
    main()
