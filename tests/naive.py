"""Slow, obvious numpy twin of :func:`spikerl.engine.decide` (and a log-probability).

Dense and step by step, straight from the equations of DESIGN.md section 1 and 5: the
traces are recomputed from the raster at every step, the potential is a dense
weight-tensor product, and the eligibility is accumulated as ``err_t * xbar_t`` each step.
Nothing is shared with the compiled kernel but the random draws it is given.
"""
from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def dense_weights(topo, params):
    n = topo.n_neurons
    W = np.zeros((n, n, params.w.shape[1]))
    W[topo.post, topo.pre, :] = params.w
    return W


def traces(raster, t, bank):
    """xbar[j, k] = sum_{d >= 0} bank[k, d] * raster[j, t-1-d]."""
    K, D = bank.shape
    x = np.zeros((raster.shape[0], K))
    for d in range(min(D, t)):
        x += raster[:, t - 1 - d][:, None] * bank[None, :, d]
    return x


def naive_decide(topo, params, a, b, p_in, uniforms, tie, *, deterministic=False, decoder="first_to_spike", clamp=None,
                 deterministic_outputs="threshold"):
    """The kernel's sections, the obvious way: :func:`steps` (DESIGN.md section 1, with the
    eligibilities of section 5 summed forward), :func:`decode` and :func:`counts`."""
    B = p_in.shape[0]
    N = topo.n_neurons
    n_in, out0 = topo.n_in, topo.n_in + topo.n_hid
    W = dense_weights(topo, params)
    mask = topo.mask()
    res = {k: [] for k in ("action", "t_star", "no_spike", "spikes", "sops", "ll_out", "ll_neuron", "raster", "potential", "ew", "ev", "eg")}
    for bi in range(B):
        s, u, last, eW, ev, eg, ll_out, ll_neuron = steps(
            topo, params, W, a, b, p_in[bi], uniforms[bi], None if clamp is None else clamp[bi], deterministic,
            deterministic_outputs, decoder)
        action, no_spike = decode(s[out0:, : last + 1], u[out0:, : last + 1], tie[bi], deterministic, decoder)
        spikes, sops = counts(topo, s, last, a.shape[0])
        res["action"].append(action)
        res["t_star"].append(last)
        res["no_spike"].append(no_spike)
        res["spikes"].append(spikes)
        res["sops"].append(sops)
        res["ll_out"].append(ll_out)
        res["ll_neuron"].append(ll_neuron)
        res["raster"].append(s)
        res["potential"].append(u)
        res["ew"].append((eW * mask[:, :, None])[topo.post, topo.pre, :])
        res["ev"].append(ev * (np.arange(N) >= n_in)[:, None])
        res["eg"].append(eg)
    return {k: np.array(v) for k, v in res.items()}


def steps(topo, params, W, a, b, p_in, uniforms, clamp, deterministic, deterministic_outputs, decoder):
    """One element's network until the first output spike (or T): raster ``s`` and potential
    ``u`` ``(N, T)``, ``t*``, and, accumulated step by step, ``err_t * xbar_t`` (the
    eligibilities) and each neuron's log-likelihood."""
    n_in, T = p_in.shape
    N, n_out = topo.n_neurons, topo.n_out
    out0 = topo.n_in + topo.n_hid
    s = np.zeros((N, T))
    u = np.zeros((N, T))
    eW = np.zeros_like(W)
    ev = np.zeros_like(params.v)
    eg = np.zeros(N)
    ll_out = 0.0
    ll_neuron = np.zeros(N)
    phase = np.full(n_in, 0.5)
    hazard = np.zeros(n_out)  # median outputs: -log P(no spike since the last one)
    nphase = np.full(N, 0.5)  # regular mode: each neuron's phase
    last = T - 1
    for t in range(T):
        if deterministic:  # regular firing; a clamped input's phase stands still
            free_in = np.ones(n_in, bool) if clamp is None else clamp[:n_in, t] < 0
            phase += np.where(free_in, p_in[:, t], 0.0)
            s[:n_in, t] = free_in & (phase >= 1.0)
            phase -= s[:n_in, t]
        else:
            s[:n_in, t] = uniforms[:n_in, t] < p_in[:, t]
        if clamp is not None:
            s[:n_in, t] = np.where(clamp[:n_in, t] >= 0, clamp[:n_in, t] > 0, s[:n_in, t])
        xbar = traces(s, t, a)
        ybar = traces(s, t, b)
        ut = np.einsum("ijk,jk->i", W, xbar) + (params.v * ybar).sum(1) + params.bias
        ut[:n_in] = 0.0
        u[:, t] = ut
        p = sigmoid(ut)
        st = (ut > 0) if deterministic else (uniforms[:, t] < p)
        if deterministic and deterministic_outputs == "median":
            free = np.ones(n_out, bool) if clamp is None else clamp[out0:, t] < 0
            hazard[free] += np.logaddexp(0.0, ut[out0:][free])  # -log(1 - sigmoid(u)) = softplus(u)
            fire = free & (hazard >= np.log(2.0))
            st[out0:] = np.where(free, fire, st[out0:])
            hazard[fire] = 0.0
        if deterministic and deterministic_outputs == "regular":
            free = np.arange(N) >= n_in
            if clamp is not None:
                free &= clamp[:, t] < 0
            nphase[free] += p[free]
            fire = free & (nphase >= 1.0)
            st = np.where(free, fire, st)
            nphase[fire] -= 1.0
        if clamp is not None:
            st = np.where(clamp[:, t] >= 0, clamp[:, t] > 0, st)
        s[n_in:, t] = st[n_in:]
        err = np.zeros(N)
        err[n_in:] = s[n_in:, t] - p[n_in:]
        eW += err[:, None, None] * xbar[None, :, :]
        ev += err[:, None] * ybar
        eg += err
        lp = np.where(s[:, t] > 0, log_sigmoid(ut), log_sigmoid(-ut))
        ll_out += lp[out0:].sum()
        ll_neuron[n_in:] += lp[n_in:]
        if decoder == "first_to_spike" and s[out0:, t].any():
            last = t
            break
    return s, u, last, eW, ev, eg, ll_out, ll_neuron


def decode(outs, u_out, tie, deterministic, decoder):
    """The action from the outputs' raster and potential up to ``t*``, and whether none spiked."""
    n_out, steps_ = outs.shape
    if decoder == "first_to_spike":
        hits = np.flatnonzero(outs[:, steps_ - 1])
    else:
        c = outs.sum(1)
        hits = np.flatnonzero(c == c.max()) if c.max() > 0 else np.array([], int)
    peak = u_out.max(1)
    if len(hits):
        if deterministic:
            return hits[np.argmax(peak[hits])], False
        return hits[min(int(tie * len(hits)), len(hits) - 1)], False
    return (int(np.argmax(peak)) if deterministic else min(int(tie * n_out), n_out - 1)), True


def counts(topo, s, last, K):
    """Spikes per population up to ``t*`` and synaptic operations (spikes before ``t*`` x fan-out x bases)."""
    n_in, out0 = topo.n_in, topo.n_in + topo.n_hid
    fan_out = topo.fan_out()
    sops = int(sum(s[j, t] * fan_out[j] for j in range(topo.n_neurons) for t in range(last))) * K
    return [s[:n_in, : last + 1].sum(), s[n_in:out0, : last + 1].sum(), s[out0:, : last + 1].sum()], sops


def log_prob(topo, w, v, bias, a, b, raster, last):
    """log P of a given spike trajectory (non-input neurons, steps 0..last) under (w, v, bias)."""
    n_in = topo.n_in
    N = topo.n_neurons
    W = np.zeros((N, N, w.shape[1]))
    W[topo.post, topo.pre, :] = w
    total = 0.0
    for t in range(last + 1):
        ut = np.einsum("ijk,jk->i", W, traces(raster, t, a)) + (v * traces(raster, t, b)).sum(1) + bias
        lp = np.where(raster[:, t] > 0, log_sigmoid(ut), log_sigmoid(-ut))
        total += lp[n_in:].sum()
    return total
