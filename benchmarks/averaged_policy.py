"""Would the mean of the last iterates make a better final policy than the last iterate?
Trains ``SpikingAgent(ENV, seed=SEED)`` (plus ``--set KEY=VALUE`` overrides) for ``--steps``
while keeping exponential moving averages of its parameters (``--horizons``, in env steps;
updated after every vector step, so acting and learning are untouched), then scores the final
parameters and each average by default_agent.py's protocol (100 episodes per mode from
evaluation seed 50,000; deterministic = the agent's deterministic mode).

    python benchmarks/averaged_policy.py Acrobot-v1 --seed 0
"""
from __future__ import annotations

import argparse

from spikerl import SpikingAgent
from spikerl.config import parse_overrides
from spikerl.evaluation import evaluate_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("env")
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--horizons", default="25000,100000", help="comma-separated EMA horizons in env steps")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    horizons = [int(h) for h in args.horizons.split(",")]
    agent = SpikingAgent(args.env, seed=args.seed, **parse_overrides(args.set))
    n_envs = agent.config.n_envs
    emas: dict = {}

    def average(a) -> bool:
        for h in horizons:
            if h not in emas:
                emas[h] = a.policy.theta.copy()
            else:
                keep = max(0.0, 1.0 - n_envs / h)
                emas[h] *= keep
                emas[h] += (1.0 - keep) * a.policy.theta
        return True

    agent.learn(args.steps, callback=average)
    candidates = [("final", agent.policy.theta.copy())] + [(f"average over {h:,} steps", emas[h]) for h in horizons]
    for name, theta in candidates:
        agent.policy.theta[:] = theta  # in place: predict's compiled path keeps reading this array
        scores = [evaluate_model(agent, args.env, n_episodes=args.episodes, seed=50_000, deterministic=det)["mean_return"]
                  for det in (False, True)]
        print(f"{args.env} seed {args.seed} {name:<28} sampled {scores[0]:7.1f}  deterministic {scores[1]:7.1f}", flush=True)


if __name__ == "__main__":
    main()
