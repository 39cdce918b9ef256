r"""One decision of a batch of GLM spiking networks, compiled with numba.

For each of ``B`` independent network states (one per environment) the kernel runs
``t = 0..T-1``:

1. input neuron ``j`` spikes with probability ``p_in[b, j, t]`` (the encoder's output);
2. every other neuron computes ``u_{i,t} = drive_{i,t} + b_i`` (``b_i``: the neuron's bias) and spikes with
   probability ``sigmoid(u_{i,t})`` (or iff ``u > 0`` when ``deterministic``; in the
   ``median`` deterministic mode an output fires when ``sum softplus(u) >= log 2``; in the
   ``regular`` one every neuron fires regularly at its probability: a phase that starts at
   1/2 adds ``sigmoid(u_{i,t})`` and fires each time it passes 1);
3. with the first-to-spike decoder the decision ends at the first step ``t*`` at which an
   output neuron spikes (ties uniform; no spike by ``T`` -> uniform action, flagged);
4. spikes at ``t`` are pushed, event by event, into the future drive of their targets:
   ``drive_{i,t+1+d} += sum_k w_{i,j,k} a_k(d)`` and, for self-feedback,
   ``drive_{i,t+1+d} += sum_k v_{i,k} b_k(d)``. Work is spikes x fan-out x bases x memory.
   When a bank is one geometric basis ``a(d) = a(0) r^d`` (the exponential kernel) that
   covers the whole decision, the same sum runs recursively
   (``cur_{t+1} = r cur_t + a(0) sum_j w_ij s_{j,t}``): work is spikes x fan-out.

In the same call (``learn=True``) it accumulates, for ``t <= t*`` (DESIGN.md section 5),

    e_{i,j,k} = sum_t (s_{i,t} - sigmoid(u_{i,t})) xbar_{j,k,t}
    e_{v,i,k} = sum_t (s_{i,t} - sigmoid(u_{i,t})) ybar_{i,k,t}
    e_{b,i} = sum_t (s_{i,t} - sigmoid(u_{i,t}))
    l = sum_t sum_{o in outputs} log p(s_{o,t} | u_{o,t})

event-driven as well: the error of each post-synaptic neuron is filtered backwards by the
kernel once (``F_{i,k,t'} = sum_d a_k(d) err_{i,t'+1+d}``), then each synapse of a
pre-synaptic neuron that spiked gets ``sum_{t' in its spike times} F_{post,k,t'}``, written once.
That is exactly ``sum_t err_t xbar_t``.

Layout for speed: synapses are walked in pre-synaptic order through contiguous arrays of
their targets and (geometric kernels) weights; raster and potential are stored time-major
(each step writes one contiguous row; callers get ``(B, N, T)`` views); one compiled call
handles a whole chunk of batch elements, so numba's reference counting of the array
arguments is paid per chunk, not per element.

Code layout: the kernel reads the groups :class:`Drive`, :class:`Mode`, :class:`Net` and
:class:`Out`; ``_decide_range`` runs steps 1, 2 and 4 for an element, then the helpers
``_decode`` (step 3), ``_count_and_score`` and ``_eligibilities`` (the sums above).
``tests/naive.py`` is the dense numpy twin it is checked against, bit for bit.

Random numbers are drawn outside the kernel from an explicit ``numpy.random.Generator``
(same seed, same decisions, bit for bit); the kernel never draws.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import get_num_threads

from ._numba import njit, njit_inline
from .kernels import check_bank
from .network import GLMParams, Topology, check_param_arrays

FIRST_TO_SPIKE = 0
RATE = 1
DECODERS = {"first_to_spike": FIRST_TO_SPIKE, "rate": RATE}
DETERMINISTIC = {False: 0, True: 1, "threshold": 1, "median": 2, "regular": 3}
"""Spike modes: sampled, threshold (u > 0), median outputs, regular (see :func:`decide`)."""


class Decisions(NamedTuple):
    """What one batched call returns. Shapes use ``B`` (batch), ``N`` neurons, ``T`` steps,
    ``S`` synapses, ``K``/``Kb`` feedforward/feedback bases.

    Attributes:
        action: ``(B,)`` int64 chosen output index.
        t_star: ``(B,)`` int64 last simulated step (0-based); latency is ``t_star + 1`` steps.
        no_spike: ``(B,)`` bool, True when no output spiked and the action was drawn uniformly.
        spikes: ``(B, 3)`` int64 spikes of input, hidden and output neurons up to ``t_star``.
        sops: ``(B,)`` int64 synaptic operations (each spike x fan-out x bases accumulates).
        ll_out: ``(B,)`` learning signal: log-likelihood of the output spikes.
        ll_neuron: ``(B, N)`` log-likelihood of each neuron's spikes up to ``t_star`` (0 for inputs);
            the trajectory's is the sum over hidden and output neurons. Both NaN when the call
            did not score (``score=False`` without ``learn``).
        raster: ``(B, N, T)`` uint8 spikes (zero after ``t_star``).
        potential: ``(B, N, T)`` float64 membrane potentials (zero for inputs and after ``t_star``).
        ew, ev, eg: eligibilities ``(B, S, K)``, ``(B, N, Kb)``, ``(B, N)``; ``None`` unless ``learn``.
    """

    action: np.ndarray
    t_star: np.ndarray
    no_spike: np.ndarray
    spikes: np.ndarray
    sops: np.ndarray
    ll_out: np.ndarray
    ll_neuron: np.ndarray
    raster: np.ndarray
    potential: np.ndarray
    ew: np.ndarray | None
    ev: np.ndarray | None
    eg: np.ndarray | None


@njit_inline
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + np.exp(-x))
    z = np.exp(x)
    return z / (1.0 + z)


@njit_inline
def _push(drive, i, t, horizon, weights, bank):
    """Pushed (general-kernel) path: ``drive[i, t+1+d] += sum_k weights[k] bank[k, d]``."""
    for k in range(bank.shape[0]):
        wk = weights[k]
        for d in range(min(bank.shape[1], horizon)):
            drive[i, t + 1 + d] += wk * bank[k, d]


@njit_inline
def _filter_back(filt, i, err, bank, decay, last):
    """``filt[t', i, k] = sum_d bank[k, d] err[i, t'+1+d]`` for ``t' < last`` (recursive when
    the bank is geometric with ratio ``decay >= 0``)."""
    if decay >= 0.0:  # F(t') = a(0) err(t'+1) + r F(t'+1)
        acc = 0.0
        for tp in range(last - 1, -1, -1):
            acc = bank[0, 0] * err[i, tp + 1] + decay * acc
            filt[tp, i, 0] = acc
        return
    for tp in range(last):
        for k in range(bank.shape[0]):
            acc = 0.0
            for d in range(min(bank.shape[1], last - tp)):
                acc += bank[k, d] * err[i, tp + 1 + d]
            filt[tp, i, k] = acc


@njit_inline
def _peak(potential, bi, row, last):
    peak = -np.inf
    for t in range(last + 1):
        peak = max(peak, potential[bi, t, row])
    return peak


@njit_inline
def _log_p(s, u, p):
    """log P(s | u) from the already computed p = sigmoid(u); stable when saturated."""
    if -30.0 < u < 30.0:
        return np.log(p) if s else np.log1p(-p)
    return _log_sigmoid(u) if s else _log_sigmoid(-u)


@njit_inline
def _softplus(x):
    """log(1 + e^x), stable for any finite x."""
    if x > 0.0:
        return x + np.log1p(np.exp(-x))
    return np.log1p(np.exp(x))


LN2 = np.log(2.0)


@njit_inline
def _log_sigmoid(x):
    # log(sigmoid(x)) = -softplus(-x), stable for any finite x
    if x >= 0.0:
        return -np.log1p(np.exp(-x))
    return x - np.log1p(np.exp(x))


class Net(NamedTuple):
    """The network as the kernel reads it: sizes, synapses in pre-synaptic order (CSR
    ``pre_ptr``/``pre_syn``; ``qpost[q]`` the target of the ``q``-th, ``wq[q]`` its weight times
    ``a(0)`` for geometric kernels), parameters (``w``, ``v``, ``bias``), kernel banks ``a``/``b``
    and their geometric ratios (``-1``: not geometric, traces are pushed)."""

    n_in: int
    n_hid: int
    n_out: int
    pre_ptr: np.ndarray
    pre_syn: np.ndarray
    qpost: np.ndarray
    wq: np.ndarray
    w: np.ndarray
    v: np.ndarray
    bias: np.ndarray
    a: np.ndarray
    b: np.ndarray
    ff_decay: float
    fb_decay: float


class Drive(NamedTuple):
    """What drives a decision: input probabilities ``(B, n_in, T)``, the uniforms of every
    spike draw ``(B, N, T)``, the tie-breakers ``(B,)`` and the clamp (teacher forcing: ``-1``
    free, ``0``/``1`` forced; ``use_clamp`` False: free running)."""

    p_in: np.ndarray
    rand: np.ndarray
    tie: np.ndarray
    clamp: np.ndarray
    use_clamp: bool


class Mode(NamedTuple):
    """Spike mode (sampled, threshold, median outputs, regular), decoder, whether to learn,
    whether to score (the log-likelihoods; ``predict`` does without, they cost a log per
    neuron-step), whether hidden neurons' scores stop before ``t*`` (``causal``) and whether
    learning forms the hidden neurons' eligibilities (``hidden``; without, their entries stay
    0, for an estimator that writes its own)."""

    deterministic: bool
    median_out: bool
    regular: bool
    decoder: int
    learn: bool
    score: bool
    causal: bool
    hidden: bool


class Out(NamedTuple):
    """The caller's output arrays (see :class:`Decisions`); raster and potential time-major
    ``(B, T, N)``; ``ew``/``ev``/``eg`` are the eligibilities (``learn`` only)."""

    raster: np.ndarray
    potential: np.ndarray
    action: np.ndarray
    t_star: np.ndarray
    no_spike: np.ndarray
    spikes: np.ndarray
    sops: np.ndarray
    ll_out: np.ndarray
    ll_neuron: np.ndarray
    ew: np.ndarray
    ev: np.ndarray
    eg: np.ndarray


@njit_inline
def _clear_tail(bi, last, raster, potential, t_star):
    """Cells past the new ``t*`` must read 0: only those the previous decision in slot ``bi``
    wrote can be non-zero (``t_star`` still holds its ``t*``; buffers start zeroed, ``t_star = -1``)."""
    T, N = raster.shape[1], raster.shape[2]
    for t in range(last + 1, min(t_star[bi], T - 1) + 1):
        for i in range(N):
            raster[bi, t, i] = 0
            potential[bi, t, i] = 0.0
    t_star[bi] = last


@njit_inline
def _decode(bi, last, tie, deterministic, decoder, n_out, out0, raster, potential, action, no_spike):
    """Step 3: the output that spiked at ``t*`` (first-to-spike) or most often (rate); ties
    uniform by ``tie`` (deterministic modes: the highest peak potential); no output spike:
    uniform, flagged in ``no_spike`` (deterministic: the highest peak potential)."""
    n_first = 0
    best = -1
    best_u = -np.inf
    if decoder == FIRST_TO_SPIKE:
        for o in range(n_out):
            if raster[bi, last, out0 + o]:
                n_first += 1
    else:
        top = 0
        for o in range(n_out):
            c = 0
            for t in range(last + 1):
                c += raster[bi, t, out0 + o]
            if c > top:
                top = c
                n_first = 1
            elif c == top and c > 0:
                n_first += 1
    if n_first > 0:
        pick = min(int(tie[bi] * n_first), n_first - 1)
        seen = 0
        for o in range(n_out):
            if decoder == FIRST_TO_SPIKE:
                hit = raster[bi, last, out0 + o] == 1
            else:
                c = 0
                for t in range(last + 1):
                    c += raster[bi, t, out0 + o]
                hit = c == top
            if not hit:
                continue
            if deterministic:
                peak = _peak(potential, bi, out0 + o, last)
                if peak > best_u:
                    best_u = peak
                    best = o
            elif seen == pick:
                best = o
            seen += 1
        no_spike[bi] = False
    else:
        no_spike[bi] = True
        if deterministic:
            for o in range(n_out):
                peak = _peak(potential, bi, out0 + o, last)
                if peak > best_u:
                    best_u = peak
                    best = o
        else:
            best = min(int(tie[bi] * n_out), n_out - 1)
    action[bi] = best


@njit_inline
def _count_and_score(bi, last, n_in, out0, prob, raster, potential, spikes, ll_out, ll_neuron, score, causal):
    """Spikes per population up to ``t*`` and (``score``) each neuron's log-likelihood
    ``sum_t log p(s | u)`` (``ll_out``: the outputs', the learning signal; NaN unscored);
    ``causal``: a hidden neuron's sum stops before ``t*`` (no output sees its spikes at ``t*``)."""
    N = raster.shape[2]
    c_in = 0
    c_hid = 0
    c_out = 0
    for t in range(last + 1):
        for i in range(n_in):
            c_in += raster[bi, t, i]
        for i in range(n_in, out0):
            c_hid += raster[bi, t, i]
        for i in range(out0, N):
            c_out += raster[bi, t, i]
    spikes[bi, 0] = c_in
    spikes[bi, 1] = c_hid
    spikes[bi, 2] = c_out
    if not score:
        ll_neuron[bi, :] = np.nan
        ll_out[bi] = np.nan
        return
    for i in range(n_in):
        ll_neuron[bi, i] = 0.0
    l_out = 0.0
    for i in range(n_in, N):  # neuron-major, as the reference sums
        l_i = 0.0
        for t in range(last if causal and i < out0 else last + 1):
            l_i += _log_p(raster[bi, t, i], potential[bi, t, i], prob[t, i])
        ll_neuron[bi, i] = l_i
        if i >= out0:
            l_out += l_i
    ll_out[bi] = l_out


@njit_inline
def _eligibilities(bi, last, n_in, out0, pre_ptr, pre_syn, qpost, a, b, ff_decay, fb_decay, err, prob, filt_a,
                   filt_b, times, raster, ew, ev, eg, causal, hidden):
    """DESIGN.md section 5, event-driven: each post-synaptic error ``err = s - sigmoid(u)``
    filtered backwards by the kernel once, then every synapse of a pre-synaptic neuron that
    spiked written once (``sum`` over its spike times of the filtered error of its target).
    ``causal``: a hidden neuron's error at ``t*`` is 0 (no output sees its spikes at ``t*``).
    Without ``hidden``, only the output neurons' (the hidden entries stay as cleared)."""
    N = raster.shape[2]
    K, Kb = a.shape[0], b.shape[0]
    first = n_in if hidden else out0
    for i in range(first, N):
        acc = 0.0
        stop = last if causal and i < out0 else last + 1
        for t in range(stop):
            e = raster[bi, t, i] - prob[t, i]
            err[i, t] = e
            acc += e
        if stop == last:
            err[i, last] = 0.0
        eg[bi, i] = acc
    for i in range(first, N):
        _filter_back(filt_a, i, err, a, ff_decay, last)
        _filter_back(filt_b, i, err, b, fb_decay, last)
    for j in range(N):
        ns = 0
        for tp in range(last):
            if raster[bi, tp, j]:
                times[ns] = tp
                ns += 1
        if ns == 0:
            continue
        # without ``hidden``, the synapses onto hidden neurons are skipped (their entries stay 0)
        if K == 1 and ns == 1:  # the common case, without the inner loops
            t0 = times[0]
            for q in range(pre_ptr[j], pre_ptr[j + 1]):
                i = qpost[q]
                if i >= first:
                    ew[bi, pre_syn[q], 0] = filt_a[t0, i, 0]
        elif K == 1 and ns == 2:
            t0, t1 = times[0], times[1]
            for q in range(pre_ptr[j], pre_ptr[j + 1]):
                i = qpost[q]
                if i >= first:
                    ew[bi, pre_syn[q], 0] = 0.0 + filt_a[t0, i, 0] + filt_a[t1, i, 0]
        else:
            for q in range(pre_ptr[j], pre_ptr[j + 1]):
                i = qpost[q]
                if i < first:
                    continue
                syn = pre_syn[q]
                for k in range(K):
                    acc = 0.0
                    for m in range(ns):
                        acc += filt_a[times[m], i, k]
                    ew[bi, syn, k] = acc
        if j >= first:
            for k in range(Kb):
                acc = 0.0
                for m in range(ns):
                    acc += filt_b[times[m], j, k]
                ev[bi, j, k] = acc


@njit
def _decide_range(lo, hi, d, m, net, out):
    """Batch elements ``lo..hi-1`` of the groups ``d`` (:class:`Drive`), ``m`` (:class:`Mode`),
    ``net`` (:class:`Net`) and ``out`` (:class:`Out`), one after the other, in one call.

    Per element, in the order of the module docstring: the network's steps up to ``t*``
    (steps 1, 2 and 4, here in the loop: numba counts the references of every array a helper
    receives, on each call, and the steps take twenty), then the helpers: the decoder
    (step 3), the counters and log-likelihoods, the eligibilities (``learn``). The scratch
    buffers are allocated once per call and cleared per element: ``drive`` (pushed future
    input of general kernels, then the post-synaptic errors), ``cur_ff``/``cur_fb``
    (recursive currents of geometric kernels), ``phase`` (deterministic modes: the inputs'
    phase; regular mode: every neuron's), ``prob``, ``filt_*`` (backward-filtered errors),
    ``times``, ``hazard`` (median outputs)."""
    p_in, rand, tie, clamp, use_clamp = d
    deterministic, median_out, regular, decoder, learn, score, causal, hidden = m
    n_in, n_hid, n_out, pre_ptr, pre_syn, qpost, wq, w, v, bias, a, b, ff_decay, fb_decay = net
    raster, potential, action, t_star, no_spike, spikes, sops, ll_out, ll_neuron, ew, ev, eg = out
    _, T, N = raster.shape
    K, Kb = a.shape[0], b.shape[0]
    out0 = n_in + n_hid
    pushed = ff_decay < 0.0 or fb_decay < 0.0  # only the general (pushed) path uses drive
    drive = np.empty((N, T))
    cur_ff = np.empty(N)
    cur_fb = np.empty(N)
    phase = np.empty(N)
    prob = np.empty((T, N))
    filt_a = np.empty((T, N, K))
    filt_b = np.empty((T, N, Kb))
    times = np.empty(T, np.int64)
    hazard = np.empty(n_out)
    # flat views: clearing a row is then one memset (a (S, K) slice is cleared row by row)
    ew_rows = ew.reshape(ew.shape[0], ew.shape[1] * ew.shape[2])
    ev_rows = ev.reshape(ev.shape[0], ev.shape[1] * ev.shape[2])
    for bi in range(lo, hi):
        if learn:
            ew_rows[bi, :] = 0.0
            ev_rows[bi, :] = 0.0
            eg[bi, :] = 0.0
        if pushed:
            drive[:, :] = 0.0
        cur_ff[:] = 0.0
        cur_fb[:] = 0.0
        phase[:] = 0.5
        hazard[:] = 0.0
        n_sops = 0
        last = T - 1
        # --- steps 1, 2, 4: the network until the first output spike (or T) ---------------
        for t in range(T):
            for j in range(n_in):  # every cell up to t* is written; the tail is cleared below
                p = p_in[bi, j, t]  # inputs' potential and prob stay 0 (never written)
                if use_clamp and clamp[bi, j, t] >= 0:
                    raster[bi, t, j] = 1 if clamp[bi, j, t] > 0 else 0
                elif deterministic:
                    phase[j] += p
                    if phase[j] >= 1.0:
                        phase[j] -= 1.0
                        raster[bi, t, j] = 1
                    else:
                        raster[bi, t, j] = 0
                else:
                    raster[bi, t, j] = 1 if rand[bi, j, t] < p else 0
            any_out = False
            for i in range(n_in, N):
                ui = cur_ff[i] + cur_fb[i] + bias[i]
                if pushed:
                    ui += drive[i, t]
                pi = _sigmoid(ui)
                potential[bi, t, i] = ui
                prob[t, i] = pi
                if use_clamp and clamp[bi, i, t] >= 0:
                    s = clamp[bi, i, t] > 0
                elif deterministic:
                    if regular:  # the neuron's expected spikes, evenly spaced (as the inputs')
                        phase[i] += pi
                        s = phase[i] >= 1.0
                        if s:
                            phase[i] -= 1.0
                    elif median_out and i >= out0:  # fire when P(no spike yet) <= 1/2
                        hazard[i - out0] += _softplus(ui)  # = -log(1 - sigmoid(u))
                        s = hazard[i - out0] >= LN2
                        if s:
                            hazard[i - out0] = 0.0
                    else:
                        s = ui > 0.0
                else:
                    s = rand[bi, i, t] < pi
                raster[bi, t, i] = 1 if s else 0
                if s and i >= out0:
                    any_out = True
            if (decoder == FIRST_TO_SPIKE and any_out) or t == T - 1:
                last = t
                break
            horizon = T - 1 - t
            if ff_decay >= 0.0:
                for i in range(n_in, N):
                    cur_ff[i] *= ff_decay
            if fb_decay >= 0.0:
                for i in range(n_in, N):
                    cur_fb[i] *= fb_decay
            for j in range(N):  # step 4: each spike into its targets' traces
                if raster[bi, t, j] == 0:
                    continue
                n_sops += (pre_ptr[j + 1] - pre_ptr[j]) * K
                if ff_decay >= 0.0:
                    for q in range(pre_ptr[j], pre_ptr[j + 1]):
                        cur_ff[qpost[q]] += wq[q]
                else:
                    for q in range(pre_ptr[j], pre_ptr[j + 1]):
                        _push(drive, qpost[q], t, horizon, w[pre_syn[q]], a)
                if j >= n_in:
                    if fb_decay >= 0.0:
                        cur_fb[j] += v[j, 0] * b[0, 0]
                    else:
                        _push(drive, j, t, horizon, v[j], b)
        _clear_tail(bi, last, raster, potential, t_star)
        sops[bi] = n_sops
        # --- step 3, counters, learning signal, eligibilities ---------------------------------
        _decode(bi, last, tie, deterministic, decoder, n_out, out0, raster, potential, action, no_spike)
        _count_and_score(bi, last, n_in, out0, prob, raster, potential, spikes, ll_out, ll_neuron, score, causal)
        if learn:  # drive is reused for the post-synaptic errors
            _eligibilities(bi, last, n_in, out0, pre_ptr, pre_syn, qpost, a, b, ff_decay, fb_decay, drive, prob,
                           filt_a, filt_b, times, raster, ew, ev, eg, causal, hidden)


@njit
def _presynaptic_order(post, pre_syn, w, a):
    """Synapses in pre-synaptic order: ``qpost[q]`` the target of the ``q``-th, ``wq[q]`` its
    weight times ``a(0)`` (read by geometric kernels), so a spike's reads are contiguous."""
    S = pre_syn.shape[0]
    qpost = np.empty(S, np.int64)
    wq = np.empty(S)
    presynaptic_order_into(post, pre_syn, w, a, qpost, wq)
    return qpost, wq


@njit_inline
def presynaptic_order_into(post, pre_syn, w, a, qpost, wq):
    """:func:`_presynaptic_order` into the caller's buffers."""
    for q in range(pre_syn.shape[0]):
        qpost[q] = post[pre_syn[q]]
        wq[q] = w[pre_syn[q], 0] * a[0, 0]


@njit
def _kernel(lo, hi, p_in, rand, tie, clamp, use_clamp, deterministic, median_out, regular, decoder, learn, score,
            causal, hidden, n_in, n_hid, n_out, pre_ptr, pre_syn, post, w, v, bias, a, b, ff_decay, fb_decay,
            raster, potential, action, t_star, no_spike, spikes, sops, ll_out, ll_neuron, ew, ev, eg):
    """Batch elements ``lo..hi-1``; the scratch buffers are the call's own, so calls on
    disjoint ranges can run on separate threads (:func:`batched`). (Plain arguments at the
    Python boundary: numba unboxes arrays faster than named tuples of them; they are grouped
    here, once per call.)"""
    qpost, wq = _presynaptic_order(post, pre_syn, w, a)
    d = Drive(p_in, rand, tie, clamp, use_clamp)
    m = Mode(deterministic, median_out, regular, decoder, learn, score or learn, causal, hidden)
    net = Net(n_in, n_hid, n_out, pre_ptr, pre_syn, qpost, wq, w, v, bias, a, b, ff_decay, fb_decay)
    out = Out(raster, potential, action, t_star, no_spike, spikes, sops, ll_out, ll_neuron, ew, ev, eg)
    _decide_range(lo, hi, d, m, net, out)


THREADED_MIN_BATCH = 32
"""Batches at least this large run on numba's thread count (smaller ones: one thread)."""

_pools: dict = {}


def batched(worker, B: int, *args) -> None:
    """``worker(lo, hi, *args)``, a compiled pass (``nogil``) over batch elements ``lo..hi-1``
    that writes each element's results into ``args``' arrays, over ``0..B-1``: when ``B >=
    THREADED_MIN_BATCH``, in ``numba.get_num_threads()`` contiguous chunks on as many Python
    threads (each call allocates its own scratch and releases the GIL; elements are
    independent and every random number is drawn before, so the bits are those of one call,
    whatever the thread count), else in one call. No OpenMP: waiting threads sleep, so a
    machine whose cores other processes hold loses no more than their share."""
    threads = get_num_threads() if B >= THREADED_MIN_BATCH else 1
    if threads <= 1:
        worker(0, B, *args)
        return
    key = (os.getpid(), threads)  # a forked child inherits the pool but not its threads
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="spikerl")
    per = (B + threads - 1) // threads
    jobs = [pool.submit(worker, lo, min(B, lo + per), *args) for lo in range(per, B, per)]
    worker(0, min(B, per), *args)  # the first chunk on this thread
    for job in jobs:
        job.result()


_DECAY_CACHE: dict = {}


def geometric_decay(bank: np.ndarray, T: int) -> float:
    """``r`` when the bank is one basis ``a(d) = a(0) r^d`` covering every lag of a decision
    (memory >= T - 1), so traces can be run recursively; ``-1`` otherwise (memoised)."""
    key = (bank.shape, bank.tobytes(), T)
    if key not in _DECAY_CACHE:
        if len(_DECAY_CACHE) > 256:
            _DECAY_CACHE.clear()
        _DECAY_CACHE[key] = _geometric_decay(bank, T)
    return _DECAY_CACHE[key]


def _geometric_decay(bank: np.ndarray, T: int) -> float:
    if bank.shape[0] != 1 or bank.shape[1] < T - 1 or bank[0, 0] <= 0:
        return -1.0
    x = bank[0]
    if x.size == 1:
        return 0.0
    r = x[1] / x[0]
    if r < 0 or not np.allclose(x, x[0] * r ** np.arange(x.size), rtol=1e-12, atol=0.0):
        return -1.0
    return float(r)


def _as_batch(name, arr, shape_tail, dtype):
    arr = np.asarray(arr)
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape_tail))}), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


_NO_CLAMP = np.full((1, 1, 1), -1, dtype=np.int8)


class Workspace:
    """Output buffers kept between calls, so a decision loop allocates nothing per call
    (fresh large arrays cost a page fault per 4 KiB, more than the decision itself).

    Arrays returned by :func:`decide` with a workspace are views into it: the next call
    with the same workspace overwrites them.
    """

    def __init__(self):
        self._key = None
        self._bufs = None
        self._ids: set = set()

    def get(self, B: int, N: int, T: int, S: int, K: int, Kb: int, learn: bool) -> dict:
        key = (B, N, T, S, K, Kb, learn)
        if key != self._key:
            self._key = key
            self._bufs = _allocate(B, N, T, S, K, Kb, learn)
            self._ids = {id(b) for b in self._bufs.values()}
        return self._bufs

    def holds(self, x: np.ndarray) -> bool:
        """Whether ``x`` is one of the buffers or a view of one (which the next call overwrites)."""
        return id(x) in self._ids or id(x.base) in self._ids


def _allocate(B, N, T, S, K, Kb, learn) -> dict:
    e = (B, S, K), (B, N, Kb), (B, N)
    if not learn:
        e = (1, 1, 1), (1, 1, 1), (1, 1)
    # raster/potential are kept time-major, (B, T, N), so each step writes one contiguous row
    # (callers see (B, N, T) views); they start zeroed and t_star at -1: the kernel then only
    # clears what a previous decision wrote past the current t*
    return dict(
        uniforms=np.empty((B, N, T)), tie=np.empty(B),
        action=np.empty(B, np.int64), t_star=np.full(B, -1, np.int64), no_spike=np.empty(B, np.bool_),
        spikes=np.empty((B, 3), np.int64), sops=np.empty(B, np.int64), ll_out=np.empty(B), ll_neuron=np.empty((B, N)),
        raster=np.zeros((B, T, N), np.uint8), potential=np.zeros((B, T, N)),
        ew=np.empty(e[0]), ev=np.empty(e[1]), eg=np.empty(e[2]),
    )


def decide(
    topo: Topology,
    params: GLMParams,
    ff_kernel: np.ndarray,
    fb_kernel: np.ndarray,
    p_in: np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    uniforms: np.ndarray | None = None,
    tie: np.ndarray | None = None,
    deterministic: bool | str = False,
    decoder: str = "first_to_spike",
    learn: bool = False,
    clamp: np.ndarray | None = None,
    workspace: Workspace | None = None,
    score: bool = True,
    causal: bool = False,
    hidden_eligibility: bool = True,
) -> Decisions:
    """Run one decision for a batch of ``B`` network states.

    Args:
        topo, params, ff_kernel, fb_kernel: the network (see :mod:`spikerl.network`).
        p_in: ``(B, n_in, T)`` input spike probabilities in ``[0, 1]`` (from an encoder);
            ``T`` is the presentation length.
        rng: the generator that draws the random numbers (unless ``uniforms``/``tie`` given).
        uniforms: ``(B, N, T)`` uniforms in ``[0, 1)`` used for every spike draw.
        tie: ``(B,)`` uniforms used to break ties / draw the action when no output spikes.
        deterministic: ``False`` (sample every spike), ``True`` or ``"threshold"`` (spike
            iff ``u > 0``; inputs fire regularly at rate ``p_in``), or ``"median"``
            (hidden neurons as in threshold mode; an output fires when the probability that
            it has not fired since its last spike drops to 1/2, i.e. when
            ``sum softplus(u) >= log 2``: the median first-spike time of the sampled
            network), or ``"regular"`` (every neuron fires regularly at its probability
            ``sigmoid(u)``, as the regular input code: its phase starts at 1/2, adds
            ``sigmoid(u)`` each step and fires each time it passes 1; the sampled network's
            expected spikes without its noise). Ties go to the output with the highest peak
            potential.
        decoder: ``"first_to_spike"`` (stop at the first output spike) or ``"rate"``
            (run all ``T`` steps, argmax of output spike counts).
        learn: also return eligibilities (and score).
        score: compute the log-likelihoods ``ll_out``/``ll_neuron`` (NaN when ``False`` and not
            learning: ``predict`` does without them, a log per neuron-step, a third of a vote's time).
        clamp: optional ``(B, N, T)`` int8; entries ``0``/``1`` force a neuron's spike
            (teacher forcing; input neurons included), ``-1`` leaves it free.
        workspace: reuse these output buffers (see :class:`Workspace`).
        causal: hidden neurons' log-likelihoods and eligibilities stop before ``t*``: their
            spikes at ``t*`` reach no output before the decision, so their score there is
            noise of mean zero (DESIGN.md section 5); outputs keep every step.
        hidden_eligibility: with ``learn``, also the hidden neurons' eligibilities (``False``:
            their entries are 0 and the output neurons' the same bits; for an estimator that
            forms its own, such as ``hidden_rule="posterior"``).
    """
    a = check_bank(ff_kernel, "ff_kernel")
    b = check_bank(fb_kernel, "fb_kernel")
    params = check_param_arrays(topo, params, a.shape[0], b.shape[0])
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {decoder!r}")
    if deterministic not in DETERMINISTIC:
        raise ValueError(f"deterministic must be True, False, 'threshold', 'median' or 'regular', got {deterministic!r}")
    p_in = np.asarray(p_in)
    if p_in.ndim != 3 or p_in.shape[1] != topo.n_in or p_in.shape[2] < 1:
        raise ValueError(f"p_in must have shape (B, n_in={topo.n_in}, T>=1), got {p_in.shape}")
    p_in = np.ascontiguousarray(p_in, dtype=np.float64)
    if not (p_in.min() >= 0 and p_in.max() <= 1):  # NaN fails both
        raise ValueError("p_in must hold probabilities in [0, 1]")
    B, _, T = p_in.shape
    N = topo.n_neurons
    if uniforms is not None:
        uniforms = _as_batch("uniforms", uniforms, (N, T), np.float64)
        if uniforms.shape[0] != B:
            raise ValueError(f"uniforms must have batch size B={B}, got {uniforms.shape[0]}")
    if tie is not None:
        tie = _as_batch("tie", tie, (), np.float64)
        if tie.shape[0] != B:
            raise ValueError(f"tie must have batch size B={B}, got {tie.shape[0]}")
    if clamp is not None:
        clamp = _as_batch("clamp", clamp, (N, T), np.int8)
        if clamp.shape[0] != B:
            raise ValueError(f"clamp must have batch size B={B}, got {clamp.shape[0]}")
    return _decide_validated(topo, params, a, b, p_in, rng, uniforms, tie, deterministic, decoder, learn, clamp,
                             workspace, score, causal, hidden_eligibility)


def _decide_validated(topo, params, a, b, p_in, rng, uniforms=None, tie=None, deterministic=False,
                      decoder="first_to_spike", learn=False, clamp=None, workspace=None, score=True,
                      causal=False, hidden_eligibility=True) -> Decisions:
    """:func:`decide` after its checks (callers that built their arrays themselves, such as
    :class:`~spikerl.policy.SpikingPolicy`, call this directly). ``hidden_eligibility=False``:
    learning leaves the hidden neurons' eligibility entries 0 (for an estimator that writes them)."""
    B, _, T = p_in.shape
    N, S, K, Kb = topo.n_neurons, topo.n_synapses, a.shape[0], b.shape[0]
    buf = (workspace.get if workspace is not None else _allocate)(B, N, T, S, K, Kb, bool(learn))
    if uniforms is None or tie is None:
        if rng is None:
            raise ValueError("decide needs rng (a numpy Generator) or both uniforms and tie")
        if uniforms is None:
            uniforms = rng.random(out=buf["uniforms"])
        if tie is None:
            tie = rng.random(out=buf["tie"])
    clamp_arr, use_clamp = (_NO_CLAMP, False) if clamp is None else (clamp, True)
    mode = DETERMINISTIC[deterministic]
    batched(
        _kernel, B, p_in, uniforms, tie, clamp_arr, use_clamp, mode > 0, mode == 2, mode == 3, DECODERS[decoder],
        bool(learn),
        bool(score), bool(causal), bool(hidden_eligibility),
        topo.n_in, topo.n_hid, topo.n_out, topo.pre_ptr, topo.pre_syn, topo.post,
        params.w, params.v, params.bias, a, b, geometric_decay(a, T), geometric_decay(b, T),
        buf["raster"], buf["potential"], buf["action"], buf["t_star"], buf["no_spike"], buf["spikes"],
        buf["sops"], buf["ll_out"], buf["ll_neuron"], buf["ew"], buf["ev"], buf["eg"],
    )
    out = Decisions(buf["action"], buf["t_star"], buf["no_spike"], buf["spikes"], buf["sops"], buf["ll_out"],
                    buf["ll_neuron"], buf["raster"].transpose(0, 2, 1), buf["potential"].transpose(0, 2, 1), *((buf["ew"], buf["ev"], buf["eg"]) if learn else (None, None, None)))
    return out
