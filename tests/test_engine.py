"""The compiled decision kernel against the numpy reference, the gradient, the
first-to-spike law and maximum-likelihood learning."""
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from naive import log_prob, naive_decide, sigmoid
from spikerl.engine import decide
from spikerl.kernels import exponential_bank, raised_cosine_bank
from spikerl.optim import Adam
from spikerl.network import GLMParams, init_params, layered, topology_from_mask


def _net(n_in, n_hid, n_out, seed, K=2, Kb=1, D=5, recursive=False, **kw):
    """``recursive``: exponential banks covering the whole decision (the kernel's recursive path)."""
    rng = np.random.default_rng(seed)
    topo = layered(n_in, n_hid, n_out, seed=seed, **kw)
    if recursive:
        K, Kb = 1, 1
        a, b = exponential_bank(2.5, 16), exponential_bank(1.5, 16)
    else:
        a = raised_cosine_bank(K, D)
        b = exponential_bank(2.0, 3) if Kb == 1 else raised_cosine_bank(Kb, 3)
    params = init_params(topo, K, Kb, rng=rng, w_scale=3.0, bias_hidden=-0.5, bias_out=-1.5)
    return topo, params, a, b, rng


def _compare(topo, params, a, b, p_in, rng, **kw):
    B, _, T = p_in.shape
    U = rng.random((B, topo.n_neurons, T))
    tie = rng.random(B)
    got = decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True, **kw)
    if kw.get("deterministic") in ("median", "regular"):
        kw = dict(kw, deterministic=True, deterministic_outputs=kw["deterministic"])
    want = naive_decide(topo, params, a, b, p_in, U, tie, **kw)
    for field in got._fields:
        np.testing.assert_allclose(np.asarray(getattr(got, field), float), want[field], rtol=1e-9, atol=1e-9, err_msg=field)
    return got


CASES = [
    dict(n_in=3, n_hid=0, n_out=2),
    dict(n_in=4, n_hid=5, n_out=3),
    dict(n_in=4, n_hid=5, n_out=2, skip=True, recurrent=True, feedback=True),
    dict(n_in=6, n_hid=8, n_out=4, recurrent=True, p_connect=0.4),
    dict(n_in=1, n_hid=3, n_out=2),  # a single input
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("decoder", ["first_to_spike", "rate"])
@pytest.mark.parametrize("deterministic", [False, True, "median", "regular"])
@pytest.mark.parametrize("recursive", [False, True])
def test_kernel_matches_reference_on_random_networks(case, decoder, deterministic, recursive):
    topo, params, a, b, rng = _net(seed=1, Kb=2 if case["n_hid"] else 1, recursive=recursive, **case)
    p_in = rng.random((6, topo.n_in, 9))
    _compare(topo, params, a, b, p_in, rng, decoder=decoder, deterministic=deterministic)


@pytest.mark.parametrize("decoder", ["first_to_spike", "rate"])
def test_kernel_matches_reference_single_basis_short_memory(decoder):
    """One exponential basis shorter than the decision: pushed drive with the single-basis
    eligibility paths (the recursive cases above use the same paths with recursive traces)."""
    rng = np.random.default_rng(7)
    topo = layered(5, 6, 2, skip=True, recurrent=True, seed=7)
    params = init_params(topo, 1, 1, rng=rng, w_scale=3.0, bias_hidden=-0.5, bias_out=-2.0)
    a, b = exponential_bank(2.0, 3), exponential_bank(1.0, 2)
    _compare(topo, params, a, b, rng.random((8, 5, 10)), rng, decoder=decoder)


def test_kernel_matches_reference_edge_cases():
    topo, params, a, b, rng = _net(4, 5, 3, seed=2, recurrent=True)
    T = 7
    silent = params._replace(bias=np.full_like(params.bias, -50.0))
    got = _compare(topo, silent, a, b, np.zeros((3, 4, T)), rng)  # no spikes at all
    assert got.spikes.sum() == 0 and got.no_spike.all() and (got.t_star == T - 1).all()
    loud = params._replace(bias=np.full_like(params.bias, 50.0))
    got = _compare(topo, loud, a, b, np.ones((3, 4, T)), rng)  # everything spikes at once
    assert (got.t_star == 0).all() and not got.no_spike.any()
    huge = params._replace(w=params.w * 1e3, v=params.v * 1e3)  # saturated potentials
    got = _compare(topo, huge, a, b, np.full((3, 4, T), 0.5), rng, decoder="rate")
    assert np.all(np.isfinite(got.ll_out)) and np.all(np.isfinite(got.ew))


@pytest.mark.parametrize("deterministic", [False, "median", "regular"])
def test_clamped_spikes_match_reference(deterministic):
    topo, params, a, b, rng = _net(3, 4, 2, seed=3, recurrent=True)
    B, T = 4, 8
    clamp = rng.integers(-1, 2, size=(B, topo.n_neurons, T)).astype(np.int8)
    _compare(topo, params, a, b, rng.random((B, 3, T)), rng, decoder="rate", clamp=clamp, deterministic=deterministic)


def test_median_outputs_fire_at_the_median_first_spike_time():
    """One output, no input spikes, constant potential u: the sampled first-spike time is
    geometric; the median mode decides at its median, first t with (1 - p)^(t+1) <= 1/2."""
    topo = layered(1, 0, 1)
    a, b = exponential_bank(2.0, 3), exponential_bank(1.0, 3)
    T, rng = 40, np.random.default_rng(0)
    for u in (-4.0, -2.5, -1.0, 0.5):
        params = GLMParams(np.zeros((topo.n_synapses, 1)), np.zeros((2, 1)), np.array([0.0, u]))
        p_in = np.zeros((1, 1, T))
        det = decide(topo, params, a, b, p_in, rng=rng, deterministic="median")
        p = sigmoid(u)
        want = int(np.ceil(np.log(0.5) / np.log1p(-p))) - 1
        assert det.t_star[0] == min(want, T - 1), u
        sampled = decide(topo, params, a, b, np.zeros((4001, 1, T)), rng=rng).t_star
        assert abs(np.median(sampled) - det.t_star[0]) <= 1, (u, np.median(sampled), det.t_star[0])
    with pytest.raises(ValueError, match="deterministic must be"):
        decide(topo, params, a, b, p_in, rng=rng, deterministic="mode")


def test_regular_network_fires_each_neuron_at_its_probability_evenly_spaced():
    """One output, no input spikes, constant potential u (rate decoder: all T steps): the
    regular mode fires floor(1/2 + T p) times, p = sigmoid(u), a spike at t iff the phase
    1/2 + (t+1) p passes an integer (the regular input code's rule), where the sampled
    network fires T p times on average; the threshold mode fires T times or never."""
    topo = layered(1, 0, 1)
    a, b = exponential_bank(2.0, 3), exponential_bank(1.0, 3)
    T, rng = 40, np.random.default_rng(0)
    t = np.arange(T)
    for u in (-4.0, -1.0, -0.2, 0.7, 3.0):
        params = GLMParams(np.zeros((topo.n_synapses, 1)), np.zeros((2, 1)), np.array([0.0, u]))
        p = sigmoid(u)
        reg = decide(topo, params, a, b, np.zeros((1, 1, T)), rng=rng, deterministic="regular", decoder="rate")
        want = np.floor(0.5 + (t + 1) * p) > np.floor(0.5 + t * p)
        np.testing.assert_array_equal(reg.raster[0, 1], want)
        assert reg.raster[0, 1].sum() == np.floor(0.5 + T * p)
        sampled = decide(topo, params, a, b, np.zeros((2000, 1, T)), rng=rng, decoder="rate").raster[:, 1].sum(1)
        assert abs(sampled.mean() - reg.raster[0, 1].sum()) < 1.0 + 4 * sampled.std() / np.sqrt(2000)
        thr = decide(topo, params, a, b, np.zeros((1, 1, T)), rng=rng, deterministic="threshold", decoder="rate")
        assert thr.raster[0, 1].sum() == (T if u > 0 else 0)


def test_same_seed_same_decisions_bit_for_bit():
    topo, params, a, b, _ = _net(4, 6, 3, seed=4)
    p_in = np.full((16, 4, 10), 0.4)
    r1 = decide(topo, params, a, b, p_in, rng=np.random.default_rng(7), learn=True)
    r2 = decide(topo, params, a, b, p_in, rng=np.random.default_rng(7), learn=True)
    r3 = decide(topo, params, a, b, p_in, rng=np.random.default_rng(8), learn=True)
    assert np.array_equal(r1.raster, r2.raster) and np.array_equal(r1.ew, r2.ew)
    assert not np.array_equal(r1.raster, r3.raster)


@pytest.mark.parametrize("seed,recursive", [(0, False), (1, False), (2, False), (0, True)])
def test_eligibility_is_gradient_of_log_prob(seed, recursive):
    topo, params, a, b, rng = _net(3, 4, 2, seed=seed, K=2, Kb=2, recursive=recursive, skip=True, recurrent=True, feedback=True)
    p_in = np.full((1, 3, 10), 0.5)
    res = decide(topo, params, a, b, p_in, rng=rng, learn=True)
    raster, last = res.raster[0].astype(float), int(res.t_star[0])
    assert res.spikes[0, 1] > 0, "the trajectory should exercise hidden neurons"

    def lp(w, v, g):
        return log_prob(topo, w, v, g, a, b, raster, last)

    eps = 1e-6
    for name, elig in (("w", res.ew[0]), ("v", res.ev[0]), ("bias", res.eg[0])):
        arr = getattr(params, name)
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            p_plus = params._replace(**{name: plus})
            p_minus = params._replace(**{name: minus})
            fd[idx] = (lp(*p_plus) - lp(*p_minus)) / (2 * eps)
        if name in ("v", "bias"):
            fd[: topo.n_in] = 0.0  # input neurons have no learnable potential
        err = np.abs(fd - elig).max() / max(np.abs(fd).max(), 1e-12)
        assert err < 1e-4, f"eligibility of {name} differs from the finite difference by {err:.2e}"


def test_first_to_spike_probabilities_match_closed_form():
    """No hidden neurons, fixed input spikes: the action law is
    P(a) = sum_t prod_{t'<t} prod_o (1 - s_{o,t'}) * sum_{S containing a} prod_{o in S} s_o prod_{o not in S} (1 - s_o) / |S|
           + prod_t prod_o (1 - s_{o,t}) / n_out."""
    rng = np.random.default_rng(11)
    n_in, n_out, T = 4, 3, 5
    topo = layered(n_in, 0, n_out)
    a = raised_cosine_bank(2, 4)
    b = exponential_bank(1.0, 2)
    params = init_params(topo, 2, 1, rng=rng, w_scale=2.0, bias_out=-2.0)
    spikes_in = (rng.random((n_in, T)) < 0.5).astype(float)
    # potentials of the outputs before any output spike (the reference with no output spikes)
    W = np.zeros((topo.n_neurons, topo.n_neurons, 2))
    W[topo.post, topo.pre] = params.w
    raster = np.zeros((topo.n_neurons, T))
    raster[:n_in] = spikes_in
    from naive import traces

    sig = np.array([sigmoid(np.einsum("ijk,jk->i", W, traces(raster, t, a)) + params.bias)[n_in:] for t in range(T)])
    prob = np.zeros(n_out)
    alive = 1.0
    for t in range(T):
        for S in itertools.chain.from_iterable(itertools.combinations(range(n_out), r) for r in range(1, n_out + 1)):
            pS = np.prod([sig[t, o] if o in S else 1 - sig[t, o] for o in range(n_out)])
            for o in S:
                prob[o] += alive * pS / len(S)
        alive *= np.prod(1 - sig[t])
    prob += alive / n_out
    n = 200_000
    res = decide(topo, params, a, b, np.broadcast_to(spikes_in, (n, n_in, T)), rng=np.random.default_rng(0))
    freq = np.bincount(res.action, minlength=n_out) / n
    se = np.sqrt(prob * (1 - prob) / n)
    assert np.all(np.abs(freq - prob) < 5 * se), (freq, prob)  # 5 standard errors
    assert abs(res.no_spike.mean() - alive) < 5 * np.sqrt(alive * (1 - alive) / n)


def test_maximum_likelihood_recovers_weights():
    """Spike trains of a teacher GLM, learned with neuromodulator 1 (plain log-likelihood
    ascent on the eligibilities), recover the teacher's weights to within 0.15."""
    rng = np.random.default_rng(5)
    n_in, n_out, T = 4, 2, 40
    topo = layered(n_in, 0, n_out)
    a = raised_cosine_bank(2, 6)
    b = exponential_bank(2.0, 4)
    teacher = GLMParams(
        w=rng.normal(0, 1.0, (topo.n_synapses, 2)),
        v=np.r_[np.zeros((n_in, 1)), np.full((n_out, 1), -1.5)],
        bias=np.r_[np.zeros(n_in), -1.0, -0.5],
    )
    theta = np.zeros(sum(x.size for x in teacher))
    opt = Adam(theta.size)
    B = 256

    def unflat(vec):
        w, v = np.split(vec, [teacher.w.size, teacher.w.size + teacher.v.size])[:2]
        return GLMParams(w.reshape(teacher.w.shape), v.reshape(teacher.v.shape), vec[-teacher.bias.size :])

    for _ in range(800):
        p_in = np.full((B, n_in, T), 0.3)
        data = decide(topo, teacher, a, b, p_in, rng=rng, decoder="rate")
        r = decide(topo, unflat(theta), a, b, p_in, rng=rng, decoder="rate", learn=True, clamp=data.raster.astype(np.int8))
        assert np.array_equal(r.raster, data.raster)
        grad = np.concatenate([r.ew.mean(0).ravel(), r.ev.mean(0).ravel(), r.eg.mean(0)])
        theta = opt.step(theta, grad, lr=0.05)
    student = unflat(theta)
    assert np.abs(student.w - teacher.w).max() < 0.15
    assert np.abs(student.v[n_in:] - teacher.v[n_in:]).max() < 0.15
    assert np.abs(student.bias[n_in:] - teacher.bias[n_in:]).max() < 0.15


def test_import_and_decide_without_torch(tmp_path):
    """A torch/SB3 import anywhere in the core path fails this test."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nfor m in ('torch', 'stable_baselines3', 'wandb'):\n    sys.modules[m] = None\n"
    )
    code = (
        "import numpy as np, spikerl\n"
        "from spikerl.engine import decide\nfrom spikerl.network import layered, init_params\n"
        "from spikerl.kernels import exponential_bank\n"
        "t = layered(3, 4, 2); p = init_params(t, 1, 1, rng=np.random.default_rng(0))\n"
        "r = decide(t, p, exponential_bank(2, 4), exponential_bank(1, 2), np.full((2, 3, 6), .5), rng=np.random.default_rng(0))\n"
        "import sys; assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]\n"
        "print('ok', r.action)\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.getcwd()}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_bad_input_names_the_argument():
    topo, params, a, b, rng = _net(3, 2, 2, seed=0)
    with pytest.raises(ValueError, match="p_in"):
        decide(topo, params, a, b, np.zeros((2, 5, 4)), rng=rng)
    with pytest.raises(ValueError, match="p_in"):
        decide(topo, params, a, b, np.full((2, 3, 4), 2.0), rng=rng)
    with pytest.raises(ValueError, match="params.w"):
        decide(topo, params._replace(w=params.w[:, :1]), a, b, np.zeros((2, 3, 4)), rng=rng)
    with pytest.raises(ValueError, match="decoder"):
        decide(topo, params, a, b, np.zeros((2, 3, 4)), rng=rng, decoder="vote")
    with pytest.raises(ValueError, match="ff_kernel"):
        decide(topo, params, np.zeros(3), b, np.zeros((2, 3, 4)), rng=rng)
    with pytest.raises(ValueError, match="uniforms"):
        decide(topo, params, a, b, np.zeros((2, 3, 4)), uniforms=np.zeros((2, 3, 4)), tie=np.zeros(2))
    with pytest.raises(ValueError, match="mask"):
        topology_from_mask(2, 1, 1, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="input neurons"):
        topology_from_mask(1, 0, 1, np.array([[0, 1], [1, 0]], bool))
    with pytest.raises(ValueError, match="tau"):
        raised_cosine_bank(2, 0)
    with pytest.raises(ValueError, match="memory"):
        exponential_bank(2.0, 0)


def test_threaded_kernel_gives_the_same_bits_as_serial(monkeypatch):
    import spikerl.engine as engine

    topo, params, a, b, rng = _net(4, 6, 3, seed=9, recursive=True, recurrent=True)
    p_in = rng.random((70, 4, 10))
    U, tie = rng.random((70, topo.n_neurons, 10)), rng.random(70)
    monkeypatch.setattr(engine, "THREADED_MIN_BATCH", 1)
    monkeypatch.setattr(engine, "get_num_threads", lambda: 3)  # three chunks, whatever the machine
    threaded = decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True)
    monkeypatch.setattr(engine, "THREADED_MIN_BATCH", 10**9)
    serial = decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True)
    for field in serial._fields:
        assert np.array_equal(getattr(threaded, field), getattr(serial, field)), field


def test_batched_passes_in_chunks_train_the_same_bits(monkeypatch):
    """The kernel and the learning rule's compiled passes (the hidden targets, their errors and
    eligibilities, the output layer's marginal scores) run over a batch in chunks on threads
    (``engine.batched``): split into three chunks at every batch size, an agent with hidden
    neurons trains to the same parameters, bit for bit, as in one call each."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import spikerl.engine as engine
    from spikerl import SpikingAgent

    calls = []

    class Spy(ThreadPoolExecutor):
        def submit(self, fn, *args):
            calls.append(fn.__name__)
            return super().submit(fn, *args)

    monkeypatch.setattr(engine, "_pools", {(os.getpid(), 3): Spy(3)})
    monkeypatch.setattr(engine, "get_num_threads", lambda: 1)
    hidden = dict(n_hidden=32, n_projections=0)
    serial = SpikingAgent("CartPole-v1", seed=3, n_steps=32, **hidden).learn(768).policy.theta
    assert not calls  # one thread: single calls
    monkeypatch.setattr(engine, "THREADED_MIN_BATCH", 1)
    monkeypatch.setattr(engine, "get_num_threads", lambda: 3)
    chunked = SpikingAgent("CartPole-v1", seed=3, n_steps=32, **hidden).learn(768).policy.theta
    assert {"_kernel", "_posterior_lambdas_range", "_marginal_terms_range", "_hidden_eligibilities_into",
            "_marginal_scores"} <= set(calls)
    np.testing.assert_array_equal(chunked, serial)


def _decide_in_child(queue):
    import spikerl.engine as engine

    engine.get_num_threads = lambda: 2
    topo, params, a, b, rng = _net(4, 6, 3, seed=9, recursive=True, recurrent=True)
    queue.put(decide(topo, params, a, b, rng.random((64, 4, 10)), rng=rng).action.sum())


def test_threaded_batches_work_in_a_forked_child(monkeypatch):
    """A child forked after a threaded call inherits the thread pool without its threads: it
    makes its own, where the inherited one would leave its chunks waiting forever."""
    import multiprocessing as mp

    import spikerl.engine as engine

    monkeypatch.setattr(engine, "get_num_threads", lambda: 2)
    topo, params, a, b, rng = _net(4, 6, 3, seed=9, recursive=True, recurrent=True)
    decide(topo, params, a, b, rng.random((64, 4, 10)), rng=rng)  # the parent's pool, started
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_decide_in_child, args=(queue,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0
    assert queue.get(timeout=5) >= 0


def test_workspace_reuse_equals_fresh_buffers():
    """A reused workspace must read exactly like fresh buffers, also when a later decision
    stops earlier than the one before it in the same slot."""
    from spikerl.engine import Workspace

    topo, params, a, b, rng = _net(4, 5, 3, seed=5, recurrent=True, recursive=True)
    ws = Workspace()
    T = 9
    settings = [params._replace(bias=np.full_like(params.bias, g)) for g in (-50.0, 3.0, -2.0, 50.0, -1.0)]
    for p in settings:
        p_in = rng.random((5, 4, T))
        U, tie = rng.random((5, topo.n_neurons, T)), rng.random(5)
        fresh = decide(topo, p, a, b, p_in, uniforms=U, tie=tie, learn=True)
        reused = decide(topo, p, a, b, p_in, uniforms=U, tie=tie, learn=True, workspace=ws)
        for field in fresh._fields:
            assert np.array_equal(getattr(fresh, field), getattr(reused, field)), field


@pytest.mark.parametrize("deterministic", [False, True, "median", "regular"])
@pytest.mark.parametrize("recursive", [False, True])
def test_unscored_decisions_are_the_scored_ones_without_log_likelihoods(deterministic, recursive):
    """``score=False`` (predict) skips only the log-likelihoods (NaN): every other output is the
    scored call's, bit for bit; learning always scores."""
    topo, params, a, b, rng = _net(4, 5, 3, seed=2, Kb=2, recursive=recursive, recurrent=True)
    p_in = rng.random((7, topo.n_in, 9))
    U, tie = rng.random((7, topo.n_neurons, 9)), rng.random(7)
    kw = dict(uniforms=U, tie=tie, deterministic=deterministic)
    scored, unscored = decide(topo, params, a, b, p_in, **kw), decide(topo, params, a, b, p_in, score=False, **kw)
    for field in scored._fields:
        got, want = getattr(unscored, field), getattr(scored, field)
        if field in ("ll_out", "ll_neuron"):
            assert np.isnan(got[:, topo.n_in:] if got.ndim == 2 else got).all() and np.isfinite(want).all()
        elif want is not None:
            assert np.array_equal(got, want), field
    learnt = decide(topo, params, a, b, p_in, learn=True, score=False, **kw)
    np.testing.assert_array_equal(learnt.ll_out, decide(topo, params, a, b, p_in, learn=True, **kw).ll_out)


@pytest.mark.parametrize("K,recursive", [(1, False), (2, False), (1, True)])
def test_output_eligibilities_alone_are_the_same_bits(K, recursive):
    """``hidden_eligibility=False`` leaves every hidden neuron's entry 0 and forms the output
    neurons' exactly as the full call does (byte for byte), whatever the spike counts."""
    topo, params, a, b, rng = _net(5, 6, 3, seed=3, K=K, Kb=1, recursive=recursive, skip=True, recurrent=True,
                                   feedback=True)
    p_in = rng.random((40, topo.n_in, 10))
    U, tie = rng.random((40, topo.n_neurons, 10)), rng.random(40)
    full = decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True)
    full = {k: getattr(full, k).copy() for k in ("ew", "ev", "eg", "raster", "ll_neuron")}
    part = decide(topo, params, a, b, p_in, uniforms=U, tie=tie, learn=True, hidden_eligibility=False)
    out0 = topo.n_in + topo.n_hid
    to_out = topo.post >= out0
    assert to_out.any() and (~to_out).any() and full["raster"][:, topo.n_in:out0].sum(2).max() >= 2
    assert np.abs(full["ew"][:, ~to_out]).max() > 0 and np.abs(full["ev"][:, topo.n_in:out0]).max() > 0
    assert part.ew[:, to_out].tobytes() == full["ew"][:, to_out].tobytes()
    assert part.ev[:, out0:].tobytes() == full["ev"][:, out0:].tobytes()
    assert part.eg[:, out0:].tobytes() == full["eg"][:, out0:].tobytes()
    assert not part.ew[:, ~to_out].any() and not part.ev[:, :out0].any() and not part.eg[:, :out0].any()
    assert np.array_equal(part.raster, full["raster"]) and np.array_equal(part.ll_neuron, full["ll_neuron"])
