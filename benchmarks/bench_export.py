"""The exported C policy against the Python agent and SB3 PPO, in one run.

    python benchmarks/bench_export.py [--model results/show/cartpole-fts-snn-s100.spk] [--episodes 100] \\
        [--md results/export/bench.md]

Prints
- decision latency: the compiled C module (a native loop over recorded observations, no
  Python in between), ``SpikingAgent.predict`` and SB3 PPO's ``predict`` (one observation);
- return of the Python agent and of the exported float64, int16 and int8 modules over the
  same episodes (reset seeds 50_000+, 100 episodes, sampled and deterministic modes), the C
  modules seeded with the agent's generator state: the float64 module must reproduce the
  Python returns exactly;
- the footprint table (flash, RAM, operations per decision; PPO's actor in float32).
The C compiler and flags: ``cc -std=c99 -O2`` (tests add ``-Wall -Wextra -Werror -pedantic``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

DRIVER = r"""
#define _POSIX_C_SOURCE 199309L
#include "spk_policy.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    long n = atol(argv[2]), i, r, reps = atol(argv[4]), acc = 0;
    int mode = atoi(argv[3]);
    double *obs = malloc(sizeof(double) * n * SPK_POLICY_N_OBS);
    static spk_policy_state st;
    spk_policy_result res;
    struct timespec t0, t1;
    if (!f || !obs || fread(obs, sizeof(double), n * SPK_POLICY_N_OBS, f) != (size_t)(n * SPK_POLICY_N_OBS))
        return 1;
    spk_policy_init(&st, 0, 1, 0, 1);
    for (i = 0; i < n; i++)
        acc += spk_policy_decide(&st, obs + i * SPK_POLICY_N_OBS, mode, &res);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (r = 0; r < reps; r++)
        for (i = 0; i < n; i++)
            acc += spk_policy_decide(&st, obs + i * SPK_POLICY_N_OBS, mode, &res);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.6f %ld\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (double)(reps * n), acc);
    return 0;
}
"""


def episodes(policy_step, n, seed0=50_000):
    """Returns of ``n`` CartPole episodes (reset seeds ``seed0 + k``) and the per-decision figures."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    rets, figs = [], []
    for k in range(n):
        obs, _ = env.reset(seed=seed0 + k)
        done, ret = False, 0.0
        while not done:
            action, fig = policy_step(obs)
            figs.append(fig)
            obs, r, term, trunc, _ = env.step(action)
            ret += float(r)
            done = term or trunc
        rets.append(ret)
    return np.array(rets), figs


def latency_predict(model, obs, deterministic, n=2000):
    model.predict(obs[0], deterministic=deterministic)
    t0 = time.perf_counter()
    for i in range(n):
        model.predict(obs[i % len(obs)], deterministic=deterministic)
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "results" / "show" / "cartpole-fts-snn-s100.spk"))
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--md", help="also write the tables to this Markdown file")
    args = ap.parse_args()
    import torch
    from stable_baselines3 import PPO

    from c_bridge import CPolicy, compile_module, compiler
    from spikerl.export import export_c, footprint, footprint_markdown
    from spikerl.serialization import load_model

    torch.set_num_threads(1)
    model = load_model(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="spikerl-export-"))
    mods = {}
    for weights in ("float", "int16", "int8"):
        d = tmp / weights
        rep = export_c(model, d, weights=weights)
        mods[weights] = (CPolicy(compile_module(d)), rep)
    out = []
    say = lambda s="": (print(s), out.append(s))  # noqa: E731
    say(f"model {args.model}; machine: {os.cpu_count()} cores, {compiler()} -O2; {time.strftime('%Y-%m-%d')}")

    # ---- returns: same episodes, same random stream -------------------------------
    say("\n| policy | mode | mean return | min | episodes | equal to Python, episode by episode |")
    say("|---|---|---|---|---|---|")
    figs_by_mode = {}
    obs_pool = []
    for mode_name, det, cmode in (("sampled", False, 0), ("deterministic (vote)", True, 1)):
        model.predict_rng = np.random.default_rng(0)

        def py_step(o):
            obs_pool.append(np.asarray(o, np.float64))
            out_ = model.decide(np.asarray(o, np.float64)[None], det)
            return model.action_values[out_.action[0]], None

        py, _ = episodes(py_step, args.episodes)
        say(f"| Python SpikingAgent | {mode_name} | {py.mean():.1f} | {py.min():.0f} | {len(py)} | |")
        for weights, (c, _) in mods.items():
            c.seed_from(np.random.default_rng(0))

            def c_step(o, c=c):
                a, r = c.decide(o, cmode)
                return model.action_values[a], (r.latency, tuple(r.spikes), r.sops)

            ret, figs = episodes(c_step, args.episodes)
            if weights == "float":
                figs_by_mode[mode_name] = figs
            label = {"float": "C float64", "int16": "C int16 weights", "int8": "C int8 weights"}[weights]
            say(f"| {label} | {mode_name} | {ret.mean():.1f} | {ret.min():.0f} | {len(ret)} | "
                f"{'yes' if np.array_equal(ret, py) else 'no'} |")

    # ---- latency --------------------------------------------------------------------
    pool = np.array(obs_pool[:: max(1, len(obs_pool) // 5000)][:5000])
    pool.tofile(tmp / "obs.bin")
    drv = tmp / "driver.c"
    drv.write_text(DRIVER)
    exe = tmp / "driver"
    subprocess.run([compiler(), "-std=c99", "-O2", "-I", str(tmp / "float"), str(drv), str(tmp / "float" / "spk_policy.c"),
                    "-o", str(exe), "-lm"], check=True)
    ppo = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    say("\n| decision latency, one observation | sampled (us) | deterministic (us) |")
    say("|---|---|---|")
    c_lat = []
    for mode in (0, 1):
        res = subprocess.run([str(exe), str(tmp / "obs.bin"), str(len(pool)), str(mode), "5"], capture_output=True,
                             text=True, check=True)
        c_lat.append(float(res.stdout.split()[0]) / 1000)
    py_lat = [latency_predict(model, pool, d) * 1e6 for d in (False, True)]
    ppo_lat = [latency_predict(ppo, pool.astype(np.float32), d) * 1e6 for d in (False, True)]
    say(f"| exported C module (float64, native loop) | {c_lat[0]:.2f} | {c_lat[1]:.2f} |")
    say(f"| SpikingAgent.predict (Python + numba) | {py_lat[0]:.2f} | {py_lat[1]:.2f} |")
    say(f"| SB3 PPO predict (torch, 1 thread) | {ppo_lat[0]:.2f} | {ppo_lat[1]:.2f} |")
    say(f"| ratio PPO / C | {ppo_lat[0] / c_lat[0]:.0f}x | {ppo_lat[1] / c_lat[1]:.0f}x |")

    # ---- footprint --------------------------------------------------------------------
    for mode_name, figs in list(figs_by_mode.items())[:1]:  # a vote is vote_samples such runs
        lat = np.array([f[0] for f in figs])
        spk = np.array([f[1] for f in figs])
        sops = np.array([f[2] for f in figs])
        for weights in ("float", "int16"):
            rep = footprint(model, weights=weights, flash_tables=mods[weights][1]["flash_bytes"],
                            decisions={"latency": lat, "spikes": spk, "sops": sops}, ppo=ppo)
            say(f"\nFootprint, {weights} weights, mean over the {mode_name} episodes above "
                f"(the deterministic vote runs {model.config.vote_samples} of them per decision):\n")
            say(footprint_markdown(rep).rstrip())
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
