"""The compiled single-observation ``predict``: encoder and decision in one numba call.

``SpikingAgent.predict`` on one observation (or a batch of one, as SB3's ``evaluate_policy``
passes it) spends most of its time in the numpy calls around the kernel (bounds, clipping,
the temporal code, the vote), not in the kernel. :class:`SinglePredictor` does all of it in
one compiled call into buffers it keeps, drawing the random numbers from the agent's
``predict_rng`` exactly as the batched path does (one ``(K, N, T)`` block of uniforms, then
``K`` tie-breakers), so it returns the same action, counts the same spikes and leaves the
generator in the same state, bit for bit (``tests/test_fastpath.py`` checks this for every
feature map, both temporal codes and every decision mode).

One compiled call (``_predict_one``) does, in order, into buffers built once: the
observation's features (normalized or population code of a Box, with the encoder's bounds
computed from its running statistics exactly as :meth:`~spikerl.coding.Encoder.bounds`
computes them; one-hot or tile of a Discrete; one-hot per component of a MultiDiscrete), the
temporal code into ``p_in`` (``K`` equal rows), the kernel's ``_decide_range`` over the ``K``
rows, then the action (the single decision, or the majority of the ``K`` samples, lowest
index on a tie as ``argmax``) and the agent's ``predict_stats`` (decisions, spikes per
population, synaptic operations, latency; a vote adds up its samples and takes the slowest
latency).

The random numbers are drawn before the call; anything the call cannot encode (a non-finite
value, an index outside the space) gives them back (``bit_generator.advance`` by minus their
number) and returns ``None``, and the agent falls back to the batched path, which raises the
error that names it.
"""
from __future__ import annotations

import numpy as np

from ._numba import njit, njit_inline
from .coding import (CODE_IDS, BoxFeatures, ComponentOneHotFeatures, NormalizedFeatures, OneHotFeatures,
                     PopulationFeatures, project_fields)
from .engine import (_NO_CLAMP, DECODERS, DETERMINISTIC, Drive, Mode, Net, Out, Workspace, _decide_range,
                     geometric_decay, presynaptic_order_into)

# feature maps of the compiled encoder
NORMALIZED, POPULATION, ONEHOT, MULTI_ONEHOT = 0, 1, 2, 3
TIME_CODE, REGULAR_CODE = CODE_IDS["time"], CODE_IDS["regular"]  # any other code: rate
FEATURE_KIND = ((NormalizedFeatures, NORMALIZED), (PopulationFeatures, POPULATION), (OneHotFeatures, ONEHOT),
                (ComponentOneHotFeatures, MULTI_ONEHOT))
"""Feature-map classes (tile features are one-hot features with their own index) -> compiled encoder."""


@njit_inline
def _encode_one(x, kind, fixed, fixed_low, fixed_high, space_low, space_high, mean, m2, count, n_std,
                centres, inv_width, proj, index_of, offset, nvec, start, p_max, code, f_min, f, p_in):
    """Features of one observation ``x`` (into ``f``) into every row of ``p_in`` ``(K, n_in, T)``
    (``proj``: the population code's random directions, ``(0, d)`` for none).
    Returns ``False`` (nothing written that matters) when ``x`` is not finite or not in the space."""
    K, n_in, T = p_in.shape
    f[:] = 0.0
    if kind == NORMALIZED or kind == POPULATION:
        d = x.shape[0]
        for j in range(d):
            if not np.isfinite(x[j]):
                return False
        M = centres.shape[0]
        zc = np.empty(d)
        for j in range(d):
            if fixed[j]:
                low, high = fixed_low[j], fixed_high[j]
            else:  # Encoder.bounds, element by element
                std = np.sqrt(m2[j] / max(count, 1.0)) + 1e-8
                spread = max(n_std * std, 1e-3)
                low = min(max(mean[j] - spread, space_low[j]), space_high[j] - 1e-3)
                high = min(max(mean[j] + spread, low + 1e-3), space_high[j])
            z = (min(max(x[j], low), high) - low) / (high - low)
            if kind == NORMALIZED:
                f[j] = z
            else:
                for m in range(M):
                    e = (z - centres[m]) * inv_width
                    f[j * M + m] = np.exp(-0.5 * e * e)
                zc[j] = 2.0 * z - 1.0
        project_fields(zc, proj, centres, inv_width, f, d * M)  # as coding._projected_fields
    elif kind == ONEHOT:
        s = x[0] - start[0]
        if not (s >= 0 and s < index_of.shape[0] and s == np.floor(s)):
            return False
        f[index_of[int(s)]] = 1.0
    else:
        for c in range(x.shape[0]):
            s = x[c] - start[c]
            if not (s >= 0 and s < nvec[c] and s == np.floor(s)):
                return False
            f[offset[c] + int(s)] = 1.0
    for j in range(n_in):
        if code == TIME_CODE:
            tj = int(np.rint((1.0 - f[j]) * (T - 1))) if f[j] >= f_min else -1
            for t in range(T):
                p = 1.0 if t == tj else 0.0
                for k in range(K):
                    p_in[k, j, t] = p
        elif code == REGULAR_CODE:  # coding.RegularCode, element by element
            r = p_max * f[j]
            for t in range(T):
                p = np.floor(0.5 + (t + 1.0) * r) - np.floor(0.5 + t * r)
                for k in range(K):
                    p_in[k, j, t] = p
        else:
            p = p_max * f[j]
            for k in range(K):
                for t in range(T):
                    p_in[k, j, t] = p
    return True


@njit
def _predict_one(x, kind, fixed, fixed_low, fixed_high, space_low, space_high, mean, m2, count, n_std,
                 centres, inv_width, proj, index_of, offset, nvec, start, p_max, code, f_min, f, p_in,
                 rand, tie, no_clamp, deterministic, median_out, regular, decoder, vote,
                 n_in, n_hid, n_out, pre_ptr, pre_syn, post, w, v, bias, a, b, ff_decay, fb_decay, qpost, wq,
                 raster, potential, action, t_star, no_spike, spikes, sops, ll_out, ll_neuron, ew, ev, eg,
                 counts, stats):
    """Encode ``x``, run the ``K`` decisions of ``p_in`` and return the action index (the
    single decision, or the majority of the ``K``), adding the figures to ``stats``; ``-1``
    when ``x`` cannot be encoded (nothing counted). Every buffer is the caller's."""
    if not _encode_one(x, kind, fixed, fixed_low, fixed_high, space_low, space_high, mean, m2, count, n_std,
                       centres, inv_width, proj, index_of, offset, nvec, start, p_max, code, f_min, f, p_in):
        return -1
    K = p_in.shape[0]
    presynaptic_order_into(post, pre_syn, w, a, qpost, wq)
    _decide_range(0, K, Drive(p_in, rand, tie, no_clamp, False),
                  Mode(deterministic, median_out, regular, decoder, False, False, False, False),
                  Net(n_in, n_hid, n_out, pre_ptr, pre_syn, qpost, wq, w, v, bias, a, b, ff_decay, fb_decay),
                  Out(raster, potential, action, t_star, no_spike, spikes, sops, ll_out, ll_neuron, ew, ev, eg))
    if vote:
        counts[:] = 0
        for k in range(K):
            counts[action[k]] += 1
        chosen = 0
        for o in range(1, n_out):
            if counts[o] > counts[chosen]:
                chosen = o
    else:
        chosen = action[0]
    stats[0] += 1.0
    latency = 0
    for k in range(K):
        for c in range(3):
            stats[1 + c] += spikes[k, c]
        stats[4] += sops[k]
        latency = max(latency, t_star[k] + 1)
    stats[5] += latency
    return chosen


class SinglePredictor:
    """Compiled ``predict`` for one observation of a :class:`~spikerl.policy.SpikingPolicy`.

    Built once per policy and decision mode (``vote`` samples ``vote_samples`` decisions and
    takes the majority; ``False``, ``True``/``"threshold"``, ``"median"`` and ``"regular"`` are the kernel's
    modes); holds the buffers the call writes (workspace, features, synapse order, vote
    counts). The kernel's own working buffers stay allocated inside the compiled call (nine
    small arrays): handed in from outside, the kernel ran 2-6% slower, since the compiler can
    no longer assume they do not overlap the outputs.
    """

    def __init__(self, policy, mode, vote_samples: int):
        enc, topo = policy.encoder, policy.topo
        self.policy, self.encoder = policy, enc
        self.vote = mode == "vote"
        K = int(vote_samples) if self.vote else 1
        kernel_mode = 0 if self.vote else DETERMINISTIC[mode]
        self.deterministic, self.median_out, self.regular = kernel_mode > 0, kernel_mode == 2, kernel_mode == 3
        self.decoder = DECODERS[policy.decoder]
        fm = enc.feature_map
        self.kind = next(kind for cls, kind in FEATURE_KIND if isinstance(fm, cls))
        N, T, S = topo.n_neurons, enc.T, topo.n_synapses
        self.buf = Workspace().get(K, N, T, S, policy.ff_kernel.shape[0], policy.fb_kernel.shape[0], False)
        self.p_in = np.zeros((K, topo.n_in, T))
        self.features = np.zeros(topo.n_in)
        self.qpost, self.wq = np.empty(S, np.int64), np.empty(S)
        self.counts = np.zeros(topo.n_out, np.int64)
        self.n_draws = K * N * T + K
        self.stats = np.zeros(6)
        self.ff_decay = geometric_decay(policy.ff_kernel, T)
        self.fb_decay = geometric_decay(policy.fb_kernel, T)
        z1, zi, zb = np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.bool_)
        box = isinstance(fm, BoxFeatures)
        self.fixed = fm.fixed if box else zb
        self.fixed_low, self.fixed_high = (fm.fixed_low, fm.fixed_high) if box else (z1, z1)
        self.space_low, self.space_high = (fm.space_low, fm.space_high) if box else (z1, z1)
        self.centres = fm.centres if self.kind == POPULATION else z1
        self.inv_width = fm.inv_width if self.kind == POPULATION else 1.0
        self.proj = fm.proj if self.kind == POPULATION else np.zeros((0, 1))
        self.index_of = fm.index_of if self.kind == ONEHOT else zi
        self.offset = fm.offset if self.kind == MULTI_ONEHOT else zi
        self.nvec = fm.nvec if self.kind == MULTI_ONEHOT else zi
        self.start = np.atleast_1d(np.asarray(fm.start, np.float64)) if not box else z1
        self.shape = (1,) if self.kind == ONEHOT else tuple(int(s) for s in (fm.space.shape if box else fm.nvec.shape))
        self.size = int(np.prod(self.shape))
        self.n_std = fm.n_std if box else 0.0
        self.code = CODE_IDS[enc.code]
        self._theta, self._topo = policy.theta, topo

    def valid_for(self, policy) -> bool:
        """Still the policy it was built for (``load`` replaces theta and topology)."""
        return policy.theta is self._theta and policy.topo is self._topo and policy.encoder is self.encoder

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, predict_stats: np.ndarray) -> int | None:
        """The action index for one observation ``obs`` (already shaped like the space's
        sample; ``(1, *shape)`` is accepted too), or ``None`` when this path cannot encode it."""
        x = obs.reshape(-1)
        if x.size != self.size:
            return None
        if x.dtype != np.float64:
            x = x.astype(np.float64)
        enc, pol, buf = self.encoder, self.policy, self.buf
        if self.kind <= POPULATION:
            st = enc.feature_map.stats
            mean, m2, count = st.mean, st.m2, st.count
        else:
            mean, m2, count = self.space_low, self.space_low, 0.0
        # the same draws, in the same order, as the batched path: uniforms (K, N, T), then ties (K,)
        rng.random(out=buf["uniforms"])
        rng.random(out=buf["tie"])
        p, topo = pol.params, pol.topo
        chosen = _predict_one(
            x, self.kind, self.fixed, self.fixed_low, self.fixed_high, self.space_low, self.space_high, mean, m2,
            float(count), self.n_std, self.centres, self.inv_width, self.proj, self.index_of, self.offset, self.nvec,
            self.start, enc.p_max, self.code, enc.f_min, self.features, self.p_in, buf["uniforms"], buf["tie"],
            _NO_CLAMP,
            self.deterministic, self.median_out, self.regular, self.decoder, self.vote, topo.n_in, topo.n_hid, topo.n_out,
            topo.pre_ptr, topo.pre_syn, topo.post, p.w, p.v, p.bias, pol.ff_kernel, pol.fb_kernel, self.ff_decay,
            self.fb_decay, self.qpost, self.wq, buf["raster"], buf["potential"], buf["action"], buf["t_star"],
            buf["no_spike"], buf["spikes"], buf["sops"], buf["ll_out"], buf["ll_neuron"], buf["ew"], buf["ev"],
            buf["eg"], self.counts, predict_stats)
        if chosen < 0:  # not encodable here: the draws are given back and the batched path names the problem
            rng.bit_generator.advance(-self.n_draws)  # PCG64 (default_rng) steps back as well as forward
            return None
        return chosen


__all__ = ["SinglePredictor"]
