"""Hidden-neuron estimators against the exact gradient of the expected reward.

A network small enough to enumerate (1 input, 2 hidden, 2 outputs, T = 3, first-to-spike):
every spike trajectory up to the decision is listed, its probability computed exactly (the
kernel replays it with clamping), and each estimator's expectation
``sum_traj P(traj) R(traj) e(traj)`` is compared with the finite-difference gradient of
``J(theta) = sum_traj P(traj) R(traj)``.

Found: the ``joint`` estimator (hidden spikes' own score x reward) is unbiased; the seed's
``learning_signal`` estimator (hidden score weighted by the output log-likelihood) is not.
"""
import itertools

import numpy as np
import pytest
from gymnasium import spaces

from naive import traces
from spikerl.coding import Encoder
from spikerl.kernels import exponential_bank
from spikerl.network import init_params, layered
from spikerl.policy import SpikingPolicy
from spikerl.rules import LearningSignal, timing_args

T = 3
P_IN = 0.6
REWARD = np.array([1.0, -0.5])  # reward of each action


def _policy(estimator=None):
    enc = Encoder(spaces.Box(0.0, 1.0, (1,)), features="normalized", T=T)
    topo = layered(1, 2, 2, skip=False, recurrent=True, feedback=False, seed=0)
    rng = np.random.default_rng(3)
    params = init_params(topo, 1, 1, rng=rng, w_scale=3.0, bias_hidden=0.3, bias_out=-0.8)
    return SpikingPolicy(enc, topo, exponential_bank(2.0, T), exponential_bank(1.0, T), params, "first_to_spike",
                         estimator)


def _trajectories(topo, reward=REWARD):
    """Every (raster, t*) a first-to-spike decision can produce, and its expected reward."""
    N, n_in, out0 = topo.n_neurons, topo.n_in, topo.n_in + topo.n_hid
    rasters, rewards, p_inputs = [], [], []
    for last in range(T):
        free = out0 * (last + 1)  # input and hidden bits up to t*
        out_patterns = [p for p in itertools.product([0, 1], repeat=topo.n_out) if any(p) or last == T - 1]
        for bits in itertools.product([0, 1], repeat=free):
            for outs in out_patterns:
                r = np.zeros((N, T), np.uint8)
                r[:out0, : last + 1] = np.array(bits).reshape(out0, last + 1)
                r[out0:, last] = outs
                firsts = np.flatnonzero(outs) if any(outs) else np.arange(topo.n_out)
                rasters.append(r)
                rewards.append(reward[firsts].mean())  # ties and no spike: uniform
                s_in = r[:n_in, : last + 1]
                p_inputs.append(np.prod(np.where(s_in > 0, P_IN, 1 - P_IN)))
    return np.array(rasters), np.array(rewards), np.array(p_inputs)


def _probabilities(policy, rasters, p_inputs):
    return p_inputs * np.exp(policy.replay(rasters).log_prob)


def test_trajectories_are_a_distribution():
    policy = _policy()
    rasters, _, p_in = _trajectories(policy.topo)
    assert _probabilities(policy, rasters, p_in).sum() == pytest.approx(1.0, abs=1e-12)


def _central_difference(policy, f, eps=1e-6):
    """``d f / d theta_i`` for every learnable ``i`` (last axis; 0 elsewhere), by central differences."""
    theta = policy.theta.copy()
    grad = np.zeros(np.shape(f()) + theta.shape)
    for i in np.flatnonzero(policy.learnable):
        for sign in (1, -1):
            th = theta.copy()
            th[i] += sign * eps
            policy.set_theta(th)
            grad[..., i] += sign * f() / (2 * eps)
    policy.set_theta(theta)
    return grad


def _exact_gradient(policy, rasters, rewards, p_in):
    return _central_difference(policy, lambda: _probabilities(policy, rasters, p_in) @ rewards)


def _expectation(policy, rasters, rewards, p_in):
    P = _probabilities(policy, rasters, p_in)
    return (P * rewards) @ policy.replay(rasters).elig


def test_joint_estimator_is_unbiased_and_learning_signal_is_not():
    policy = _policy()
    rasters, rewards, p_in = _trajectories(policy.topo)
    exact = _exact_gradient(policy, rasters, rewards, p_in)
    hidden = policy.hidden_mask & policy.learnable
    assert np.abs(exact[hidden]).max() > 1e-3  # the hidden neurons matter in this network

    joint = _expectation(policy, rasters, rewards, p_in)
    np.testing.assert_allclose(joint[policy.learnable], exact[policy.learnable], rtol=1e-5, atol=1e-8)

    # a constant reward baseline keeps it unbiased (the score has mean zero)
    P = _probabilities(policy, rasters, p_in)
    shifted = (P * (rewards - 0.7)) @ policy.replay(rasters).elig
    np.testing.assert_allclose(shifted[policy.learnable], exact[policy.learnable], rtol=1e-5, atol=1e-8)

    policy.estimator = LearningSignal(T, kappa=0.5, baseline_decay=1.0)  # baseline fixed at 0
    seed_rule = _expectation(policy, rasters, rewards, p_in)
    out = policy.learnable & ~policy.hidden_mask
    np.testing.assert_allclose(seed_rule[out], exact[out], rtol=1e-5, atol=1e-8)  # outputs: unchanged
    err = np.abs(seed_rule[hidden] - exact[hidden]).max() / np.abs(exact[hidden]).max()
    assert err > 0.2, f"learning-signal estimator unexpectedly close to the gradient (relative error {err:.3f})"


def test_causal_hidden_estimator_is_unbiased_with_less_variance():
    """Leaving out hidden spikes at t* (no output sees them before the decision) keeps the
    expectation exact and lowers the second moment of every hidden eligibility; outputs
    are untouched. Probabilities come from the full trajectory (the true distribution)."""
    policy = _policy()
    rasters, rewards, p_in = _trajectories(policy.topo)
    P = _probabilities(policy, rasters, p_in)
    exact = _exact_gradient(policy, rasters, rewards, p_in)
    full = policy.replay(rasters)
    policy.causal = True
    causal = policy.replay(rasters)
    learn, hidden = policy.learnable, policy.hidden_mask & policy.learnable
    np.testing.assert_allclose(((P * rewards) @ causal.elig)[learn], exact[learn], rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(causal.elig[:, ~policy.hidden_mask], full.elig[:, ~policy.hidden_mask])
    np.testing.assert_array_equal(causal.ll_out, full.ll_out)
    assert np.any(causal.elig[:, hidden] != full.elig[:, hidden])
    second = lambda e: (P * rewards**2) @ e[:, hidden] ** 2  # noqa: E731
    assert np.all(second(causal.elig) <= second(full.elig) + 1e-15)
    assert second(causal.elig).sum() < 0.95 * second(full.elig).sum()
    # the hidden log-likelihoods stop before t*: the causal trajectory is a distribution over the
    # rasters whose hidden bits at t* are 0 (those at t* are summed out)
    silent_at_last = np.array([not r[policy.topo.n_in : policy.topo.n_in + policy.topo.n_hid, int(r[-2:].any(0).argmax())
                                                                                               if r[-2:].any() else T - 1].any()
                               for r in rasters])
    assert (p_in * np.exp(causal.log_prob))[silent_at_last].sum() == pytest.approx(1.0, abs=1e-12)


def test_entropy_bonus_needs_the_joint_estimator():
    from spikerl import SpikingAgent

    with pytest.raises(ValueError, match="ent_coef=0.01: the entropy bonus needs hidden_rule='joint'"):
        SpikingAgent("CartPole-v1", ent_coef=0.01)
    assert SpikingAgent("CartPole-v1", ent_coef=0.01, hidden_rule="joint").config.ent_coef == 0.01


def test_causal_hidden_needs_the_joint_estimator():
    from spikerl import SpikingAgent

    with pytest.raises(ValueError, match="causal_hidden=True: it needs hidden_rule='joint'"):
        SpikingAgent("CartPole-v1", causal_hidden=True, hidden_rule="learning_signal")
    with pytest.raises(ValueError, match="causal_hidden=True: it needs hidden_rule='joint' .the posterior rule"):
        SpikingAgent("CartPole-v1", causal_hidden=True)  # the default estimator stops at t* by itself
    assert SpikingAgent("CartPole-v1", causal_hidden=True, hidden_rule="joint").policy.causal


def test_action_score_needs_first_to_spike_and_the_actions_taken(tmp_path):
    from spikerl import SpikingAgent

    with pytest.raises(ValueError, match="output_score='action': it scores the first output to spike, and decoder='rate'"):
        SpikingAgent("CartPole-v1", output_score="action", decoder="rate")
    with pytest.raises(ValueError, match="invalid hyperparameter output_score='spikes'"):
        SpikingAgent("CartPole-v1", output_score="spikes")
    agent = SpikingAgent("CartPole-v1", output_score="action", n_envs=2)
    assert agent.policy.output_score == "action"
    out = agent.policy.act(np.zeros((3, 4)), np.random.default_rng(0), keep_raster=True)
    with pytest.raises(ValueError, match="output_score='action' scores the actions taken; pass action="):
        agent.policy.replay(out.raster)
    np.testing.assert_array_equal(agent.policy.record(out, np.zeros((3, 1)))["action"], out.action)
    agent.save(tmp_path / "a.spk")
    loaded = SpikingAgent.load(tmp_path / "a.spk").policy  # the layer stays one unit of the ratio
    assert loaded.output_score == "action"
    np.testing.assert_array_equal(loaded.param_neuron, agent.policy.param_neuron)
    assert not np.array_equal(loaded.param_neuron,
                              SpikingAgent("CartPole-v1", n_envs=2, output_score="pattern").policy.param_neuron)


def test_learning_signal_eligibility_follows_its_definition():
    """sum_t (l_t - b_t) (s_t - sigmoid(u_t)) xbar_t for hidden synapses, step by step."""
    policy = _policy(LearningSignal(T, kappa=0.3, baseline_decay=1.0))
    policy.estimator.baseline[:] = [0.1, -0.2, 0.05]
    rasters, _, _ = _trajectories(policy.topo)
    rasters = rasters[np.random.default_rng(0).choice(len(rasters), 40, replace=False)]
    got = policy.replay(rasters).elig
    topo, a = policy.topo, policy.ff_kernel
    n_in, out0 = topo.n_in, topo.n_in + topo.n_hid
    plain = _policy()
    plain.set_theta(policy.theta)
    free = plain.replay(rasters)
    for d, raster in enumerate(rasters):
        s = raster.astype(float)
        last = int(np.flatnonzero(s[out0:].any(0))[0]) if s[out0:].any() else T - 1
        # potentials straight from the definition
        W = np.zeros((topo.n_neurons, topo.n_neurons))
        W[topo.post, topo.pre] = policy.params.w[:, 0]
        want = np.zeros(topo.n_synapses)
        l = 0.0
        for t in range(last + 1):
            xb = traces(s, t, a)[:, 0]
            yb = traces(s, t, policy.fb_kernel)[:, 0]
            u = W @ xb + policy.params.v[:, 0] * yb + policy.params.bias
            p = 1 / (1 + np.exp(-u))
            step_ll = np.sum(np.where(s[out0:, t] > 0, np.log(p[out0:]), np.log1p(-p[out0:])))
            l = 0.3 * l + 0.7 * step_ll
            weight = l - policy.estimator.baseline[t]
            err = s[:, t] - p
            for q, (i, j) in enumerate(zip(topo.post, topo.pre)):
                if n_in <= i < out0:
                    want[q] += weight * err[i] * xb[j]
        hid_syn = (topo.post >= n_in) & (topo.post < out0)
        np.testing.assert_allclose(got[d, : topo.n_synapses][hid_syn], want[hid_syn], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(got[d, : topo.n_synapses][~hid_syn], free.elig[d, : topo.n_synapses][~hid_syn])


def test_posterior_estimator_is_unbiased_with_less_variance():
    """Each hidden spike's score replaced by its expectation given the rest of the raster
    (Rao-Blackwell): the expectation stays the exact gradient, output eligibilities are the
    joint estimator's, and every hidden eligibility's second moment is no larger (the network
    is recurrent, so a hidden spike also drives the other hidden neuron)."""
    from spikerl.rules import PosteriorSpikes

    policy = _policy()
    rasters, rewards, p_in = _trajectories(policy.topo)
    P = _probabilities(policy, rasters, p_in)
    exact = _exact_gradient(policy, rasters, rewards, p_in)
    joint = policy.replay(rasters)
    policy.estimator = PosteriorSpikes()
    post = policy.replay(rasters)
    learn, hidden = policy.learnable, policy.hidden_mask & policy.learnable
    np.testing.assert_allclose(((P * rewards) @ post.elig)[learn], exact[learn], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(((P * (rewards - 0.7)) @ post.elig)[learn], exact[learn], rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(post.elig[:, ~policy.hidden_mask], joint.elig[:, ~policy.hidden_mask])
    np.testing.assert_array_equal(post.log_prob, joint.log_prob)
    second = lambda e: (P * rewards**2) @ e[:, hidden] ** 2  # noqa: E731
    assert np.all(second(post.elig) <= second(joint.elig) + 1e-15)
    assert second(post.elig).sum() < 0.8 * second(joint.elig).sum()


def test_posterior_errors_follow_their_definition():
    """q - p of a hidden spike, with q from the downstream likelihood recomputed by flipping
    the spike in the raster and replaying it (the kernel's own potentials)."""
    from spikerl.rules import PosteriorSpikes, _posterior_errors

    policy = _policy(PosteriorSpikes())
    topo, prm = policy.topo, policy.params
    rasters, _, _ = _trajectories(topo)
    rasters = rasters[np.random.default_rng(1).choice(len(rasters), 60, replace=False)]
    plain = _policy()
    r = plain._replay_kernel(rasters)
    got = _posterior_errors(r.raster, r.potential, r.t_star, topo.n_in, topo.n_hid, topo.pre_ptr, topo.pre_syn,
                            topo.post, prm.w, prm.v, policy.ff_kernel, policy.fb_kernel,
                            *timing_args(policy, None, len(r.t_star)))
    n_in, out0 = topo.n_in, topo.n_in + topo.n_hid
    for d, raster in enumerate(rasters):
        last = int(r.t_star[d])
        for i in range(n_in, out0):
            for t in range(T):
                if t >= last:
                    assert got[d, i - n_in, t] == 0.0
                    continue
                ll = {}
                for s in (0, 1):
                    flipped = raster.copy()
                    flipped[i, t] = s
                    # downstream of (i, t): every later step of the outputs, hidden steps before t*
                    rr = plain._replay_kernel(flipped[None])
                    u, sp = rr.potential[0], rr.raster[0].astype(float)
                    logp = np.where(sp > 0, -np.logaddexp(0, -u), -np.logaddexp(0, u))
                    ll[s] = logp[out0:, t + 1 : last + 1].sum() + logp[n_in:out0, t + 1 : last].sum()
                u = r.potential[d, i, t]
                want = 1 / (1 + np.exp(-(u + ll[1] - ll[0]))) - 1 / (1 + np.exp(-u))
                assert got[d, i - n_in, t] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_posterior_eligibilities_in_the_kernel_arrays_match_their_definition():
    """The compiled in-place rewrite of the hidden entries equals ``hidden_eligibility``
    (sum_t werr_t xbar_t, from traces) on the same errors; other entries untouched."""
    from spikerl.rules import PosteriorSpikes, _posterior_errors, hidden_eligibility

    policy = _policy()
    topo, prm = policy.topo, policy.params
    rasters, _, _ = _trajectories(topo)
    rasters = rasters[np.random.default_rng(2).choice(len(rasters), 80, replace=False)]
    plain = policy.replay(rasters).elig
    r = policy._replay_kernel(rasters)
    werr = _posterior_errors(r.raster, r.potential, r.t_star, topo.n_in, topo.n_hid, topo.pre_ptr, topo.pre_syn,
                             topo.post, prm.w, prm.v, policy.ff_kernel, policy.fb_kernel,
                            *timing_args(policy, None, len(r.t_star)))
    want = hidden_eligibility(policy, r.raster, werr, plain)
    policy.estimator = PosteriorSpikes()
    got = policy.replay(rasters).elig
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(got[:, ~policy.hidden_mask], plain[:, ~policy.hidden_mask])
    assert np.any(got[:, policy.hidden_mask] != plain[:, policy.hidden_mask])


def test_posterior_rule_on_a_full_size_network():
    """The same two checks on a full-size CartPole network (T = 8, kernels longer than one
    step, 32 hidden neurons): the compiled errors against flipping each spike and replaying,
    and the in-place eligibilities against ``hidden_eligibility``."""
    from spikerl import SpikingAgent
    from spikerl.rules import _posterior_errors, hidden_eligibility

    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, output_score="pattern", n_hidden=32,
                         n_projections=0)  # marginal: below
    pol = agent.policy
    obs = np.random.default_rng(0).normal(size=(40, 4)) * 0.5
    agent.encoder.update(obs)
    pol.set_theta(pol.theta + np.random.default_rng(1).normal(0.0, 1.0, pol.n_params) * pol.learnable)
    topo, prm = pol.topo, pol.params
    n_in, out0 = topo.n_in, topo.n_in + topo.n_hid
    prm.bias[out0:] = -5.0  # slow outputs: long decisions
    rasters = pol.act(obs, np.random.default_rng(2), keep_raster=True).raster
    r = pol._replay_kernel(rasters)
    assert r.t_star.max() >= 4  # long decisions: kernel delays beyond one step matter
    werr = _posterior_errors(r.raster, r.potential, r.t_star, n_in, topo.n_hid, topo.pre_ptr, topo.pre_syn,
                             topo.post, prm.w, prm.v, pol.ff_kernel, pol.fb_kernel,
                             *timing_args(pol, None, len(r.t_star)))
    werr, t_star = werr.copy(), r.t_star.copy()
    plain = pol.replay(rasters).elig
    for d in np.argsort(-t_star)[:3]:  # the longest decisions
        last = int(t_star[d])
        for i in range(n_in, out0):
            for t in range(last):
                ll = {}
                for s in (0, 1):
                    flipped = rasters[d].copy()
                    flipped[i, t] = s
                    rr = pol._replay_kernel(flipped[None])
                    u, sp = rr.potential[0], rr.raster[0].astype(float)
                    logp = np.where(sp > 0, -np.logaddexp(0, -u), -np.logaddexp(0, u))
                    ll[s] = logp[out0:, t + 1 : last + 1].sum() + logp[n_in:out0, t + 1 : last].sum()
                u = pol._replay_kernel(rasters[d][None]).potential[0, i, t]
                want = 1 / (1 + np.exp(-(u + ll[1] - ll[0]))) - 1 / (1 + np.exp(-u))
                assert werr[d, i - n_in, t] == pytest.approx(want, rel=1e-7, abs=1e-12)
    r = pol._replay_kernel(rasters)
    want = hidden_eligibility(pol, r.raster, werr, plain)
    pol.estimator = __import__("spikerl.rules", fromlist=["PosteriorSpikes"]).PosteriorSpikes()
    np.testing.assert_allclose(pol.replay(rasters).elig, want, rtol=1e-10, atol=1e-13)


def test_posterior_proximal_surrogate():
    """What the proximal rule replays with ``hidden_rule="posterior"``: the targets taken once
    under the parameters that acted (``PosteriorSpikes.targets``, here in chunks with a short
    last one) give, at those parameters, the Rao-Blackwellised eligibilities and the plain
    log-likelihoods (every ratio 1); elsewhere each hidden eligibility is the gradient of its
    neuron's log-ratio, ``sum_t g_t(u) - g_t(u_old)``, which is what the PPO clip then bounds."""
    from spikerl.rules import PosteriorSpikes, kernel_eligibility

    policy = _policy(PosteriorSpikes())
    rasters, _, _ = _trajectories(policy.topo)
    rasters = rasters[np.random.default_rng(4).choice(len(rasters), 50, replace=False)]
    record = {"raster": np.packbits(rasters.astype(bool), axis=-1)}
    stateless = policy.replay(rasters)  # the posterior errors; the kernel's log-likelihoods
    record.update(policy.estimator.targets(policy, record, 16))

    def surrogate():
        r = policy._replay_kernel(rasters)
        policy.estimator.rewrite(policy, r, record)
        return kernel_eligibility(r).copy(), r.ll_neuron.copy()

    elig, ll = surrogate()
    np.testing.assert_allclose(elig, stateless.elig, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ll, stateless.ll_neuron, rtol=1e-12, atol=1e-12)

    rng = np.random.default_rng(5)
    theta = policy.theta + rng.normal(0.0, 0.5, policy.n_params) * policy.learnable
    policy.set_theta(theta)
    elig, ll = surrogate()
    moved = ll - stateless.ll_neuron
    assert np.abs(moved[:, policy.topo.n_in : policy.topo.n_in + policy.topo.n_hid]).max() > 1e-3
    eps = 1e-6
    for k in np.flatnonzero(policy.hidden_mask & policy.learnable):
        i = policy.param_neuron[k]
        fd = []
        for step in (eps, -eps):
            policy.set_theta(theta + step * (np.arange(policy.n_params) == k))
            fd.append(surrogate()[1][:, i])
        np.testing.assert_allclose(elig[:, k], (fd[0] - fd[1]) / (2 * eps), rtol=1e-5, atol=1e-8)
    policy.set_theta(theta)
    # not the observed spikes' ratio: the replay's own log-likelihoods move otherwise
    assert not np.allclose(ll, policy.replay(rasters).ll_neuron)


def test_proximal_rule_replays_posterior_through_its_targets(monkeypatch):
    """Every replay of the default (proximal) rule with ``hidden_rule="posterior"`` carries the
    targets taken before the epochs, so its hidden neurons are gated by the marginal ratio."""
    from spikerl import SpikingAgent
    from spikerl.rules import PosteriorSpikes

    seen = []
    rewrite = PosteriorSpikes.rewrite

    def spy(self, policy, r, record=None):
        seen.append(record is not None and "posterior.lam" in record and len(record["posterior.lam"]) == len(r.t_star))
        return rewrite(self, policy, r, record)

    monkeypatch.setattr(PosteriorSpikes, "rewrite", spy)
    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, n_steps=16, batch_size=8, n_epochs=2,
                         hidden_rule="posterior", n_hidden=32)
    agent.learn(64)
    assert len(seen) >= 8 and all(seen)  # 2 rollouts x 2 epochs x 2-4 minibatches


def _recorded_minibatches(agent, rng) -> list:
    """Two minibatches of 48 CartPole decisions (different spike densities) recorded with the
    hidden estimator's targets under perturbed parameters, which then move again (ratios != 1)."""
    pol = agent.policy
    agent.encoder.update(rng.normal(size=(96, 4)) * 0.5)
    pol.set_theta(pol.theta + rng.normal(0.0, 0.5, pol.n_params) * pol.learnable)
    records = []
    for scale in (0.5, 2.0):
        o = rng.normal(size=(48, 4)) * scale
        rec = pol.record(pol.act(o, rng, keep_raster=True), agent.encoder.features_of(o))
        rec.update(pol.estimator.targets(pol, rec, 48))
        records.append(rec)
    pol.set_theta(pol.theta + rng.normal(0.0, 0.2, pol.n_params) * pol.learnable)
    return records


def test_marginal_replay_through_targets_runs_the_forward_pass_only():
    """The proximal replay (output scored with its timing summed out, hidden neurons through
    the estimator's targets) runs the kernel's forward pass only and lets the scorers write
    every eligibility and log-likelihood: the same gradient and log-likelihoods, bit for bit,
    as a learning replay whose entries they overwrite, call after call (nothing left over from
    the previous minibatch)."""
    from spikerl import SpikingAgent

    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, n_hidden=32, n_projections=0)
    pol = agent.policy
    assert pol.output_score == "marginal"
    rng = np.random.default_rng(0)
    records = _recorded_minibatches(agent, rng)
    M = rng.normal(size=(48, pol.topo.n_neurons))

    def run():
        out = []
        for rec in records:
            seen = []
            grad, _ = pol.replay_gradient(rec, lambda r: seen.append(r.ll_neuron.copy()) or M)
            out.append((grad, seen[0]))
        return out

    calls = []
    forward = pol._replay_potentials
    pol._replay_potentials = lambda rec: calls.append(1) or forward(rec)
    fast = run()
    assert len(calls) == 2  # the default's replay takes the forward-only path
    pol._replay_potentials = lambda rec: pol.replay_kernel(rec, hidden_eligibility=False)  # the learning replay
    slow = run()
    for (g, ll), (g_ref, ll_ref) in zip(fast, slow):
        np.testing.assert_array_equal(g, g_ref)
        np.testing.assert_array_equal(ll, ll_ref)
    assert np.any(fast[0][0] != fast[1][0]) and np.all(np.isfinite(fast[1][1]))


def test_default_replay_runs_dense_passes_over_the_stored_bits(monkeypatch):
    """The default network (no hidden neuron, output scored with its timing summed out) is
    replayed from the stored bits by dense compiled passes (the inputs' traces, the outputs'
    potentials and the scorer's errors, the modulated sum: :func:`~spikerl.rules._replay_errors`):
    the kernel's clamped forward pass and output scorer's gradient (one modulator per neuron
    and one for all) and log-likelihoods, up to rounding, minibatch after minibatch. Acting
    continues each decision to ``T`` in one pass (:func:`~spikerl.rules._continue_marginal`):
    the kernel's raster and log-likelihoods, bit for bit; with random (rate-code) inputs from
    the same random numbers, with the default's regular code (probabilities 0 or 1) drawing
    none on either path (the acting decision draws its outputs' numbers only). Training with
    both paths ends at the same parameters up to rounding."""
    import spikerl.policy as policy_module
    from spikerl import SpikingAgent

    for code in ("rate", "regular"):
        agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, code=code)
        pol = agent.policy
        assert pol.topo.n_hid == 0 and pol.output_score == "marginal" and pol._packed_replay
        rng = np.random.default_rng(0)
        records = _recorded_minibatches(agent, rng)
        modulators = (rng.normal(size=(48, pol.topo.n_neurons)), rng.normal(size=(48, 1)))
        rng_obs = rng.normal(size=(40, 4)) * 0.5

        def run():
            out = []
            for rec in records:
                for M in modulators:
                    seen = []
                    grad, rate = pol.replay_gradient(rec, lambda r: seen.append((r.log_prob, r.ll_out, r.ll_neuron)) or M)
                    assert rate is None
                    out.append((grad, *[x.copy() for x in seen[0]]))
            return out

        def act():  # acting continues each decision to T in one compiled pass too
            gen = np.random.default_rng(5)
            out = pol.act(rng_obs, gen, keep_raster=True, sparse_draws=True)
            return (out.action, out.raster, out.ll_out, out.ll_neuron, out.log_prob, out.spikes, gen.random(3))

        B, N, T = len(rng_obs), pol.topo.n_neurons, pol.encoder.T
        acted = act()
        calls = []
        dense = policy_module._replay_errors
        monkeypatch.setattr(policy_module, "_replay_errors", lambda *a: calls.append(1) or dense(*a))
        fast = run()
        n_calls = len(calls)
        assert n_calls >= 4  # every replay (in chunks on threads when numba has several)
        monkeypatch.setattr(SpikingPolicy, "_packed_replay", property(lambda self: False))
        slow = run()
        assert len(calls) == n_calls  # the kernel's path
        for got, want in zip(fast, slow):
            for x, y in zip(got, want):
                np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12 * np.abs(y).max())
        for x, y in zip(acted, act()):
            np.testing.assert_array_equal(x, y)
        assert np.any(fast[0][0] != fast[2][0]) and np.abs(fast[0][0]).max() > 0
        monkeypatch.undo()
        if code == "regular":  # sampled acting draws the outputs' numbers only (and the tie draw); the
            from spikerl.engine import decide  # continuation to T, on either path, none

            u = np.zeros((B, N, T))
            for learn in (False, True):
                gen, ref = np.random.default_rng(9), np.random.default_rng(9)
                out = pol.act(rng_obs, gen, learn=learn, sparse_draws=True)
                u[:, pol.topo.n_in :, :] = ref.random((B, pol.topo.n_out, T))
                want = decide(pol.topo, pol.params, pol.ff_kernel, pol.fb_kernel, pol.encoder.temporal(
                    pol.encoder.features_of(rng_obs)), uniforms=u, tie=ref.random(B))
                np.testing.assert_array_equal(out.action, want.action)
                np.testing.assert_array_equal(out.latency, want.t_star + 1)
                np.testing.assert_array_equal(gen.random(3), ref.random(3))
    # random inputs: the same random numbers on both paths, so the same decisions; the updates
    # differ by rounding only
    trained = [SpikingAgent("CartPole-v1", seed=3, n_envs=4, n_steps=32, code="rate").learn(640).policy.theta]
    monkeypatch.setattr(SpikingPolicy, "_packed_replay", property(lambda self: False))
    trained.append(SpikingAgent("CartPole-v1", seed=3, n_envs=4, n_steps=32, code="rate").learn(640).policy.theta)
    monkeypatch.undo()
    init = SpikingAgent("CartPole-v1", seed=3, n_envs=4, n_steps=32, code="rate").policy.theta
    assert np.abs(trained[0] - init).max() > 0.01
    np.testing.assert_allclose(trained[0], trained[1], rtol=1e-9, atol=1e-9)


def test_posterior_acting_leaves_the_hidden_eligibilities_to_the_estimator():
    """Acting to learn with the posterior estimator (the online rules) skips the kernel's hidden
    eligibilities, which the estimator rewrites: the same bits as forming them first."""
    from spikerl import SpikingAgent

    for output_score in ("pattern", "marginal"):
        agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, reward_factor="td", output_score=output_score,
                             n_hidden=32, n_projections=0)
        pol = agent.policy
        obs = np.random.default_rng(0).normal(size=(60, 4)) * 0.5
        agent.encoder.update(obs)
        pol.set_theta(pol.theta + np.random.default_rng(1).normal(0.0, 1.0, pol.n_params) * pol.learnable)
        out = pol.act(obs, np.random.default_rng(2), learn=True)
        assert out.raster[:, pol.topo.n_in : pol.topo.n_in + pol.topo.n_hid].any()
        action = out.action if output_score != "pattern" else None
        # the replay forms them, then rewrites
        np.testing.assert_array_equal(out.elig, pol.replay(out.raster, action=action).elig)
    assert np.any(out.elig[:, pol.hidden_mask] != 0)


# -- the output layer scored on its action (output_score="action") ------------------------

REWARD3 = np.array([1.0, -0.5, 0.2])


def _policy3(output_score="pattern"):
    """1 input, 2 hidden, 3 outputs whose biases make ties at t* common."""
    enc = Encoder(spaces.Box(0.0, 1.0, (1,)), features="normalized", T=T)
    topo = layered(1, 2, 3, skip=True, recurrent=False, feedback=False, seed=0)
    params = init_params(topo, 1, 1, rng=np.random.default_rng(5), w_scale=3.0, bias_hidden=0.3, bias_out=0.2)
    policy = SpikingPolicy(enc, topo, exponential_bank(2.0, T), exponential_bank(1.0, T), params, "first_to_spike")
    policy.output_score = output_score
    return policy


def _decisions(topo):
    """Every (raster up to t*, action) of a first-to-spike decision: a spiking decision's raster
    holds the action's spike alone at t* (what other outputs did there is summed out); a
    silent one is all its outputs' zeros and each action (uniform). With each decision's
    input probability and, as :func:`_trajectories`, every full raster with its action."""
    N, n_in, out0, n_out = topo.n_neurons, topo.n_in, topo.n_in + topo.n_hid, topo.n_out
    rasters, actions, p_inputs = [], [], []
    for last in range(T):
        for bits in itertools.product([0, 1], repeat=out0 * (last + 1)):
            r = np.zeros((N, T), np.uint8)
            r[:out0, : last + 1] = np.array(bits).reshape(out0, last + 1)
            s_in = r[:n_in, : last + 1]
            p = np.prod(np.where(s_in > 0, P_IN, 1 - P_IN))
            for a in range(n_out):
                d = r.copy()
                d[out0 + a, last] = 1
                rasters.append(d), actions.append(a), p_inputs.append(p)
                if last == T - 1:  # silent: each action with probability 1/n_out
                    rasters.append(r.copy()), actions.append(a), p_inputs.append(p / n_out)
    return np.array(rasters), np.array(actions), np.array(p_inputs)


def _assert_finite_difference(policy, rasters, actions, elig):
    """Each learnable column of ``elig`` is the central finite difference of the decisions'
    replayed log-probabilities."""
    fd = _central_difference(policy, lambda: policy.replay(rasters, actions).log_prob)
    np.testing.assert_allclose(elig[:, policy.learnable], fd[:, policy.learnable], rtol=1e-5, atol=1e-7)


def test_action_score_is_the_log_probability_of_the_action_taken():
    """Scored on the action, a decision's log-probability is that of (the spikes before t*, the
    action at t*): the decisions form a distribution; its eligibility is the finite-difference
    gradient of that log-probability; and every full raster (a tie included) with the action
    the decoder took from it scores exactly as the action's spike alone would."""
    policy = _policy3("action")
    topo = policy.topo
    rasters, actions, p_in = _decisions(topo)
    rep = policy.replay(rasters, actions)
    assert (p_in * np.exp(rep.log_prob)).sum() == pytest.approx(1.0, abs=1e-12)
    _assert_finite_difference(policy, rasters, actions, rep.elig)
    # a full raster with a tie at t*: the same score as its action's spike alone
    full = _trajectories(topo, REWARD3)[0]
    out0 = topo.n_in + topo.n_hid
    ties = [r for r in full if (r[out0:].sum(0) >= 2).any()]
    assert len(ties) > 10
    for r in ties[:40]:
        last = int(np.flatnonzero(r[out0:].any(0))[0])
        for a in np.flatnonzero(r[out0:, last]):
            alone = r.copy()
            alone[out0:, last] = 0
            alone[out0 + a, last] = 1
            got, want = policy.replay(r[None], [a]), policy.replay(alone[None], [a])
            np.testing.assert_allclose(got.elig, want.elig, rtol=1e-12, atol=1e-12)
            assert got.log_prob[0] == pytest.approx(want.log_prob[0], abs=1e-12)
    # the output layer is one unit of a per-neuron ratio: its log-likelihood in its first column
    assert set(policy.param_neuron[policy.param_neuron >= out0]) == {out0}
    np.testing.assert_array_equal(rep.ll_neuron[:, out0 + 1 :], 0.0)
    np.testing.assert_allclose(rep.ll_neuron[:, out0], rep.ll_out)


def test_action_score_is_unbiased_and_pushes_a_tied_rival_down():
    """The action-scored estimator's expectation is the exact gradient of the expected reward
    (the pattern's is too); on a tie at t* under a positive reward, the pattern's score raises
    the rival that spiked with the action, the action's lowers it."""
    policy = _policy3("action")
    topo = policy.topo
    out0 = topo.n_in + topo.n_hid
    rasters, actions, p_in = _decisions(topo)
    P = p_in * np.exp(policy.replay(rasters, actions).log_prob)
    rewards = REWARD3[actions]
    exact = _exact_gradient(_policy3(), *_trajectories(topo, REWARD3))
    got = (P * rewards) @ policy.replay(rasters, actions).elig
    np.testing.assert_allclose(got[policy.learnable], exact[policy.learnable], rtol=1e-5, atol=1e-8)

    pattern = _policy3()
    r = np.zeros((topo.n_neurons, T), np.uint8)
    r[out0 + 0, 0] = r[out0 + 1, 0] = 1  # outputs 0 and 1 tie at t* = 0; the action was 0
    bias_1 = pattern.bias_slice.start + out0 + 1
    assert pattern.replay(r[None]).elig[0, bias_1] > 0
    assert policy.replay(r[None], [0]).elig[0, bias_1] < 0


def test_action_score_with_the_posterior_estimator_is_unbiased():
    """The default hidden estimator (posterior) with the output layer scored on its action:
    over every full raster (ties included) and each action the decoder can take from it,
    the expected eligibility x reward is the exact gradient of the expected reward."""
    from spikerl.rules import PosteriorSpikes

    truth = _policy3()  # the raster's own probability (a property of the network, not of the score)
    topo = truth.topo
    out0 = topo.n_in + topo.n_hid
    rasters, _, p_in = _trajectories(topo, REWARD3)
    P = p_in * np.exp(truth.replay(rasters).log_prob)
    exact = _exact_gradient(truth, rasters, _trajectories(topo, REWARD3)[1], p_in)
    policy = _policy3("action")
    policy.estimator = PosteriorSpikes()
    got = np.zeros_like(exact)
    for r, p in zip(rasters, P):
        last = int(r[out0:].any(0).argmax()) if r[out0:].any() else T - 1
        firsts = np.flatnonzero(r[out0:, last]) if r[out0:].any() else np.arange(topo.n_out)
        for a in firsts:
            got += p / len(firsts) * REWARD3[a] * policy.replay(r[None], [a]).elig[0]
    hidden = policy.hidden_mask & policy.learnable
    assert np.abs(exact[hidden]).max() > 1e-3
    np.testing.assert_allclose(got[policy.learnable], exact[policy.learnable], rtol=1e-5, atol=1e-8)


def _continued(topo):
    """Every decision continued to ``T`` (``output_score="marginal"``): input and hidden raster
    over all ``T`` steps, outputs silent, with each action and its input probability."""
    N, n_in, out0, n_out = topo.n_neurons, topo.n_in, topo.n_in + topo.n_hid, topo.n_out
    rasters, actions, p_inputs = [], [], []
    for bits in itertools.product([0, 1], repeat=out0 * T):
        r = np.zeros((N, T), np.uint8)
        r[:out0] = np.array(bits).reshape(out0, T)
        p = np.prod(np.where(r[:n_in] > 0, P_IN, 1 - P_IN))
        for a in range(n_out):
            rasters.append(r), actions.append(a), p_inputs.append(p)
    return np.array(rasters), np.array(actions), np.array(p_inputs)


def test_marginal_score_is_the_log_probability_of_the_action_given_the_continued_raster():
    """Scored with its timing summed out, a decision's log-probability is that of the input and
    hidden raster continued to ``T`` and the action given it, ``log P(h) + log P(a | h)``: the
    decisions form a distribution, the eligibility is the finite-difference gradient of that
    log-probability, and the output layer is one unit of the ratio."""
    policy = _policy3("marginal")
    topo = policy.topo
    out0 = topo.n_in + topo.n_hid
    rasters, actions, p_in = _continued(topo)
    rep = policy.replay(rasters, actions)
    assert (p_in * np.exp(rep.log_prob)).sum() == pytest.approx(1.0, abs=1e-12)
    # P(a | h) is a distribution over the actions of each continued raster
    per_raster = np.exp(rep.ll_out).reshape(-1, topo.n_out).sum(1)
    np.testing.assert_allclose(per_raster, 1.0, atol=1e-12)
    _assert_finite_difference(policy, rasters, actions, rep.elig)
    assert set(policy.param_neuron[policy.param_neuron >= out0]) == {out0}
    np.testing.assert_array_equal(rep.ll_neuron[:, out0 + 1 :], 0.0)
    np.testing.assert_allclose(rep.ll_neuron[:, out0], rep.ll_out)


@pytest.mark.parametrize("hidden_rule", ["joint", "posterior"])
def test_marginal_score_is_unbiased_with_less_output_variance(hidden_rule):
    """With the joint and with the posterior hidden estimator, the marginal score's expectation
    is the exact gradient of the expected reward (the first-to-spike decision's own, summed over
    every full raster); the output parameters' second moment is lower than the pattern's (the
    decision's timing no longer in their score). The hidden raster runs to ``T``, so its own
    score has more terms (on this network its second moment exceeds the pattern's, with either
    estimator); the posterior estimator keeps a tenth of the joint's there."""
    from spikerl.rules import PosteriorSpikes

    topo = _policy3().topo
    truth_rasters, truth_rewards, truth_p = _trajectories(topo, REWARD3)
    exact = _exact_gradient(_policy3(), truth_rasters, truth_rewards, truth_p)
    policy = _policy3("marginal")
    policy.estimator = PosteriorSpikes() if hidden_rule == "posterior" else None
    rasters, actions, p_in = _continued(topo)
    rep = policy.replay(rasters, actions)
    P, R = p_in * np.exp(rep.log_prob), REWARD3[actions]
    learn = policy.learnable
    np.testing.assert_allclose(((P * R) @ rep.elig)[learn], exact[learn], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(((P * (R - 0.7)) @ rep.elig)[learn], exact[learn], rtol=1e-5, atol=1e-8)

    pattern = _policy3()
    pattern.estimator = PosteriorSpikes() if hidden_rule == "posterior" else None
    ref = pattern.replay(truth_rasters)
    P_ref = truth_p * np.exp(ref.log_prob)
    outputs, hidden = learn & ~policy.hidden_mask, learn & policy.hidden_mask
    second = lambda P, R, e, m: ((P * R**2) @ e[:, m] ** 2).sum()  # noqa: E731
    assert second(P, R, rep.elig, outputs) < 0.5 * second(P_ref, truth_rewards, ref.elig, outputs)
    if hidden_rule == "posterior":  # the continued hidden spikes' scores are noise but where they move P(a | h)
        policy.estimator = None
        joint = policy.replay(rasters, actions)
        assert second(P, R, rep.elig, hidden) < 0.1 * second(P, R, joint.elig, hidden)


def test_marginal_acting_continues_the_decision_and_replays_it_exactly():
    """Acting scored on the marginal: the recorded raster runs the inputs and hidden neurons to
    ``T`` (as acted up to ``t*``, sampled after it) with every output silent, holds the action,
    and its replay gives the acting log-probabilities (the proximal rule's first ratio is 1),
    with the posterior estimator's targets too."""
    from spikerl import SpikingAgent

    agent = SpikingAgent("Acrobot-v1", seed=0, output_score="marginal", n_envs=2, n_hidden=32, n_projections=0)
    policy = agent.policy
    topo = policy.topo
    out0 = topo.n_in + topo.n_hid
    obs = np.random.default_rng(0).normal(size=(64, 6))
    acted = policy.act(obs, np.random.default_rng(1), keep_raster=True)
    plain = policy.act(obs, np.random.default_rng(1), keep_raster=True, score=False)
    np.testing.assert_array_equal(acted.action, plain.action)  # continuing draws after the decision
    np.testing.assert_array_equal(acted.latency, plain.latency)
    assert not acted.raster[:, out0:].any()
    upto = np.arange(policy.encoder.T)[None, None, :] < plain.latency[:, None, None]
    np.testing.assert_array_equal(np.where(upto, acted.raster[:, :out0], 0), np.where(upto, plain.raster[:, :out0], 0))
    assert acted.raster[:, topo.n_in : out0][~np.broadcast_to(upto, acted.raster[:, topo.n_in : out0].shape)].any()
    record = policy.record(acted, np.zeros((64, 1)))
    np.testing.assert_array_equal(record["action"], acted.action)
    record.update(policy.estimator.targets(policy, record, 32))
    r = policy.replay_kernel(record, hidden_eligibility=False)
    policy._score_marginal(r, record["action"], True)
    policy.estimator.rewrite(policy, r, record)
    np.testing.assert_allclose(policy._trajectory_log_prob(r), acted.log_prob, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.ll_neuron, acted.ll_neuron, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="output_score='marginal' scores the actions taken; pass action="):
        policy.replay(acted.raster)
    with pytest.raises(ValueError, match="output_score='marginal': it scores the first output to spike"):
        SpikingAgent("CartPole-v1", output_score="marginal", decoder="rate")


def test_training_decisions_of_the_default_network_take_one_compiled_pass(monkeypatch):
    """The training loop's sampled decisions of a network without hidden neurons and with a
    binary input code (the default's regular code; the time code) are decided, continued to
    ``T`` and scored in one compiled pass (:func:`~spikerl.rules._act_silent`): the kernel's
    decision and continuation, bit for bit, from the same random numbers (actions, ties, silent
    decisions, latencies, spike and operation counts, raster, log-likelihoods, the generator's
    state after), with the raster's bits (what the rule stores) and, without ``keep_raster``, no
    raster; the training loop takes it."""
    import spikerl.policy as policy_module
    from spikerl import SpikingAgent
    from spikerl.policy import pack_bits

    calls = []
    fused = policy_module._act_silent
    monkeypatch.setattr(policy_module, "_act_silent", lambda *a: calls.append(1) or fused(*a))
    seen = []
    for code, T, memory in (("regular", 8, 8), ("regular", 11, 12), ("time", 6, 8)):  # 11 steps: two bytes
        agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, code=code, T=T, memory=memory)
        pol = agent.policy
        agent.learn(200)
        assert pol._packed_replay and calls, "the training loop acts through the compiled pass"
        rng = np.random.default_rng(0)
        obs = rng.normal(size=(300, 4))
        pol.set_theta(pol.theta + rng.normal(0.0, 1.5, pol.n_params) * pol.learnable)  # ties and silent decisions
        for keep in (True, False):
            outs = []
            for on in (True, False):
                monkeypatch.setattr(SpikingPolicy, "_fused_acting", on)
                gen = np.random.default_rng(5)
                n = len(calls)
                out = pol.act(obs, gen, keep_raster=keep or not on, sparse_draws=True)
                assert (len(calls) > n) == on
                outs.append((out, gen.random(3)))
            (f, f_next), (g, g_next) = outs
            np.testing.assert_array_equal(f_next, g_next)
            for name in ("action", "ll_out", "spikes", "sops", "latency", "no_spike", "log_prob", "ll_neuron"):
                x, y = getattr(f, name), getattr(g, name)
                assert x.dtype == y.dtype and x.shape == y.shape, name
                np.testing.assert_array_equal(x, y, err_msg=name)
            assert g.packed is None and f.elig is None and f.hidden_rate is None
            np.testing.assert_array_equal(f.packed, pack_bits(g.raster))
            if keep:
                np.testing.assert_array_equal(f.raster, g.raster)
            else:
                assert f.raster is None
        seen.append((g.no_spike.any(), (g.spikes[:, 2] > 1).any(), len(np.unique(g.latency)) > 2))
    assert np.all(np.any(seen, axis=0)), seen  # silent decisions, ties among the outputs at t*, latencies


def test_dense_replay_scores_improbable_decisions_in_log_space(monkeypatch):
    """The dense replay scores a decision in probabilities, and one so improbable under the
    current parameters that those could underflow (``P(a | h)`` below 1e-200) in log space:
    for both, the kernel path's log-likelihoods and gradient up to rounding, all finite."""
    from spikerl import SpikingAgent

    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2)
    pol = agent.policy
    rng = np.random.default_rng(0)
    rec = _recorded_minibatches(agent, rng)[1]
    theta = pol.theta.copy()
    out_bias = np.arange(theta.size)[pol.bias_slice][pol.topo.n_in :]
    theta[out_bias] = (-2000.0, 100.0)  # output 0 never spikes, output 1 at once (every step)
    pol.set_theta(theta)
    assert 0 < rec["action"].sum() < len(rec["action"])  # both actions were taken
    M = rng.normal(size=(len(rec["action"]), 1))

    def run():
        seen = []
        grad, _ = pol.replay_gradient(rec, lambda r: seen.append(r.ll_out.copy()) or M)
        return grad, seen[0]

    grad, ll = run()
    monkeypatch.setattr(SpikingPolicy, "_packed_replay", property(lambda self: False))
    grad_ref, ll_ref = run()
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(ll))
    tiny = rec["action"] == 0
    assert np.all(ll[tiny] < np.log(1e-200)) and np.all(ll[~tiny] > np.log(1e-200))
    np.testing.assert_allclose(ll, ll_ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-12 * np.abs(grad_ref).max())
    assert np.abs(grad).max() > 0
