"""The two deterministic output modes (and the sampling mode) on already trained networks.

    python benchmarks/deterministic_modes.py RUN_FOLDER [RUN_FOLDER ...] [--episodes 100]

RUN_FOLDER: a bench folder (``spikerl bench --out``; its ``runs/*`` with a spiking
``model.spk`` are used) or single run folders. Each final model is evaluated with the
benchmark protocol (``evaluate_model``: deterministic SB3 ``evaluate_policy``, seeds 10000+)
three ways: ``threshold`` (every neuron fires iff u > 0, the default), ``median`` (outputs
fire when the probability of no spike yet drops to 1/2) and ``sampled``. Printed per env
and agent: the IQM over seeds of the mean return, and the mean latency (steps), synaptic
operations and energy (0.9 pJ per accumulate) per decision.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from spikerl.evaluation import evaluate_model
from spikerl.report import E_AC_PJ, iqm
from spikerl.serialization import load_model

MODES = ("threshold", "median", "sampled")


def model_paths(folders):
    for folder in map(Path, folders):
        runs = sorted((folder / "runs").glob("*")) if (folder / "runs").is_dir() else [folder]
        for run in runs:
            model = run / "model.spk"
            if model.exists() and "snn" in run.name:
                yield run, model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--episodes", type=int, default=100)
    args = ap.parse_args()
    rows = defaultdict(lambda: {m: [] for m in MODES})
    for run, path in model_paths(args.folders):
        summary = json.loads((run / "summary.json").read_text())
        env, agent = summary["env"], summary["agent"]
        for mode in MODES:
            model = load_model(path, deterministic_outputs="threshold" if mode == "sampled" else mode)
            res = evaluate_model(model, env, n_episodes=args.episodes, deterministic=mode != "sampled")
            rows[env, agent][mode].append(res)
        print(f"  {run.name}: " + ", ".join(f"{m} {rows[env, agent][m][-1]['mean_return']:.1f}" for m in MODES),
              flush=True)
    print("\n| env | agent | mode | seeds | return IQM | latency (steps) | synaptic ops / decision | energy / decision (nJ) |")
    print("|---|---|---|---|---|---|---|---|")
    for (env, agent), by_mode in sorted(rows.items()):
        for mode in MODES:
            rs = by_mode[mode]
            sops = np.mean([r["sops_per_decision"] for r in rs])
            print(f"| {env} | {agent} | {mode} | {len(rs)} | {iqm([r['mean_return'] for r in rs]):.1f} | "
                  f"{np.mean([r['latency'] for r in rs]):.2f} | {sops:,.0f} | {sops * E_AC_PJ / 1000:.2f} |")


if __name__ == "__main__":
    main()
