"""The quick runs behind the defaults (results/default/tuning.txt): train
``SpikingAgent(ENV, seed=s, **JSON)`` for STEPS on each seed, then score the final policy with
SB3's ``evaluate_policy`` over 20 episodes (env seeded 10_000 + s), sampled and deterministic.
Tuning used seeds 0-4 only; reported results use seeds 100-109.

    python benchmarks/quick_eval.py CartPole-v1 100000 0,1 '{"ratio": "joint"}'
"""
import json
import sys
import time

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy

from spikerl import SpikingAgent

env_id, steps, seeds = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
kw = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
for s in seeds:
    t0 = time.time()
    agent = SpikingAgent(env_id, seed=s, **kw).learn(steps)
    dt = time.time() - t0
    env = gym.make(env_id)
    env.reset(seed=10_000 + s)
    sampled, _ = evaluate_policy(agent, env, n_eval_episodes=20, deterministic=False)
    det, _ = evaluate_policy(agent, env, n_eval_episodes=20, deterministic=True)
    print(f"{env_id} seed {s} {kw} sampled {sampled:.1f} det {det:.1f} time {dt:.0f}s sps {steps / dt:.0f} "
          f"{getattr(agent._rule, 'stats', {})}", flush=True)
