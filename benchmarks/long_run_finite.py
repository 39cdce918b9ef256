"""A long CartPole-v1 run (default 1M steps) with the shipped fts-snn config: parameters,
critic and every decision statistic must stay finite; prints ranges and throughput.

    python benchmarks/long_run_finite.py [--steps 1000000] [--seed 0]
"""
import argparse
import time

import numpy as np

from spikerl import SpikingAgent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    agent = SpikingAgent.from_config("CartPole-v1", seed=args.seed)
    t0 = time.time()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        agent.learn(args.steps)
    dt = time.time() - t0
    theta = agent.policy.theta
    finite = bool(np.isfinite(theta).all() and np.isfinite(agent.critic.c).all() and np.isfinite(agent.decision_stats).all())
    rets = [e["r"] for e in agent.ep_info_buffer]
    print(f"{agent.num_timesteps} steps in {dt:.0f} s ({agent.num_timesteps / dt:.0f} steps/s); finite: {finite}")
    print(f"theta in [{theta.min():.2f}, {theta.max():.2f}], |theta| mean {np.abs(theta).mean():.3f}; "
          f"critic in [{agent.critic.c.min():.2f}, {agent.critic.c.max():.2f}]; last 100 training episodes: "
          f"mean return {np.mean(rets):.1f}")
    if not finite:
        raise SystemExit("non-finite values")


if __name__ == "__main__":
    main()
