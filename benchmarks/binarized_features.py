"""Does the spiking readout's early decision lose the task's information? A diagnostic.

With the regular input code, by the decision step most spiking decisions take (step 2, the
first an input can reach an output) each receptive field has told the outputs one bit: whether
its value ``f`` is at least ``0.5 / p_max`` (it spiked at step 1); by step 3 a second bit
(``f >= 0.25 / p_max``). This trains ``pg-mlp`` with no hidden layer (a linear softmax, which
matches PPO on Acrobot with the continuous features) on those bits instead of ``f``, policy only
(the critic keeps ``f``), and scores the final policy with SB3's ``evaluate_policy`` (100
episodes, sampled and deterministic, the env seeded ``10_000 + seed``):

    python benchmarks/binarized_features.py Acrobot-v1 --seed 0 --bits 1     # step 2's information
    python benchmarks/binarized_features.py Acrobot-v1 --seed 0 --bits 2     # step 3's (two levels)
    python benchmarks/binarized_features.py Acrobot-v1 --seed 0 --bits 0     # the features themselves
"""
from __future__ import annotations

import argparse

import gymnasium as gym


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("env")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--bits", type=int, choices=(0, 1, 2), default=1, help="0: the features f themselves")
    args = ap.parse_args()

    from stable_baselines3.common.evaluation import evaluate_policy

    from spikerl.hyperparams import AgentConfig
    from spikerl.pg_mlp import MLPPolicy, PGMLPAgent

    p_max = AgentConfig().p_max
    forward = MLPPolicy.forward

    def binarized(self, f):
        if args.bits == 1:
            f = (f >= 0.5 / p_max).astype(f.dtype)
        elif args.bits == 2:
            f = 0.5 * (f >= 0.5 / p_max) + 0.5 * (f >= 0.25 / p_max)
        return forward(self, f)

    MLPPolicy.forward = binarized
    agent = PGMLPAgent(args.env, seed=args.seed, mlp_hidden=0).learn(args.steps)
    env = gym.make(args.env)
    env.reset(seed=10_000 + args.seed)
    for det in (False, True):
        mean, _ = evaluate_policy(agent, env, n_eval_episodes=100, deterministic=det)
        print(f"{args.env} seed {args.seed} bits {args.bits} {'deterministic' if det else 'sampled'}: {mean:.1f}", flush=True)


if __name__ == "__main__":
    main()
