"""The proximal reward factor's parts: return scaling, GAE with episode ends and truncation,
the clipped-surrogate modulator."""
import numpy as np
import pytest

from spikerl.policy import PolicyOutput
from spikerl.rules import (Critic, MixCritic, MLPCritic, ProximalRule, ReturnScaler, SumCritic, Transition, clipped_modulator,
                           modulated_gradient, ratio_modulator, standardized)


def test_return_scaler_is_bounded_from_the_first_step():
    scaler = ReturnScaler(4, 0.99)
    valid, done = np.ones(4, bool), np.zeros(4, bool)
    first = scaler(-np.ones(4), valid, done)
    assert np.all(np.isfinite(first)) and np.all(np.abs(first) <= ReturnScaler.CLIP)
    for _ in range(2000):
        last = scaler(-np.ones(4), valid, done)
    # discounted returns of -1 per step spread over [-100, -1]: the scale is their std (~ 15)
    assert 1 / 40 < -last[0] < 1 / 10 and np.all(last == last[0])


def test_return_scaler_computes_the_numpy_statement_bit_for_bit():
    """The compiled scaler runs the numpy statement it replaced, operation by operation and
    with numpy's pairwise sums, so training keeps its bits: checked on random rewards of every
    magnitude with environments skipped (NEXT_STEP resets) and episodes ending."""
    gamma, clip = 0.99, ReturnScaler.CLIP
    rng = np.random.default_rng(3)
    for B in (1, 7, 8, 9, 16, 130):
        scaler = ReturnScaler(B, gamma)
        ret, count, mean, m2 = np.zeros(B), 1e-4, 0.0, 1e-4
        for step in range(300):
            rewards = rng.standard_normal(B) * 10.0 ** rng.uniform(-3, 3, B)
            valid, done = rng.random(B) < 0.9, rng.random(B) < 0.05
            got = scaler(rewards, valid, done)
            ret = np.where(valid, ret * gamma + rewards, ret)  # the numpy statement
            x = ret[valid]
            if x.size:
                n = x.size
                delta = x.mean() - mean
                total = count + n
                mean += delta * n / total
                m2 += ((x - x.mean()) ** 2).sum() + delta**2 * count * n / total
                count = total
            ret[done] = 0.0
            want = np.clip(rewards / np.sqrt(m2 / count + 1e-8), -clip, clip)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(scaler.ret, ret)
            assert (scaler.count, scaler.mean, scaler.m2) == (count, mean, m2)


def test_pairwise_sum_is_numpys_sum_bit_for_bit():
    """The compiled sum the scaler and the encoder's statistics reproduce numpy with: numpy's
    own ``sum`` of every length (its blocks of 8 up to 128 values, its halving beyond), also
    from a compiled caller loading it from numba's cache (a second process: no crash)."""
    import subprocess
    import sys

    import numba

    from spikerl._numba import pairwise_sum

    @numba.njit
    def total(a, lo, hi):
        return pairwise_sum(a, lo, hi)

    rng = np.random.default_rng(2)
    for n in [*range(0, 140), 255, 256, 257, 1000, 1031, 4099]:
        a = rng.standard_normal(n + 3) * 10.0 ** rng.uniform(-4, 4, n + 3)
        assert total(a, 3, n + 3) == a[3:].sum(), n
    assert total(np.array([-0.0]), 0, 1) == np.sum(np.array([-0.0])) and not np.signbit(total(np.array([-0.0]), 0, 1))
    code = "import numpy as np; from spikerl.rules import ReturnScaler; print(ReturnScaler(300, 0.9)(np.ones(300), np.ones(300, bool), np.zeros(300, bool))[0])"
    for _ in range(2):  # the first may compile and cache, the second loads
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert float(out.stdout) == 10.0


def test_gae_runs_the_numpy_recursion_bit_for_bit():
    """GAE in one compiled pass: the numpy recursion over steps it replaced, element by element."""
    from spikerl.rules import RolloutBuffer

    rng = np.random.default_rng(6)
    gamma, lam = 0.99, 0.95
    buf = RolloutBuffer(64, 8, gamma, lam)
    for _ in range(64):
        buf.add(reward=rng.standard_normal(8) * 10.0 ** rng.uniform(-2, 2), done=rng.random(8) < 0.1)
    values, last = rng.standard_normal((64, 8)), rng.standard_normal(8)
    want = np.zeros((64, 8))  # the numpy recursion
    gae, next_v = np.zeros(8), last
    for t in range(63, -1, -1):
        live = ~buf.data["done"][t]
        delta = buf.data["reward"][t] + gamma * next_v * live - values[t]
        gae = delta + gamma * lam * live * gae
        want[t] = gae
        next_v = values[t]
    np.testing.assert_array_equal(buf.advantages(values, last), want)


def test_standardized_advantages_are_numpys_bit_for_bit():
    """The minibatch's advantages standardised in one compiled pass: numpy's
    ``(a - a.mean()) / (a.std() + 1e-8)``, bit for bit, at every minibatch size."""
    rng = np.random.default_rng(5)
    for n in [2, 3, 7, 8, 9, 64, 127, 128, 129, 256, 300, 1000]:
        a = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3) + rng.uniform(-5, 5)
        np.testing.assert_array_equal(standardized(a), (a - a.mean()) / (a.std() + 1e-8))


def test_clip_fraction_counts_the_compared_units_only():
    """With per-neuron ratios only the neurons that own parameters are compared (the default
    network: its output layer, one unit): ``train/clip_fraction`` is the share of those that
    the clip shut, not of every neuron's column (which read 0.996 whatever the clip did)."""
    from spikerl import SpikingAgent

    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=4, n_steps=64, n_epochs=4).learn(1024)
    assert agent.config.ratio == "neuron"
    assert 0.0 <= agent._rule.stats["clip_fraction"] < 0.5
    old = np.zeros((4, 3))
    M, rho, log_ratio, n_open = ratio_modulator(np.log([[1.0, 1.0, 2.0]] * 4), old[:, [2]], np.ones(4), 0.2,
                                                units=np.array([2]), old_of_units=True)
    assert rho.shape == (4, 1) and n_open == 0 and np.all(M == 0)  # ratio 2 > 1.2 with A > 0: every unit shut
    M, rho, log_ratio, n_open = ratio_modulator(np.log([[1.0, 1.0, 1.1]] * 4), old[:, [2]], np.ones(4), 0.2,
                                                units=np.array([2]), old_of_units=True)
    assert n_open == 4 and np.allclose(M[:, 2], 1.1) and np.all(M[:, :2] == 0)
    buf = np.zeros((4, 3))  # a reused array: a gate shut now clears what an open one wrote before
    ratio_modulator(np.log([[1.0, 1.0, 1.1]] * 4), old[:, [2]], np.ones(4), 0.2, units=np.array([2]),
                    old_of_units=True, out=buf)
    M, _, _, n_open = ratio_modulator(np.log([[1.0, 1.0, 2.0]] * 4), old[:, [2]], np.ones(4), 0.2,
                                      units=np.array([2]), old_of_units=True, out=buf)
    assert M is buf and n_open == 0 and np.all(buf == 0)


class _Stub:
    """A policy whose decisions carry only a log-probability (the rule's bookkeeping alone)."""

    n_params = 1
    param_neuron = np.zeros(1, np.int64)

    def record(self, out, features):
        return {"features": features}


def test_gae_cuts_at_episode_ends_and_bootstraps_truncation():
    gamma, lam = 0.9, 0.8
    rule = ProximalRule(1, _Stub(), Critic(1, 0.01), gamma=gamma, lam=lam, n_steps=5, n_epochs=1, batch_size=4,
                        clip_range=0.2, ent_coef=0.0, target_kl=None, ratio="joint", normalize_advantage=True,
                        scale_rewards=False, rng=np.random.default_rng(0))
    rewards = [1.0, 2.0, 3.0, 4.0]
    term = [False, True, False, False]
    trunc = [False, False, False, True]
    next_v = [9.0, 9.0, 9.0, 7.0]  # critic value of the next (at an episode end: the final) observation
    for t in range(4):  # 4 of the rollout's 5 steps: no training yet
        out = PolicyOutput(np.zeros(1, np.int64), None, np.zeros(1), None, None, None, None, None, np.zeros(1))
        tr = Transition(np.ones(1, bool), out, np.zeros((1, 1)), np.array([rewards[t]]), np.array([term[t]]),
                        np.array([term[t] or trunc[t]]), np.array([next_v[t]]))
        assert list(rule.step(tr)) == []
    buf = rule.buffer
    buf.n_steps = 4
    values = np.array([[0.5], [1.0], [2.0], [-1.0]])
    adv = buf.advantages(values, np.array([5.0]))[:, 0]
    # by hand: step 3 is truncated (r + gamma V(final), nothing after), step 1 terminated
    d3 = 4.0 + gamma * 7.0 - (-1.0)
    d2 = 3.0 + gamma * (-1.0) - 2.0
    d1 = 2.0 - 1.0
    d0 = 1.0 + gamma * 1.0 - 0.5
    np.testing.assert_allclose(adv, [d0 + gamma * lam * d1, d1, d2 + gamma * lam * d3, d3])


@pytest.mark.parametrize("seed", range(3))
def test_clipped_modulator_is_the_derivative_of_the_clipped_surrogate(seed):
    rng = np.random.default_rng(seed)
    log_rho = rng.uniform(-0.6, 0.6, 200)
    adv = rng.normal(size=200)
    eps, h = 0.2, 1e-6

    def surrogate(lr):
        rho = np.exp(lr)
        return np.minimum(rho * adv, np.clip(rho, 1 - eps, 1 + eps) * adv)

    numeric = (surrogate(log_rho + h) - surrogate(log_rho - h)) / (2 * h)
    M, gate = clipped_modulator(np.exp(log_rho), adv, eps)
    np.testing.assert_allclose(M, numeric, atol=1e-5)
    assert 0 < gate.mean() < 1  # both branches occur


@pytest.mark.parametrize("seed", range(3))
def test_dual_clipped_modulator_is_the_derivative_of_the_dual_clipped_surrogate(seed):
    """dual_clip=c: the surrogate max(min(rho A, clip(rho) A), c A) for A < 0; a negative
    advantage whose ratio is past c gets M = 0, where PPO's clip alone gives rho A."""
    rng = np.random.default_rng(seed)
    log_rho = rng.uniform(-0.6, 2.0, 300)  # ratios up to e^2 > c
    adv = rng.normal(size=300)
    eps, c, h = 0.2, 3.0, 1e-6

    def surrogate(lr):
        rho = np.exp(lr)
        ppo = np.minimum(rho * adv, np.clip(rho, 1 - eps, 1 + eps) * adv)
        return np.where(adv < 0, np.maximum(ppo, c * adv), ppo)

    numeric = (surrogate(log_rho + h) - surrogate(log_rho - h)) / (2 * h)
    M, gate = clipped_modulator(np.exp(log_rho), adv, eps, dual_clip=c)
    np.testing.assert_allclose(M, numeric, atol=1e-5)
    past = (adv < 0) & (np.exp(log_rho) > c)
    assert past.any() and np.all(M[past] == 0.0)
    M_ppo, _ = clipped_modulator(np.exp(log_rho), adv, eps)
    assert np.all(M_ppo[past] < 0)  # PPO alone keeps pushing them, harder the larger rho


def test_each_parameter_is_modulated_by_its_own_neurons_factor():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(6, 4))  # 6 decisions, 4 neurons
    M[:, 2] = 0.0  # neuron 2 clipped on every decision
    elig = rng.normal(size=(6, 9))
    unit = np.array([0, 1, 2, 3, 0, 1, 2, 3, 3])
    grad = modulated_gradient(M, elig, unit)
    want = np.array([np.mean(M[:, unit[p]] * elig[:, p]) for p in range(9)])
    np.testing.assert_allclose(grad, want)
    assert np.all(grad[unit == 2] == 0.0)
    np.testing.assert_allclose(modulated_gradient(M[:, :1], elig, unit), M[:, 0] @ elig / 6)


def test_ratio_modulator_is_the_clipped_modulator_of_the_ratios():
    """The compiled pass gives clipped_modulator's M of exp(clip(log p - old, -20, 20)), its
    ratios and log-ratios, and counts the open gates (both branches and the +-20 cap occur)."""
    rng = np.random.default_rng(0)
    log_prob = rng.normal(0.0, 0.3, (50, 7))
    log_prob[0, 0] = 40.0  # capped at exp(20)
    old = rng.normal(0.0, 0.3, (50, 7))
    adv = rng.normal(size=50)
    adv[1] = 0.0
    M, rho, log_ratio, n_open = ratio_modulator(log_prob, old, adv, 0.2)
    np.testing.assert_array_equal(log_ratio, log_prob - old)
    np.testing.assert_allclose(rho, np.exp(np.clip(log_prob - old, -20.0, 20.0)), rtol=1e-15)
    want, gate = clipped_modulator(rho, adv[:, None], 0.2)
    np.testing.assert_array_equal(M, want)
    assert n_open == gate.sum() and 0 < n_open < gate.size
    # the dual clip, compiled and not, shuts the same gates
    M2, _, _, n_open2 = ratio_modulator(log_prob, old, adv, 0.2, 1.3)
    want2, gate2 = clipped_modulator(rho, adv[:, None], 0.2, dual_clip=1.3)
    np.testing.assert_array_equal(M2, want2)
    assert n_open2 == gate2.sum() < n_open
    # some units only (those that own parameters): theirs as before, M 0 elsewhere, counted among them
    units = np.array([1, 4, 6])
    M3, rho3, log_ratio3, n_open3 = ratio_modulator(log_prob, old, adv, 0.2, units=units)
    np.testing.assert_array_equal(M3[:, units], want[:, units])
    np.testing.assert_array_equal(np.delete(M3, units, axis=1), 0.0)
    np.testing.assert_array_equal(rho3, rho[:, units])
    np.testing.assert_array_equal(log_ratio3, log_ratio[:, units])
    assert n_open3 == gate[:, units].sum()


def _numeric_critic_gradient(critic, x, target, eps=1e-6):
    """Central differences of -mean((V(x) - target)^2)/2 in every entry of ``critic.c``."""
    def objective(c):
        saved, critic.c = critic.c, c
        try:
            return -0.5 * np.mean((critic.predict(x) - target) ** 2)
        finally:
            critic.c = saved

    c0 = critic.c.copy()
    return np.array([(objective(c0 + eps * e) - objective(c0 - eps * e)) / (2 * eps) for e in np.eye(c0.size)])


def test_mlp_critic_gradient_is_the_derivative_of_the_squared_error():
    """MLPCritic.gradient against central differences of -mean((V - target)^2)/2, every
    parameter, computed in float64; in its own precision (float32) the same to single precision."""
    critic = MLPCritic(3, 1e-3, hidden=5, seed=0)
    rng = np.random.default_rng(1)
    critic.c = critic.c + 0.3 * rng.standard_normal(critic.c.size)  # away from the small output init
    x, target = rng.uniform(-1, 1, (7, 3)), rng.standard_normal(7)
    single = critic.gradient(x, target)
    assert critic.dtype == np.float32 and single.dtype == np.float64 and critic.predict(x).dtype == np.float64

    critic.dtype = np.float64
    numeric = _numeric_critic_gradient(critic, x, target)
    np.testing.assert_allclose(critic.gradient(x, target), numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(single, numeric, rtol=1e-4, atol=1e-6)


def test_critic_tanh_is_as_accurate_as_numpys_single_precision_one():
    """The perceptron's compiled float32 ``tanh(z + b)`` (in place): within 4e-7 of the exact
    tanh of the float32 sum over [-12, 12] (past 9 float32's tanh is 1), odd, never beyond 1;
    numpy's float32 tanh's error is 6e-8, a bad polynomial's many times that."""
    from spikerl.rules import _tanh_layer

    x = np.linspace(-12.0, 12.0, 240_010).astype(np.float32).reshape(-1, 10)
    b = np.linspace(-0.5, 0.5, 10).astype(np.float32)
    z = x.copy()
    _tanh_layer(z, b)
    exact = np.tanh((x + b).astype(np.float64))
    assert z.dtype == np.float32 and np.abs(z - exact).max() < 4e-7 and np.abs(z).max() <= 1.0
    zero = np.zeros(10, np.float32)
    pos, neg = x.copy(), -x
    _tanh_layer(pos, zero)
    _tanh_layer(neg, zero)
    np.testing.assert_array_equal(neg, -pos)
    assert np.all(pos[np.abs(x) >= 9.0] == np.sign(x[np.abs(x) >= 9.0]))


def test_sum_critic_gradient_is_the_derivative_of_the_squared_error_of_the_sum():
    """SumCritic.gradient against central differences of -mean((mlp + linear - target)^2)/2,
    every parameter of both parts; and each part steps at its own size."""
    rng = np.random.default_rng(2)
    critic = SumCritic(MLPCritic(3, 1e-3, hidden=4, seed=0), Critic(3, 1e-2, n_random=5, seed=0))
    critic.mlp.dtype = np.float64  # the derivative checked to double precision (float32: the test above)
    critic.c = critic.c + 0.3 * rng.standard_normal(critic.c.size)
    f, target = rng.uniform(0, 1, (7, 3)), rng.standard_normal(7)
    x = critic.augment(f)
    assert x.shape == (7, 3 + 3 + 5 + 1)
    np.testing.assert_allclose(critic.predict(x), critic.mlp.value(f) + critic.linear.value(f))

    c0, numeric = critic.c.copy(), _numeric_critic_gradient(critic, x, target)
    np.testing.assert_allclose(critic.gradient(x, target), numeric, rtol=1e-6, atol=1e-9)
    # Adam's first step moves every parameter by its own step size (sign of its gradient)
    critic.regress(x, target)
    step = np.abs(critic.c - c0)
    n_mlp = critic.mlp.c.size
    np.testing.assert_allclose(step[:n_mlp][np.abs(numeric[:n_mlp]) > 1e-6], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(step[n_mlp:], 1e-2, rtol=1e-3)


def test_mix_critic_fits_each_part_on_its_own_and_weighs_them_by_their_held_out_errors():
    """MixCritic: each part steps towards the target on its own (the perceptron's gradient is
    MLPCritic's, the linear part's its own least squares; the running errors move by no
    gradient); before any observation the two weigh equally; an observed batch sets each
    part's error, later ones are averaged in, and the value follows the part that erred less."""
    rng = np.random.default_rng(4)
    critic = MixCritic(MLPCritic(3, 1e-3, hidden=4, seed=0), Critic(3, 1e-2, n_random=5, seed=0))
    critic.c = critic.c + np.concatenate([0.3 * rng.standard_normal(critic.c.size - 2), np.zeros(2)])
    f, target = rng.uniform(0, 1, (7, 3)), rng.standard_normal(7)
    x = critic.augment(f)
    v_mlp, v_lin = critic.mlp.value(f), critic.linear.value(f)
    np.testing.assert_allclose(critic.predict(x), 0.5 * v_mlp + 0.5 * v_lin)
    n_mlp, n_lin = critic.mlp.c.size, critic.linear.c.size
    g = critic.gradient(x, target)
    np.testing.assert_allclose(g[:n_mlp], critic.mlp.gradient(x[:, :3], target))
    np.testing.assert_allclose(g[n_mlp : n_mlp + n_lin], ((target - v_lin)[:, None] * x[:, 3:]).mean(0))
    assert g.size == critic.c.size and not g[-2:].any()

    critic.observe(x, v_lin)  # the linear part is exact on this batch: it carries the value
    e_mlp = np.mean((v_mlp - v_lin) ** 2)
    np.testing.assert_allclose(critic.err, [e_mlp, 1e-12], rtol=1e-9)
    np.testing.assert_allclose(critic.predict(x), v_lin, atol=1e-6 * np.abs(v_mlp - v_lin).max())
    critic.observe(x, v_mlp)  # now the perceptron is: 0.9 of the old error, 0.1 of the new
    np.testing.assert_allclose(critic.err, [0.9 * e_mlp + 0.1e-12, 0.9e-12 + 0.1 * (e_mlp + 1e-12)], rtol=1e-9)
    w = critic.weights
    np.testing.assert_allclose(w, (1 / critic.err) / (1 / critic.err).sum())
    np.testing.assert_allclose(critic.predict(x), w[0] * v_mlp + w[1] * v_lin)
    c0 = critic.c.copy()
    critic.regress(x, target)
    np.testing.assert_array_equal(critic.c[-2:], c0[-2:])  # no gradient step moves the errors
    assert (critic.c[:-2] != c0[:-2]).any()
    # one flat vector, the parts' parameters views of it (stepped in place), in copies too
    import copy

    twin = copy.deepcopy(critic)
    for c in (critic, twin):
        c.regress(x, target)
        c.observe(x, target)
    np.testing.assert_array_equal(twin.c, critic.c)
    np.testing.assert_array_equal(twin.predict(x), critic.predict(x))
    np.testing.assert_array_equal(twin.mlp.value(f), critic.mlp.value(f))
    np.testing.assert_array_equal(twin.err, critic.c[-2:])
    loaded = MixCritic(MLPCritic(3, 1e-3, hidden=4, seed=1), Critic(3, 1e-2, n_random=5, seed=0))
    loaded.c = critic.c  # as a saved file is read back
    np.testing.assert_array_equal(loaded.predict(x), critic.predict(x))


def test_mlp_critic_fits_a_nonlinear_value_the_linear_one_cannot():
    """On a value that is a product of two inputs (no linear part), a few hundred Adam steps of
    the perceptron explain most of its variance; the linear critic on the same inputs explains none."""
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 1, (512, 2))
    v = 4 * (z[:, 0] - 0.5) * (z[:, 1] - 0.5)
    mlp = MLPCritic(2, 1e-2, hidden=16, seed=0)
    lin = Critic(2, 1e-2)
    for _ in range(600):
        idx = rng.choice(512, 64)
        mlp.regress(mlp.augment(z[idx]), v[idx])
        lin.regress(lin.augment(z[idx]), v[idx])
    def explained(pred):
        return 1 - np.var(v - pred) / np.var(v)

    assert explained(mlp.value(z)) > 0.8
    assert explained(lin.value(z)) < 0.1


def test_adam_step_is_kingma_and_ba_element_by_element():
    """Adam.step (one compiled pass) against its numpy form, bit for bit over many steps, with
    one step size and with one per parameter (the mixed critics'), and stepping in place; a
    gradient of the wrong shape is refused, naming the shapes."""
    from spikerl.optim import Adam

    rng = np.random.default_rng(0)
    for lr, in_place in ((0.01, False), (rng.uniform(1e-4, 1e-2, 300), False), (0.01, True)):
        opt, m, v = Adam(300), np.zeros(300), np.zeros(300)
        theta = rng.normal(size=300)
        ref = theta.copy()
        for t in range(1, 40):
            g = rng.normal(size=300) * 10.0 ** rng.uniform(-8, 2, 300)
            theta = opt.step(theta, g, lr, out=theta) if in_place else opt.step(theta, g, lr)
            m = 0.9 * m + (1 - 0.9) * g
            v = 0.999 * v + (1 - 0.999) * g * g
            ref = ref + lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            np.testing.assert_array_equal(theta, ref)
        np.testing.assert_array_equal(opt.m, m)
        np.testing.assert_array_equal(opt.v, v)
    with pytest.raises(ValueError, match=r"300 parameters got theta \(300,\) and gradient \(299,\)"):
        opt.step(theta, np.zeros(299), 0.01)
