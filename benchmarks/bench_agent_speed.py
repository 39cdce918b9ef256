"""Training throughput and predict latency: default CartPole-v1 SpikingAgent vs SB3 PPO
with default settings, measured in the same process, one after the other.

    python benchmarks/bench_agent_speed.py [--steps 50000] [--repeats 3] [--compare hidden_rule=joint]

Prints env-steps/s for training, both agents on one thread (same number of envs: 8; the
default against PPO's defaults in ``--repeats`` turns, the median of the turns' ratios), the
default through the kernel (its replay and its acting decisions: the path before the dense
passes over the stored bits, which give the same gradient up to rounding, and the one-pass
acting decisions, which give the same decisions bit for bit), then
both on every core as their libraries run by default (numba's threads, torch's), and for the spiking agent's loop
without its updates (acting, environments and bookkeeping: the ceiling of any rule), single-observation ``predict``
latency (the compiled one-observation path, and the batched path it replaced, in the same
run), and per decision: spikes and synaptic operations (spiking) vs MACs (PPO).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # both agents on one core

import numpy as np  # noqa: E402
import yaml  # noqa: E402


def predict_latency(model, obs, deterministic, n=2000) -> float:
    model.predict(obs, deterministic=deterministic)
    t0 = time.perf_counter()
    for _ in range(n):
        model.predict(obs, deterministic=deterministic)
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3,
                    help="turns of the headline pair (spiking, then PPO), whose median ratio is reported")
    ap.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE",
                    help="also train the default with this setting (repeatable: one variant with all of them), "
                         "e.g. --compare hidden_rule=joint for the previous default, in the same run")
    args = ap.parse_args()
    variant = {}
    for item in args.compare:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--compare needs KEY=VALUE, got {item!r}")
        variant[key] = yaml.safe_load(value)
    import numba
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from spikerl.agent import SpikingAgent
    from spikerl.baselines import macs_per_forward
    from spikerl.config import load_agent_file, load_env_file, resolve_hyperparameters
    from spikerl.hyperparams import SpikingConfig

    torch.set_num_threads(1)
    numba.set_num_threads(1)  # one core each, the comparison the issue names (every core: below)
    _, af, _ = load_agent_file("fts-snn")
    ef, _ = load_env_file("CartPole-v1")
    hp = resolve_hyperparameters(af, ef, {})

    def train_speed(**kw):
        agent = SpikingAgent("CartPole-v1", seed=0, **kw)
        agent.learn(2000)  # compile + warm up
        t0 = time.perf_counter()
        agent.learn(args.steps)
        return agent, args.steps / (time.perf_counter() - t0)

    def ppo_speed(n_envs):
        # SB3's defaults: PPO("MlpPolicy", env) with n_steps=2048, batch 64, 10 epochs
        model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs, seed=0), seed=0, device="cpu", verbose=0)
        model.learn(2048 * n_envs)
        t0 = time.perf_counter()
        model.learn(args.steps, reset_num_timesteps=False)
        return model, args.steps / (time.perf_counter() - t0)

    # the comparison the issue names, measured in turns (spiking, PPO, spiking, PPO, ...): this
    # shared machine moves either figure by 10-30% within minutes, so each turn's ratio compares
    # runs made next to each other, and the median of the turns is the figure
    turns = []
    for _ in range(args.repeats):
        snn, snn_sps = train_speed(**hp)
        ppo, ppo_sps = ppo_speed(1)  # "PPO with default settings": one env, as PPO("MlpPolicy", "CartPole-v1")
        turns.append((snn_sps, ppo_sps))
    snn_sps = float(np.median([t[0] for t in turns]))
    ppo_sps = float(np.median([t[1] for t in turns]))
    ratio = float(np.median([t[0] / t[1] for t in turns]))
    variant_sps = train_speed(**{**hp, **variant})[1] if variant else None
    # the default through the kernel: its replay through the clamped forward pass and the output
    # scorer (before the dense passes over the stored bits: the same gradient up to rounding) and
    # its acting decisions through the kernel and the continuation (before the one pass: the same bits)
    from spikerl.policy import SpikingPolicy
    one_pass = SpikingPolicy._packed_replay
    SpikingPolicy._packed_replay = property(lambda self: False)
    kernel_replay_sps = train_speed(**hp)[1]
    SpikingPolicy._packed_replay = one_pass

    # the same loop with the updates left out (rollouts collected and dropped): what acting, the
    # environments and the bookkeeping alone allow, the ceiling of any rule in this loop
    idle = SpikingAgent("CartPole-v1", seed=0, **hp)
    idle.learn(2000)
    idle._rule._train = lambda last_values: iter(())
    t0 = time.perf_counter()
    idle.learn(args.steps)
    collect_sps = args.steps / (time.perf_counter() - t0)

    _, ppo8_sps = ppo_speed(hp["n_envs"])

    # every core, as each library runs by default: numba's threads for the spiking agent's
    # batched passes, torch's for PPO (the one-core figures above are the comparison the issue names)
    cores = numba.config.NUMBA_NUM_THREADS
    if cores > 1:
        numba.set_num_threads(cores)
        torch.set_num_threads(cores)
        snn_all_sps = train_speed(**hp)[1]
        ppo_all_sps = ppo_speed(1)[1]
        numba.set_num_threads(1)
        torch.set_num_threads(1)

    obs = np.array([0.01, -0.02, 0.03, 0.01], np.float32)
    lat = {}
    for name, model in (("spiking", snn), ("ppo", ppo)):
        for det in (True, False):
            lat[name, det] = predict_latency(model, obs, det)
    # the batched path (numpy encoder around the kernel), which predict took before the compiled one
    compiled = snn._single_predictor
    snn._single_predictor = lambda deterministic: None
    for det in (True, False):
        lat["batched", det] = predict_latency(snn, obs, det)
    snn._single_predictor = compiled
    mode = snn.config.deterministic_outputs
    for other in ("regular", "threshold", "vote"):  # each deterministic mode, whichever is the default
        snn.config.deterministic_outputs = other
        lat[other] = predict_latency(snn, obs, True)
    snn.config.deterministic_outputs = mode
    snn.predict_stats[:] = 0
    for _ in range(2000):
        snn.predict(np.random.default_rng(0).uniform(-0.05, 0.05, 4).astype(np.float32), deterministic=False)
    e = snn.energy_summary("predict")

    print(f"CartPole-v1, default fts-snn config, {args.steps} steps, one core (OMP/torch threads = 1)")
    print(f"training env-steps/s   spiking ({hp['n_envs']} envs) {snn_sps:9.0f}   PPO default (1 env) {ppo_sps:9.0f}   "
          f"ratio {ratio:6.1f}x   (medians of {len(turns)} turns; each turn's: "
          + ", ".join(f"{s:.0f}/{p:.0f} = {s / p:.1f}x" for s, p in turns) + ")")
    print(f"                       PPO defaults with {hp['n_envs']} envs {ppo8_sps:9.0f}   ratio {snn_sps / ppo8_sps:6.1f}x")
    if variant:
        name = ", ".join(f"{k}={v}" for k, v in variant.items())
        print(f"                       spiking, {name} {variant_sps:9.0f}   ratio to PPO default {variant_sps / ppo_sps:6.1f}x"
              f"   the default's speed / this one's {snn_sps / variant_sps:5.2f}")
    print(f"                       spiking, through the kernel (replay, acting) {kernel_replay_sps:9.0f}   ratio to PPO default "
          f"{kernel_replay_sps / ppo_sps:6.1f}x   the default's speed / this one's {snn_sps / kernel_replay_sps:5.2f}")
    if cores > 1:
        print(f"                       every core ({cores} threads): spiking {snn_all_sps:9.0f}   PPO default (1 env) "
              f"{ppo_all_sps:9.0f}   ratio {snn_all_sps / ppo_all_sps:6.1f}x")
    print(f"collection alone       spiking, no updates {collect_sps:9.0f}   ratio to PPO default {collect_sps / ppo_sps:6.1f}x "
          f"(training spends {1 - snn_sps / collect_sps:.0%} of its time in updates)")
    updates_us = 1e6 * (1 / snn_sps - 1 / collect_sps)  # per env step
    budget_us = 1e6 * (1 / (10 * ppo_sps) - 1 / collect_sps)  # what 10x PPO would leave them
    epochs = SpikingConfig().n_epochs  # the default agent's: each decision replayed that many times
    print(f"updates                {updates_us:6.1f} us per env step; 10x PPO leaves them "
          + (f"{budget_us:.1f} us ({budget_us / epochs:.1f} us per replay over its {epochs} epochs)"
             if budget_us > 0 else "nothing: collection alone is slower than 10x PPO"))
    for det in (True, False):
        s, p, b = lat["spiking", det], lat["ppo", det], lat["batched", det]
        what = f"{mode}, {snn.config.vote_samples} samples" if det and mode == "vote" else ("sampled" if not det else mode)
        print(f"predict latency (deterministic={det!s:5}: {what})  spiking {s * 1e6:7.1f} us   PPO {p * 1e6:7.1f} us   "
              f"spiking/PPO {s / p:5.3f}   (batched path {b * 1e6:7.1f} us, {b / s:4.1f}x slower)")
    for other in ("regular", "threshold", "vote"):
        print(f"predict latency ({other:9}, deterministic)  spiking {lat[other] * 1e6:7.1f} us   "
              f"spiking/PPO deterministic {lat[other] / lat['ppo', True]:5.3f}")
    print(f"per decision (stochastic): spikes {e['input_spikes'] + e['hidden_spikes'] + e['output_spikes']:.1f} "
          f"(input {e['input_spikes']:.1f}, hidden {e['hidden_spikes']:.1f}, output {e['output_spikes']:.1f}), "
          f"synaptic ops {e['sops']:.0f}, latency {e['latency']:.2f} steps;  PPO MACs per forward {macs_per_forward(ppo)}")


if __name__ == "__main__":
    main()
