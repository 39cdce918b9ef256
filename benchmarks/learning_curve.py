"""Is a default agent still learning at the end of its budget? Trains ``SpikingAgent(ENV,
seed=SEED)`` (plus ``--set KEY=VALUE`` overrides) for ``--steps`` and scores the policy of the
moment ten times along the way (every tenth of the budget, ``--episodes`` episodes each from
evaluation seed 10,000 on, sampled and deterministic), printing one line per score. The learning
rate schedule is the one of a single ``learn(steps)`` call, as in every reported run.

    python benchmarks/learning_curve.py LunarLander-v3 --steps 1000000 --seed 0
"""
from __future__ import annotations

import argparse

import gymnasium as gym

from spikerl import SpikingAgent
from spikerl.callbacks import CallbackList, EvalCallback
from spikerl.config import parse_overrides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("env")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    def scorer(deterministic: bool) -> EvalCallback:
        name = "deterministic" if deterministic else "sampled"
        return EvalCallback(gym.make(args.env), eval_freq=max(args.steps // args.points, 1),
                            n_eval_episodes=args.episodes, deterministic=deterministic, seed=10_000,
                            on_result=lambda t, r: print(f"{t:>9} {name:<13} {r['mean_return']:8.1f}", flush=True))

    overrides = parse_overrides(args.set)
    agent = SpikingAgent(args.env, seed=args.seed, **overrides)
    print(f"{args.env} seed {args.seed} {args.steps} steps {overrides or ''}")
    agent.learn(args.steps, callback=CallbackList([scorer(False), scorer(True)]))


if __name__ == "__main__":
    main()
