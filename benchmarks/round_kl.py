"""How far each training round moves the policy: the mean approximate KL and clip fraction of
the proximal rule's rounds over a short run, for several settings side by side.

    python benchmarks/round_kl.py Acrobot-v1 --steps 20000 --seed 0 \\
        --setting "n_hidden=0 n_projections=0 critic=mix" --setting "n_hidden=0 n_projections=24 critic=mix"

Each ``--setting`` is KEY=VALUE pairs (YAML values) for ``SpikingAgent(env, seed=seed, ...)``;
without any, the default is measured. Also prints the input spikes per training decision.
"""
from __future__ import annotations

import argparse

import numpy as np
import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("env")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--setting", action="append", default=[])
    args = ap.parse_args()
    from spikerl import SpikingAgent

    for setting in args.setting or [""]:
        kw = {}
        for item in setting.split():
            key, sep, value = item.partition("=")
            if not sep:
                ap.error(f"--setting needs KEY=VALUE pairs, got {item!r}")
            kw[key] = yaml.safe_load(value)
        agent = SpikingAgent(args.env, seed=args.seed, **kw)
        kls, clips, seen = [], [], [-1]

        def callback(a):
            st = getattr(a._rule, "stats", {})
            if st and a.n_updates != seen[0]:  # one entry per finished round
                seen[0] = a.n_updates
                kls.append(st["approx_kl"])
                clips.append(st["clip_fraction"])
            return True

        agent.learn(args.steps, callback=callback)
        d = agent.decision_stats
        print(f"{setting or 'default':50s} rounds {len(kls):4d}  approx_kl {np.mean(kls):.4f}  "
              f"clip_fraction {np.mean(clips):.3f}  input spikes/decision {d[1] / max(d[0], 1):.1f}", flush=True)


if __name__ == "__main__":
    main()
