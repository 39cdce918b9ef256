"""How random is a trained spiking policy, state by state?

Plays a saved agent's deterministic mode (``--mode``, default today's) for a few episodes (evaluation seeds 50_000+), and
at every ``--every``-th state it visited draws ``--samples`` sampled decisions. Prints:

- silent: the fraction of sampled decisions in which no output spiked by T (the action is then
  uniform);
- tie: the fraction in which two or more outputs spiked together at t* (the decoder then picks
  one of them uniformly);
- max p: the mean over states of the most frequent sampled action's probability (1: the sampled
  policy is deterministic);
- max p, spiking: the same among the decisions in which an output spiked;
- p(det): the mean probability that a sampled decision takes the deterministic mode's action;
- det != mode: the fraction of states where the deterministic mode's action is not the
  sampled policy's most frequent one.
- by decision step (latency 1..T, sampled decisions in which an output spiked): their share and
  how often they take the state's most frequent action (the first step an input can reach an
  output is 2: a synapse delays by one step, and at step 1 an output fires on its bias alone).

    python benchmarks/policy_sharpness.py runs/regnet-default/LunarLander-v3__fts-snn__s100.spk LunarLander-v3
"""
from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np


def sharpness(agent, env_id: str, episodes: int = 5, every: int = 3, samples: int = 200) -> dict:
    env = gym.make(env_id)
    states = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=50_000 + ep)
        done = False
        while not done:
            states.append(obs)
            action, _ = agent.predict(obs, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    S = np.asarray(states)[::every]
    out = agent.decide(np.repeat(S, samples, axis=0), False)
    acts = out.action.reshape(len(S), samples)
    silent = out.no_spike.reshape(len(S), samples)
    n = len(agent.action_values)
    P = np.stack([(acts == i).mean(1) for i in range(n)], 1)
    spiking = np.stack([((acts == i) & ~silent).sum(1) for i in range(n)], 1) / np.maximum((~silent).sum(1), 1)[:, None]
    det = agent.decide(S, True).action
    latency = out.latency.reshape(len(S), samples)
    agrees = acts == P.argmax(1)[:, None]
    by_step = {int(L): (float(((latency == L) & ~silent).mean()), float(agrees[(latency == L) & ~silent].mean()))
               for L in np.unique(latency[~silent])}
    tie = out.spikes[:, 2] >= 2  # output spikes up to t* are those at t*
    return {"states": len(S), "silent": float(silent.mean()), "tie": float(tie.mean()), "max p": float(P.max(1).mean()),
            "max p, spiking": float(spiking.max(1).mean()), "p(det)": float(P[np.arange(len(S)), det].mean()),
            "det != mode": float((P.argmax(1) != det).mean()), "by step": by_step}


def main() -> None:
    from spikerl import SpikingAgent
    from spikerl.hyperparams import SpikingConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a saved spiking agent (.spk)")
    ap.add_argument("env", help="the Gymnasium id it was trained on")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--mode", default=SpikingConfig().deterministic_outputs,
                    help="the deterministic mode to compare (default: today's default, whatever the model was saved with)")
    args = ap.parse_args()
    agent = SpikingAgent.load(args.model, deterministic_outputs=args.mode)
    figures = sharpness(agent, args.env, args.episodes, args.every, args.samples)
    by_step = figures.pop("by step")
    print(f"{args.model} ({agent.config.deterministic_outputs} as the deterministic mode): "
          + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))
    print("  decided at step (latency): share of sampled decisions, share taking the state's most frequent action")
    for L, (share, agree) in by_step.items():
        print(f"  {L}: {share:.3f}, {agree:.3f}")


if __name__ == "__main__":
    main()
