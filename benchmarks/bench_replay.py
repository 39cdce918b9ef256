"""Where a proximal update's time goes: one replayed decision of the default CartPole agent.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_replay.py [--train 20000] [--batch 128] [--set output_score=pattern]

Trains the default agent briefly, records a minibatch of its decisions, then times, per
decision: the rule's replay (unpack the stored bits, the kernel with clamping and
eligibilities, each neuron's modulator gating its synapses' eligibilities into the gradient:
``replay_gradient``), the replay that forms the eligibility rows in parameter order
(``replay_record``), the kernel alone with eligibilities,
with log-likelihoods only, and the clamped forward pass alone; and one acting call of the
8-env batch as the training loop acts, and through the kernel and its continuation (the path
the default's one compiled acting pass replaced). The default's network (no hidden neuron) replays in dense compiled passes over the
stored bits; the kernel's path it replaced is timed too, whole and part by part (the kernel's
forward pass, the output scorer, the hidden estimator's errors from its targets). The proximal rule replays every decision ``n_epochs`` times, so
``n_epochs x replay`` (plus, for the posterior hidden estimator, its targets: one replay
and the ``lambda`` of every hidden spike, once per rollout) bounds its training speed from above.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def per_call(fn, n: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting other than the default's (repeatable), e.g. output_score=pattern")
    args = ap.parse_args()
    from spikerl.agent import SpikingAgent
    from spikerl.config import parse_overrides
    from spikerl.engine import Workspace, _decide_validated
    from spikerl.policy import SpikingPolicy

    settings = parse_overrides(args.set)
    agent = SpikingAgent("CartPole-v1", seed=0, **settings).learn(args.train)
    pol, B, n = agent.policy, args.batch, args.repeat
    rng = np.random.default_rng(0)
    obs = np.random.default_rng(1).normal(0.0, 0.05, (B, 4))
    record = pol.record(pol.act(obs, rng, keep_raster=True, score=True), None)
    raster = np.unpackbits(record["raster"], axis=-1, count=pol.encoder.T)
    clamp = np.ascontiguousarray(raster, dtype=np.int8)
    N, T = raster.shape[1:]
    zeros = (np.zeros((B, pol.topo.n_in, T)), np.zeros((B, N, T)), np.zeros(B))

    def kernel(learn, score):
        ws = Workspace()
        return lambda: _decide_validated(pol.topo, pol.params, pol.ff_kernel, pol.fb_kernel, zeros[0], None,
                                         uniforms=zeros[1], tie=zeros[2], learn=learn, score=score, clamp=clamp,
                                         workspace=ws)

    targets = getattr(pol.estimator, "targets", None)  # what the hidden estimator fixes once per rollout
    rows = []
    if targets is not None:
        record.update(targets(pol, record, B))
        rows.append(("hidden targets, once a rollout", per_call(lambda: targets(pol, record, B), n) / B))
    M = np.random.default_rng(2).normal(size=(B, pol.topo.n_neurons))
    rows.append(("replay and gate, as the rule", per_call(lambda: pol.replay_gradient(record, lambda r: M), n) / B))
    if pol.output_score == "marginal" and pol._packed_replay:
        # the default's network (no hidden neuron): dense passes over the stored bits; the
        # kernel's path they replaced (the same gradient up to rounding) in the same run
        one_pass = SpikingPolicy._packed_replay
        SpikingPolicy._packed_replay = property(lambda self: False)
        rows.append(("  the same through the kernel", per_call(lambda: pol.replay_gradient(record, lambda r: M), n) / B))
        SpikingPolicy._packed_replay = one_pass
    if targets is not None and pol.output_score == "marginal":
        # the kernel's replay, part by part: the forward pass, then the scorers that write every entry
        r = pol._replay_potentials(record)
        rows += [("  of which the forward pass", per_call(lambda: pol._replay_potentials(record), n) / B),
                 ("  of which the output scorer", per_call(lambda: pol._score_marginal(r, record["action"], True), n) / B),
                 ("  of which the hidden targets' errors", per_call(lambda: pol.estimator.rewrite(pol, r, record), n) / B)]
    rows += [("replay, eligibilities formed", per_call(lambda: pol.replay_record(record), n) / B),
            ("kernel, eligibilities", per_call(kernel(True, True), n) / B),
            ("kernel, log-likelihoods only", per_call(kernel(False, True), n) / B),
            ("kernel, forward pass only", per_call(kernel(False, False), n) / B)]
    # acting as the training loop acts (its draws, its raster kept for the record), then through
    # the kernel and its continuation where the default's one compiled pass replaced them
    acting = per_call(lambda: pol.act(obs[:8], rng, keep_raster=True, sparse_draws=True), 10 * n)
    SpikingPolicy._fused_acting = False
    acting_kernel = per_call(lambda: pol.act(obs[:8], rng, keep_raster=True, sparse_draws=True), 10 * n)
    SpikingPolicy._fused_acting = True
    epochs = agent.config.n_epochs
    print(f"{'default' if not settings else settings} CartPole-v1 agent after {args.train} steps; {pol.topo.n_in} inputs, {pol.topo.n_hid} hidden, "
          f"{pol.topo.n_out} outputs, {pol.n_params} parameters; minibatch {B}; one thread")
    for name, sec in rows:
        print(f"  {name:38s} {sec * 1e6:6.2f} us per decision")
    print(f"  acting, 8 envs                         {acting * 1e6:6.1f} us per call ({acting / 8 * 1e6:.1f} us per env step)")
    print(f"    through the kernel                   {acting_kernel * 1e6:6.1f} us per call "
          f"({acting_kernel / acting:.2f}x; the same decisions where the one pass applies)")
    rule = dict(rows)
    cap = 1.0 / (epochs * rule["replay and gate, as the rule"] + rule.get("hidden targets, once a rollout", 0.0))
    print(f"{epochs} replays per decision{' and the targets' if targets is not None else ''} bound training at {cap:,.0f} env-steps/s before acting, env and updates")


if __name__ == "__main__":
    main()
