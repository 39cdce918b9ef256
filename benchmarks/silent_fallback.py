"""Does the uniform action of a silent decision (no output spike by T) cost a trained spiking
policy its return? Plays a saved agent's sampled mode for ``--episodes`` episodes (evaluation
seeds 10,000+) twice: as it is (a silent decision takes a uniform action) and with every silent
decision's action replaced by the deterministic mode's action for that observation; prints the
mean return and the share of silent decisions of each.

    python benchmarks/silent_fallback.py runs/post2-report/Acrobot-v1__fts-snn__post2__s100.spk Acrobot-v1
"""
from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from spikerl import SpikingAgent


def play(agent, env_id: str, episodes: int, fallback: bool) -> tuple[float, float]:
    env = gym.make(env_id)
    returns, silent, decisions = [], 0, 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000 + ep)
        done, total = False, 0.0
        while not done:
            out = agent.decide(np.asarray(obs)[None], False)
            action = int(out.action[0])
            decisions += 1
            if out.no_spike[0]:
                silent += 1
                if fallback:
                    action = int(agent.decide(np.asarray(obs)[None], True).action[0])
            obs, reward, terminated, truncated, _ = env.step(agent.action_values[action])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns)), silent / max(decisions, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("env")
    ap.add_argument("--episodes", type=int, default=100)
    args = ap.parse_args()
    agent = SpikingAgent.load(args.model)
    for fallback in (False, True):
        ret, silent = play(agent, args.env, args.episodes, fallback)
        name = "deterministic mode's action" if fallback else "uniform action (as trained)"
        print(f"{args.model}: silent -> {name}: mean return {ret:.1f}, silent decisions {silent:.3f}")


if __name__ == "__main__":
    main()
