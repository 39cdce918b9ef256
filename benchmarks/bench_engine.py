"""Decision throughput of the compiled kernel vs the numpy reference (same run, same inputs).

    python benchmarks/bench_engine.py [--quick]

1. CartPole-sized network: population-coded 4-dim observation (8 fields -> 32 inputs),
   48 hidden, 2 outputs, T=12, with eligibilities (and without: inference); B = 1 and B = 64
   (B >= 32 runs on all of numba's threads, shown once on one thread too; BLAS is kept to
   one thread, see below).
2. Scaling: hidden layer 64 -> 4096 with a fixed fan-in of 32 (sparse), T=12, B=16:
   time per decision next to synapse count (cost should follow synapses, not N^2).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# BLAS worker threads busy-wait after every call and would take the cores from numba's
# threads; the reference's products are tiny and gain nothing from them.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from naive import naive_decide  # noqa: E402

from numba import get_num_threads, set_num_threads  # noqa: E402

from spikerl.engine import Workspace, decide  # noqa: E402
from spikerl.kernels import exponential_bank  # noqa: E402
from spikerl.network import init_params, layered, sparse_layered  # noqa: E402


def timeit(fn, min_time=0.2, repeats=5, max_reps=10_000):
    """Seconds per call: the best of ``repeats`` timings of at least ``min_time`` each (the
    minimum is the least disturbed by other work on a shared machine; both sides of every
    ratio are measured the same way)."""
    fn()  # warm-up (compilation)
    best = float("inf")
    for _ in range(repeats):
        reps, t0 = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            dt = time.perf_counter() - t0
            if dt >= min_time or reps >= max_reps:
                break
        best = min(best, dt / reps)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller scaling sweep")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    a, b = exponential_bank(2.0, 12), exponential_bank(1.0, 12)  # memory covers T: recursive traces
    T = 12
    topo = layered(32, 48, 2, skip=True)
    params = init_params(topo, 1, 1, rng=rng, w_scale=2.0)
    print(f"CartPole-sized network: {topo.n_neurons} neurons, {topo.n_synapses} synapses, T={T}, learn=True; "
          f"{get_num_threads()} numba threads")
    print("(the reference always computes eligibilities; 'compiled, no learn' is the inference path)")
    print(f"{'B':>4} {'threads':>7} {'compiled dec/s':>15} {'numpy dec/s':>12} {'speed-up':>9} "
          f"{'compiled, no learn':>19} {'speed-up':>9}")
    threads = get_num_threads()
    for B, n_threads in ((1, 1), (64, 1), (64, threads)) if threads > 1 else ((1, 1), (64, 1)):
        set_num_threads(n_threads)
        p_in = rng.random((B, 32, T)) * 0.5
        U, tie = rng.random((B, topo.n_neurons, T)), rng.random(B)
        ws = Workspace()
        t_fast = timeit(lambda: decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True, workspace=ws))
        t_infer = timeit(lambda: decide(topo, params, a, b, p_in, uniforms=U, tie=tie, workspace=ws))
        t_slow = timeit(lambda: naive_decide(topo, params, a, b, p_in, U, tie), repeats=3, max_reps=20)
        print(f"{B:>4} {n_threads:>7} {B / t_fast:>15.0f} {B / t_slow:>12.1f} {t_slow / t_fast:>8.0f}x "
              f"{B / t_infer:>19.0f} {t_slow / t_infer:>8.0f}x")
    set_num_threads(threads)

    print("\nScaling at fixed fan-in 32 (B=16, T=12, learn=True):")
    print(f"{'hidden':>7} {'synapses':>9} {'us/decision':>12} {'ns/synapse':>11} {'spikes/dec':>11} "
          f"{'syn.ops/dec':>12} {'ns/syn.op':>10}")
    sizes = (64, 256, 1024) if args.quick else (64, 256, 1024, 4096)
    for n_hid in sizes:
        topo = sparse_layered(32, n_hid, 4, fan_in=32, seed=0)
        params = init_params(topo, 1, 1, rng=rng, w_scale=2.0, bias_out=-4.0)
        B = 16
        p_in = rng.random((B, 32, T)) * 0.5
        U, tie = rng.random((B, topo.n_neurons, T)), rng.random(B)  # drawn once, as above
        ws = Workspace()
        r = decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True)
        t = timeit(lambda: decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True, workspace=ws))
        per, sops = t / B, r.sops.mean()
        print(f"{n_hid:>7} {topo.n_synapses:>9} {per * 1e6:>12.1f} {per / topo.n_synapses * 1e9:>11.2f} "
              f"{r.spikes.sum(1).mean():>11.1f} {sops:>12.0f} {per / sops * 1e9:>10.2f}")


if __name__ == "__main__":
    main()
