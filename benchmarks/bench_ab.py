"""Training speed of this checkout's package against another commit's, in one process, in turns.

    python benchmarks/bench_ab.py --ref 80da953 [--env CartPole-v1] [--chunk 4096] [--turns 12]

This shared 2-core machine moves a training speed by 10-30% within minutes, more than most code
changes are worth, so two runs made minutes apart cannot tell them apart. Here the same agent,
``SpikingAgent(env, seed=0)``, is built from both packages (the other commit's extracted with
``git archive`` and imported under another name) and trained in alternating chunks of ``--chunk``
steps (each pair's order swapped every turn), timed by CPU time; each turn's ratio compares runs
made next to each other and the median over the turns is the figure. It also reports whether both
trained to the same parameters (a change meant to keep the bits).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def import_ref(ref: str, where: Path):
    """The ``spikerl`` package of commit ``ref``, imported as ``spikerl_ref``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "spikerl"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(where, filter="data")
    (where / "spikerl").rename(where / "spikerl_ref")
    sys.path.insert(0, str(where))
    return importlib.import_module("spikerl_ref.agent")


def digest(agent) -> str:
    return hashlib.sha256(agent.policy.theta.tobytes() + agent.critic.c.tobytes()).hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True, help="the commit to compare with (e.g. main~5)")
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--chunk", type=int, default=4096, help="steps per timed chunk")
    ap.add_argument("--turns", type=int, default=12)
    args = ap.parse_args()
    import numba

    numba.set_num_threads(1)
    from spikerl.agent import SpikingAgent

    with tempfile.TemporaryDirectory() as tmp:
        RefAgent = import_ref(args.ref, Path(tmp)).SpikingAgent
        agents = {"this checkout": SpikingAgent(args.env, seed=0), args.ref: RefAgent(args.env, seed=0)}
        for agent in agents.values():
            agent.learn(2000)  # compile (or load the cache) and warm up
        same = len({digest(a) for a in agents.values()}) == 1
        times = {name: [] for name in agents}
        for turn in range(args.turns):
            for name in (list(agents) if turn % 2 == 0 else list(agents)[::-1]):
                t0 = time.process_time()
                agents[name].learn(args.chunk, reset_num_timesteps=False)
                times[name].append(time.process_time() - t0)
        same = same and len({digest(a) for a in agents.values()}) == 1
    new, old = np.array(times["this checkout"]), np.array(times[args.ref])
    ratio = old / new
    print(f"{args.env}, SpikingAgent(env, seed=0), {args.turns} turns of {args.chunk} steps each, CPU time")
    print(f"this checkout {args.chunk / np.median(new):8.0f} env-steps/s   {args.ref} {args.chunk / np.median(old):8.0f}   "
          f"speed ratio (median of the turns) {np.median(ratio):.3f}")
    print("each turn's: " + ", ".join(f"{r:.2f}" for r in ratio))
    print("the same parameters after the warm-up and after the last turn: " + ("yes (the same bits)" if same else "no"))


if __name__ == "__main__":
    main()
