r"""GLM spiking network: topology, parameters and their initialisation.

Neurons are numbered ``[inputs | hidden | outputs]``. The potential of every non-input
neuron ``i`` is (DESIGN.md section 1)

    u_{i,t} = sum_{j in parents(i)} sum_k w_{i,j,k} xbar_{j,k,t}
              + sum_k v_{i,k} ybar_{i,k,t} + b_i,
    P(s_{i,t} = 1 | past) = sigmoid(u_{i,t}).

``b_i`` is the neuron's bias (DESIGN.md writes it ``gamma_i``; here ``gamma`` is only ever the
discount factor).

The topology is a directed graph given as a boolean mask ``(post, pre)`` over all
neurons. Synapses are stored as a list (``post``, ``pre``) in row-major mask order; the
simulation walks them by pre-synaptic neuron (CSR ``pre_ptr``/``pre_syn``) so the work
of a spike is its fan-out, never the square of the neuron count.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .kernels import check_bank


class Topology(NamedTuple):
    """Who connects to whom. Build it with :func:`topology_from_mask` or a builder."""

    n_in: int
    n_hid: int
    n_out: int
    post: np.ndarray  # int64 (S,): post-synaptic neuron of synapse s
    pre: np.ndarray  # int64 (S,): pre-synaptic neuron of synapse s
    pre_ptr: np.ndarray  # int64 (N+1,): synapses leaving neuron j are pre_syn[pre_ptr[j]:pre_ptr[j+1]]
    pre_syn: np.ndarray  # int64 (S,)

    @property
    def n_neurons(self) -> int:
        return self.n_in + self.n_hid + self.n_out

    @property
    def n_synapses(self) -> int:
        return int(self.post.shape[0])

    def mask(self) -> np.ndarray:
        """The dense boolean ``(post, pre)`` mask this topology was built from."""
        m = np.zeros((self.n_neurons, self.n_neurons), dtype=bool)
        m[self.post, self.pre] = True
        return m

    def fan_out(self) -> np.ndarray:
        """Number of synapses leaving each neuron, ``(N,)``."""
        return np.diff(self.pre_ptr)


class GLMParams(NamedTuple):
    """Learnable parameters (arrays are float64).

    Attributes:
        w: ``(S, K)`` synaptic weight per synapse and feedforward basis.
        v: ``(N, Kb)`` self-feedback weight per neuron and feedback basis (rows of
           input neurons are unused).
        bias: ``(N,)`` bias per neuron (entries of input neurons are unused).
    """

    w: np.ndarray
    v: np.ndarray
    bias: np.ndarray

    @property
    def gamma(self) -> np.ndarray:
        """Deprecated name of :attr:`bias` (``gamma`` is the discount factor elsewhere)."""
        warnings.warn("GLMParams.gamma is now GLMParams.bias; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return self.bias


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def topology_from_edges(n_in: int, n_hid: int, n_out: int, post, pre) -> Topology:
    """Build a topology from synapse lists (for large sparse networks)."""
    n_in = _check_count(n_in, "n_in", 1)
    n_hid = _check_count(n_hid, "n_hid", 0)
    n_out = _check_count(n_out, "n_out", 1)
    n = n_in + n_hid + n_out
    post = np.asarray(post, dtype=np.int64).ravel()
    pre = np.asarray(pre, dtype=np.int64).ravel()
    if post.shape != pre.shape:
        raise ValueError(f"post and pre must have the same length, got {post.shape} and {pre.shape}")
    if post.size and (post.min() < 0 or post.max() >= n or pre.min() < 0 or pre.max() >= n):
        raise ValueError(f"synapse indices must lie in [0, {n}) for {n} neurons")
    if np.any(post < n_in):
        raise ValueError("mask: input neurons (the first n_in rows) are clamped and cannot receive synapses")
    if np.any(post == pre):
        raise ValueError("mask: self-connections belong to the feedback weights v, not the mask diagonal")
    order = np.lexsort((pre, post))
    post, pre = post[order], pre[order]
    if post.size > 1 and np.any((np.diff(post) == 0) & (np.diff(pre) == 0)):
        raise ValueError("mask: duplicate synapses")
    pre_syn = np.argsort(pre, kind="stable").astype(np.int64)
    pre_ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(pre_ptr, pre + 1, 1)
    pre_ptr = np.cumsum(pre_ptr)
    return Topology(n_in, n_hid, n_out, post, pre, pre_ptr, pre_syn)


def topology_from_mask(n_in: int, n_hid: int, n_out: int, mask) -> Topology:
    """Build a topology from a boolean ``(post, pre)`` mask over all neurons."""
    n = _check_count(n_in, "n_in", 1) + _check_count(n_hid, "n_hid", 0) + _check_count(n_out, "n_out", 1)
    mask = np.asarray(mask)
    if mask.shape != (n, n):
        raise ValueError(
            f"mask must have shape (n_neurons, n_neurons) = ({n}, {n}) for "
            f"n_in={n_in}, n_hid={n_hid}, n_out={n_out}; got {mask.shape}"
        )
    if mask.dtype != bool:
        if not np.all(np.isin(mask, (0, 1))):
            raise ValueError("mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    post, pre = np.nonzero(mask)
    return topology_from_edges(n_in, n_hid, n_out, post, pre)


def _block(n, rows: slice, cols: slice, p: float, rng: np.random.Generator, mask: np.ndarray):
    sub = rng.random((rows.stop - rows.start, cols.stop - cols.start)) < p if p < 1 else True
    mask[rows, cols] |= sub


def layered(
    n_in: int,
    n_hid: int,
    n_out: int,
    *,
    skip: bool = False,
    recurrent: bool = False,
    feedback: bool = False,
    p_connect: float = 1.0,
    seed: int | None = 0,
) -> Topology:
    """The common topologies: input -> hidden -> output.

    Args:
        skip: add input -> output synapses.
        recurrent: add hidden -> hidden synapses (no self-loops; those are ``v``).
        feedback: add output -> hidden synapses.
        p_connect: probability that each allowed synapse exists (``1`` = dense blocks).
        seed: seed of the sparse draw.
    With ``n_hid == 0`` the network is input -> output.
    """
    n_in = _check_count(n_in, "n_in", 1)
    n_hid = _check_count(n_hid, "n_hid", 0)
    n_out = _check_count(n_out, "n_out", 1)
    if not 0 < p_connect <= 1:
        raise ValueError(f"p_connect must be in (0, 1], got {p_connect!r}")
    n = n_in + n_hid + n_out
    rng = np.random.default_rng(seed)
    inp, hid, out = slice(0, n_in), slice(n_in, n_in + n_hid), slice(n_in + n_hid, n)
    mask = np.zeros((n, n), dtype=bool)
    if n_hid == 0:
        _block(n, out, inp, p_connect, rng, mask)
    else:
        _block(n, hid, inp, p_connect, rng, mask)
        _block(n, out, hid, p_connect, rng, mask)
        if skip:
            _block(n, out, inp, p_connect, rng, mask)
        if recurrent:
            _block(n, hid, hid, p_connect, rng, mask)
        if feedback:
            _block(n, hid, out, p_connect, rng, mask)
    np.fill_diagonal(mask, False)
    return topology_from_mask(n_in, n_hid, n_out, mask)


def sparse_layered(n_in: int, n_hid: int, n_out: int, *, fan_in: int, seed: int | None = 0) -> Topology:
    """input -> hidden -> output where every hidden and output neuron has ``fan_in`` random
    parents in the layer below (no dense mask is built: cost is O(synapses))."""
    rng = np.random.default_rng(seed)
    fan_in = _check_count(fan_in, "fan_in", 1)
    posts, pres = [], []
    for post0, n_post, pre0, n_pre in ((n_in, n_hid, 0, n_in), (n_in + n_hid, n_out, n_in, n_hid)):
        k = min(fan_in, n_pre)
        for i in range(n_post):
            posts.append(np.full(k, post0 + i))
            pres.append(pre0 + rng.choice(n_pre, size=k, replace=False))
    return topology_from_edges(n_in, n_hid, n_out, np.concatenate(posts), np.concatenate(pres))


def init_params(
    topo: Topology,
    n_basis: int,
    n_fb_basis: int,
    *,
    rng: np.random.Generator,
    w_scale: float = 1.0,
    v_init: float = -1.0,
    bias_hidden: float = -1.0,
    bias_out: float = -2.0,
    **deprecated,
) -> GLMParams:
    """Documented initialisation.

    - ``w[s, k] ~ Normal(0, (w_scale / sqrt(fan_in(post_s) * K))^2)``: every neuron's
      summed input has a spread of about ``w_scale`` when all its parents fire once.
    - ``v[i, k] = v_init / Kb`` (negative: refractoriness after a spike).
    - ``bias = bias_hidden`` for hidden and ``bias_out`` for output neurons (the
      spontaneous firing probability is ``sigmoid(bias)``); inputs are 0. The old names
      ``gamma_hidden``/``gamma_out`` are accepted for one release, with a DeprecationWarning.
    """
    for old, new in (("gamma_hidden", "bias_hidden"), ("gamma_out", "bias_out")):
        if old in deprecated:
            warnings.warn(f"init_params: {old} is now {new}", DeprecationWarning, stacklevel=2)
            value = deprecated.pop(old)
            bias_hidden, bias_out = (value, bias_out) if new == "bias_hidden" else (bias_hidden, value)
    if deprecated:
        raise TypeError(f"init_params() got unexpected keyword argument(s) {sorted(deprecated)}")
    n = topo.n_neurons
    fan_in = np.bincount(topo.post, minlength=n).astype(np.float64)
    std = w_scale / np.sqrt(np.maximum(fan_in[topo.post], 1.0) * n_basis)
    w = rng.standard_normal((topo.n_synapses, n_basis)) * std[:, None]
    v = np.full((n, n_fb_basis), v_init / n_fb_basis)
    v[: topo.n_in] = 0.0
    bias = np.zeros(n)
    bias[topo.n_in : topo.n_in + topo.n_hid] = bias_hidden
    bias[topo.n_in + topo.n_hid :] = bias_out
    return GLMParams(w, v, bias)


def check_params(topo: Topology, params: GLMParams, ff_kernel, fb_kernel) -> GLMParams:
    """Validate shapes/dtypes of ``params`` against a topology and its kernel banks."""
    a = check_bank(ff_kernel, "ff_kernel")
    b = check_bank(fb_kernel, "fb_kernel")
    return check_param_arrays(topo, params, a.shape[0], b.shape[0])


def check_param_arrays(topo: Topology, params: GLMParams, n_ff_bases: int, n_fb_bases: int) -> GLMParams:
    """:func:`check_params` for banks already checked (``K``/``Kb`` bases): shapes and dtypes;
    returns float64 C-contiguous arrays (the given ones when they already are)."""
    n, s = topo.n_neurons, topo.n_synapses
    expected = {"w": (s, n_ff_bases), "v": (n, n_fb_bases), "bias": (n,)}
    out = []
    for name, value in zip(GLMParams._fields, params):
        if type(value) is np.ndarray and value.dtype == np.float64 and value.flags.c_contiguous \
                and value.shape == expected[name]:
            out.append(value)  # the common case, without numpy's slower generic checks
            continue
        arr = np.asarray(value)
        if arr.shape != expected[name]:
            raise ValueError(f"params.{name} must have shape {expected[name]} (synapses/neurons x bases), got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"params.{name} must be a float array, got dtype {arr.dtype}")
        out.append(np.ascontiguousarray(arr, dtype=np.float64))
    return GLMParams(*out)
