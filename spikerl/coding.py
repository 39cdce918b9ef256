r"""Encoding observations into input spike probabilities (DESIGN.md section 3).

An encoder is two choices:

- a **feature map** from one observation to values ``f`` in ``[0, 1]``, one per input
  neuron: ``normalized`` (one neuron per dimension, ``(x - low)/(high - low)``),
  ``population`` (``M`` Gaussian receptive fields per dimension,
  ``f = exp(-((x - c_m)/width)^2 / 2)``), ``onehot`` (``Discrete`` observations; for
  ``MultiDiscrete`` or a ``Tuple`` of ``Discrete`` one group of neurons per component) or
  ``tile`` (a ``Discrete`` grid position, one neuron per tile of a chosen size); ``auto``
  picks ``population`` for a Box and ``onehot`` for the discrete spaces;
- a **temporal code** over ``T`` steps: ``rate`` (Bernoulli with ``p = p_max f`` every
  step), ``regular`` (the same rate ``r = p_max f`` without the noise: a spike at step ``t``
  iff ``floor(1/2 + (t+1) r) > floor(1/2 + t r)``, the spikes of a phase that starts at 1/2
  and fires each time it passes 1) or ``time`` (latency: one spike at
  ``t = round((1 - f)(T - 1))``, earlier for larger values, none when ``f < f_min``).

Bounds for the Box features come from a finite observation space, else from a given
range (the env's YAML), else from running statistics (``mean +- n_std * std``). Values
outside the bounds are clipped; NaN or inf is a ``ValueError`` naming the dimension.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ._numba import njit, njit_inline

FEATURES = ("auto", "normalized", "population", "onehot", "tile")
CODES = ("rate", "time", "regular")
CODE_IDS = {code: i for i, code in enumerate(CODES)}
"""Temporal code -> the number the compiled encoder (``fastpath``) and the C export branch on."""


def discrete_components(space):
    """``(nvec, start)`` of a MultiDiscrete space or a Tuple of Discrete spaces, else None."""
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.nvec, np.int64).ravel(), np.asarray(space.start, np.int64).ravel()
    if isinstance(space, spaces.Tuple) and space.spaces and all(isinstance(x, spaces.Discrete) for x in space.spaces):
        return (np.array([x.n for x in space.spaces], np.int64), np.array([x.start for x in space.spaces], np.int64))
    return None


def obs_shape(space) -> tuple:
    """The array shape of one observation (a Tuple of Discrete is held as ``(n_components,)``)."""
    return (len(space.spaces),) if isinstance(space, spaces.Tuple) else space.shape


def obs_array(space, obs) -> np.ndarray:
    """An observation (or a batch) as an array: Tuple observations, single or batched by a
    vector env, become ``(n_components,)`` / ``(B, n_components)``."""
    if isinstance(space, spaces.Tuple) and isinstance(obs, tuple):
        return np.stack([np.asarray(c) for c in obs], axis=-1)
    return np.asarray(obs)


@njit
def _gaussian_fields(x, low, high, centres, inv_width, out):
    """Population code of validated, finite ``x`` ``(B, d)`` into the first ``d*M`` columns of ``out``."""
    B, d = x.shape
    M = centres.shape[0]
    for bi in range(B):
        for j in range(d):
            z = (min(max(x[bi, j], low[j]), high[j]) - low[j]) / (high[j] - low[j])
            for m in range(M):
                e = (z - centres[m]) * inv_width
                out[bi, j * M + m] = np.exp(-0.5 * e * e)
    return out


PROJECTION_SEED = 7919
"""Seed of the fixed random directions of :func:`projection_matrix` (a design constant, as
the fields' centres: every agent with the same observation size sees the same directions)."""


def projection_matrix(n: int, obs_dim: int) -> np.ndarray:
    """``n`` fixed random directions ``(n, obs_dim)`` of the centred normalized observation
    ``2 z - 1``: standard normal entries over ``sqrt(obs_dim)``, so a projection spreads about
    as one centred dimension does (within the bounds, ``mean +- 3 std``, it stays in ``[-1, 1]``
    for the most part). Drawn from :data:`PROJECTION_SEED`."""
    return np.random.default_rng(PROJECTION_SEED).standard_normal((n, obs_dim)) / np.sqrt(obs_dim)


@njit_inline
def project_fields(zc, proj, centres, inv_width, out, first):
    """The fields of every direction of ``proj`` for one centred normalized observation ``zc``
    (``2 z - 1``) into ``out[first + k*M + m]``: ``y_k = sum_j zc_j proj[k, j]``, clipped to
    ``[-1, 1]``, coded as ``(y + 1) / 2`` (the batched encoder and the compiled predict share it)."""
    M = centres.shape[0]
    for k in range(proj.shape[0]):
        y = 0.0
        for j in range(zc.shape[0]):
            y += zc[j] * proj[k, j]
        z = (min(max(y, -1.0), 1.0) + 1.0) * 0.5
        for m in range(M):
            e = (z - centres[m]) * inv_width
            out[first + k * M + m] = np.exp(-0.5 * e * e)


@njit
def _projected_fields(x, low, high, proj, centres, inv_width, out, first):
    """The population code of each projection of validated, finite ``x`` ``(B, d)``:
    ``y_k = sum_j (2 z_j - 1) proj[k, j]`` (``z`` the normalized value, clipped to the bounds),
    clipped to ``[-1, 1]`` and population-coded over it, into ``out[:, first + k*M + m]``."""
    B, d = x.shape
    zc = np.empty(d)
    for bi in range(B):
        for j in range(d):
            zc[j] = 2.0 * ((min(max(x[bi, j], low[j]), high[j]) - low[j]) / (high[j] - low[j])) - 1.0
        project_fields(zc, proj, centres, inv_width, out[bi], first)
    return out


@njit
def _running_bounds(mean, m2, count, n_std, space_low, space_high, fixed, fixed_low, fixed_high):
    """:meth:`BoxFeatures.bounds` from running statistics, the numpy statement's operations in
    their order: ``spread = maximum(n_std * (sqrt(m2 / max(count, 1)) + 1e-8), 1e-3)``, ``low =
    clip(mean - spread, space_low, space_high - 1e-3)``, ``high = clip(mean + spread, low + 1e-3,
    space_high)``, the fixed bounds where given."""
    d = mean.shape[0]
    low, high = np.empty(d), np.empty(d)
    c = max(count, 1.0)
    for j in range(d):
        spread = max(n_std * (np.sqrt(m2[j] / c) + 1e-8), 1e-3)
        lo = min(max(mean[j] - spread, space_low[j]), space_high[j] - 1e-3)
        hi = min(max(mean[j] + spread, lo + 1e-3), space_high[j])
        low[j] = fixed_low[j] if fixed[j] else lo
        high[j] = fixed_high[j] if fixed[j] else hi
    return low, high


class RunningStats:
    """Per-dimension running mean and variance (Chan et al. parallel update)."""

    def __init__(self, dim: int):
        self.count = 0.0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)

    def update(self, x: np.ndarray) -> None:
        """Merge a batch ``x`` ``(n, dim)`` (new ``mean`` and ``m2`` arrays: whoever caches on them
        sees the change), in one compiled pass of numpy's operations (:func:`_merge_stats`)."""
        n = x.shape[0]
        if n == 0:
            return
        self.mean, self.m2 = _merge_stats(np.ascontiguousarray(x, dtype=np.float64), self.count, self.mean, self.m2)
        self.count = self.count + n

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1.0)) + 1e-8

    def state_dict(self) -> dict:
        return {"count": np.array(self.count), "mean": self.mean.copy(), "m2": self.m2.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.count = float(state["count"])
        self.mean = np.array(state["mean"], dtype=np.float64)
        self.m2 = np.array(state["m2"], dtype=np.float64)


@njit
def _merge_stats(x, count, mean, m2):
    """``(mean, m2)`` of :meth:`RunningStats.update`: the operations, in their order, of
    ``bm = x.mean(0); bm2 = ((x - bm) ** 2).sum(0); delta = bm - mean; total = count + n;
    mean + delta * n / total; m2 + bm2 + delta**2 * count * n / total`` (numpy's sums over the
    first axis add the rows in order to 0), so the same bits."""
    n, d = x.shape
    total = count + n
    new_mean, new_m2 = np.empty(d), np.empty(d)
    for j in range(d):
        s = 0.0
        for i in range(n):
            s += x[i, j]
        bm = s / n
        s2 = 0.0
        for i in range(n):
            e = x[i, j] - bm
            s2 += e * e
        delta = bm - mean[j]
        new_mean[j] = mean[j] + delta * n / total
        new_m2[j] = m2[j] + s2 + delta * delta * count * n / total
    return new_mean, new_m2


def check_finite(obs: np.ndarray, what: str = "observation") -> None:
    """Raise ``ValueError`` naming the first non-finite dimension of ``obs`` ``(B, d)``."""
    if np.isfinite(obs).all():
        return
    bad = ~np.isfinite(obs)
    if bad.any():
        row, dim = np.argwhere(bad)[0]
        raise ValueError(f"{what} has a non-finite value {obs[row, dim]!r} in dimension {dim} (batch row {row})")


class BoxFeatures:
    """What the Box feature maps share: bounds per dimension (the space's finite bounds, given
    ones, or running statistics ``mean +- n_std * std``), validation and clipping."""

    def __init__(self, space, *, low=None, high=None, n_std: float = 3.0, bounds: str = "space"):
        if not isinstance(space, spaces.Box):
            raise ValueError(f"encoder features {self.name!r} need a Box observation space, got {space}")
        if bounds not in ("space", "running"):
            raise ValueError(f"unknown encoder bounds {bounds!r}; expected 'space' or 'running'")
        self.space = space
        self.obs_dim = int(np.prod(space.shape))
        self.space_low = np.asarray(space.low, dtype=np.float64).ravel()
        self.space_high = np.asarray(space.high, dtype=np.float64).ravel()
        lo, hi = self.space_low.copy(), self.space_high.copy()
        if bounds == "running":
            lo, hi = np.full_like(lo, -np.inf), np.full_like(hi, np.inf)
        if low is not None:
            lo = self._given(low, "low", lo)
        if high is not None:
            hi = self._given(high, "high", hi)
        self.fixed_low, self.fixed_high = lo, hi
        self.fixed = np.isfinite(lo) & np.isfinite(hi)
        if np.any(self.fixed & (hi <= lo)):
            raise ValueError(f"encoder bounds: high must exceed low in every dimension, got low={lo}, high={hi}")
        self.n_std = float(n_std)
        self.stats = RunningStats(self.obs_dim)
        self._bounds_key, self._bounds = None, None  # bounds() of the statistics they were computed from

    def _given(self, value, name, default):
        arr = np.asarray(value, dtype=np.float64).ravel()
        if arr.shape != default.shape:
            raise ValueError(f"encoder {name} must have {default.size} values (one per observation dimension), got {arr.size}")
        return np.where(np.isfinite(arr), arr, default)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Current ``(low, high)``: fixed where known, running statistics elsewhere."""
        if self.fixed.all():
            return self.fixed_low, self.fixed_high
        st = self.stats
        key = self._bounds_key  # running statistics replace their arrays whenever they change
        if key is not None and key[0] is st.mean and key[1] is st.m2 and key[2] == st.count:
            return self._bounds
        self._bounds = _running_bounds(st.mean, st.m2, float(st.count), self.n_std, self.space_low, self.space_high,
                                       self.fixed, self.fixed_low, self.fixed_high)
        self._bounds_key = (st.mean, st.m2, st.count)
        return self._bounds

    @property
    def stationary(self) -> bool:
        return bool(self.fixed.all())

    def flat(self, obs: np.ndarray) -> np.ndarray:
        """One observation or a batch -> ``(B, obs_dim)`` float64, finite."""
        shape = self.space.shape
        if obs.shape == shape:
            obs = obs[None]
        if obs.shape[1:] != shape:
            raise ValueError(f"observation must have shape {shape} or (B, *{shape}), got {obs.shape}")
        flat = obs.reshape(obs.shape[0], -1).astype(np.float64)
        check_finite(flat)
        return flat

    def update(self, obs: np.ndarray) -> None:
        if not self.fixed.all():
            self.stats.update(self.flat(obs))

    def input_groups(self) -> list[tuple[str, int, int]]:
        k = self.n_inputs // self.obs_dim
        return [(f"obs[{d}]", d * k, (d + 1) * k) for d in range(self.obs_dim)]

    def state_dict(self) -> dict:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.stats.load_state_dict(state)


class NormalizedFeatures(BoxFeatures):
    """One neuron per dimension: ``f = (clip(x) - low) / (high - low)``."""

    name = "normalized"

    def __init__(self, space, **bounds):
        super().__init__(space, **bounds)
        self.n_inputs = self.obs_dim

    def __call__(self, obs) -> np.ndarray:
        x = self.flat(obs)
        low, high = self.bounds()
        return (np.minimum(np.maximum(x, low), high) - low) / (high - low)

    def decode(self, features: np.ndarray) -> np.ndarray:
        """The normalized observation ``(B, obs_dim)`` in ``[0, 1]`` (the features themselves)."""
        return features


class PopulationFeatures(BoxFeatures):
    """``n_fields`` Gaussian receptive fields per dimension over the bounds:
    ``f = exp(-((z - c_m) / width)^2 / 2)`` with ``z`` the normalized value; with
    ``n_projections``, the same fields over each of that many fixed random directions of the
    observation (:func:`projection_matrix`; the projection ``y`` of ``2 z - 1``, clipped to
    ``[-1, 1]``, coded as ``(y + 1) / 2``), after the dimensions' fields. A readout linear in
    the dimensions' fields is a sum of one function per dimension; the directions' fields add
    conjunctions of dimensions (functions of ``w . x``) without hidden neurons."""

    name = "population"

    def __init__(self, space, *, n_fields: int = 8, width: float = 1.0, n_projections: int = 0, **bounds):
        super().__init__(space, **bounds)
        if isinstance(n_fields, bool) or not isinstance(n_fields, (int, np.integer)) or n_fields < 2:
            raise ValueError(f"n_fields must be an integer >= 2, got {n_fields!r}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        if isinstance(n_projections, bool) or not isinstance(n_projections, (int, np.integer)) or n_projections < 0:
            raise ValueError(f"n_projections must be an integer >= 0, got {n_projections!r}")
        self.n_fields, self.width = int(n_fields), float(width)
        self.proj = projection_matrix(int(n_projections), self.obs_dim)
        self.n_inputs = (self.obs_dim + self.proj.shape[0]) * self.n_fields
        self.centres = np.linspace(0.0, 1.0, self.n_fields)
        self.inv_width = (self.n_fields - 1) / self.width

    @property
    def n_projections(self) -> int:
        return self.proj.shape[0]

    def __call__(self, obs) -> np.ndarray:
        x = self.flat(obs)
        low, high = self.bounds()
        out = np.empty((x.shape[0], self.n_inputs))
        _gaussian_fields(x, low, high, self.centres, self.inv_width, out)
        if self.n_projections:
            _projected_fields(x, low, high, self.proj, self.centres, self.inv_width, out, self.obs_dim * self.n_fields)
        return out

    def input_groups(self) -> list[tuple[str, int, int]]:
        M, d = self.n_fields, self.obs_dim
        return ([(f"obs[{j}]", j * M, (j + 1) * M) for j in range(d)]
                + [(f"proj[{k}]", (d + k) * M, (d + k + 1) * M) for k in range(self.n_projections)])

    def decode(self, features: np.ndarray) -> np.ndarray:
        """Each dimension's population vector ``(B, obs_dim)``: the fields' centres weighted by
        their activity, a smooth monotone read-out of the normalized value in ``[0, 1]``."""
        f = features[:, : self.obs_dim * self.n_fields].reshape(features.shape[0], self.obs_dim, self.n_fields)
        return (f * self.centres).sum(2) / np.maximum(f.sum(2), 1e-9)


class _DiscreteFeatures:
    """Feature maps of discrete observations: no statistics, never change."""

    stationary = True

    def update(self, obs) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class OneHotFeatures(_DiscreteFeatures):
    """A ``Discrete`` state -> one active neuron (``index_of[state]``)."""

    name = "onehot"

    def __init__(self, space):
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"encoder features {self.name!r} need a Discrete, MultiDiscrete or Tuple-of-Discrete "
                             f"observation space, got {space}")
        self.space, self.n_states, self.start, self.obs_dim = space, int(space.n), int(space.start), 1
        self.index_of = np.arange(self.n_states)
        self.n_inputs = self.n_states

    def flat(self, obs: np.ndarray) -> np.ndarray:
        arr = obs.reshape(-1).astype(np.int64) - self.start
        if np.any((arr < 0) | (arr >= self.n_states)):
            raise ValueError(f"observation out of the {self.space} space: {obs}")
        return arr

    def __call__(self, obs) -> np.ndarray:
        x = self.flat(obs)
        f = np.zeros((x.shape[0], self.n_inputs))
        f[np.arange(x.shape[0]), self.index_of[x]] = 1.0
        return f

    def input_groups(self) -> list[tuple[str, int, int]]:
        return [("state" if self.name == "onehot" else "tile", 0, self.n_inputs)]


class TileFeatures(OneHotFeatures):
    """A ``Discrete`` grid position ``row * cols + col`` -> the neuron of its ``tile`` (h, w)."""

    name = "tile"

    def __init__(self, space, *, grid_shape=None, tile=(1, 1)):
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"encoder features 'tile' need a Discrete observation space, got {space}")
        super().__init__(space)
        if grid_shape is None or len(grid_shape) != 2:
            raise ValueError("tile features need grid_shape=(rows, cols)")
        rows, cols = map(int, grid_shape)
        if rows * cols != self.n_states:
            raise ValueError(f"grid_shape {grid_shape} has {rows * cols} cells but the space has {self.n_states} states")
        th, tw = map(int, tile)
        if th < 1 or tw < 1:
            raise ValueError(f"tile must be two integers >= 1, got {tile}")
        per_row = -(-cols // tw)
        idx = np.arange(self.n_states)
        self.index_of = (idx // cols) // th * per_row + (idx % cols) // tw
        self.n_inputs = int(-(-rows // th) * per_row)


class ComponentOneHotFeatures(_DiscreteFeatures):
    """A ``MultiDiscrete`` (or ``Tuple`` of ``Discrete``) observation -> one active neuron
    per component, in a group of ``nvec[c]`` neurons starting at ``offset[c]``."""

    name = "onehot"

    def __init__(self, space):
        self.space = space
        self.nvec, self.start = discrete_components(space)
        self.obs_dim = self.nvec.size
        self.offset = np.concatenate([[0], np.cumsum(self.nvec)[:-1]])  # first neuron of each component
        self.n_inputs = int(self.nvec.sum())

    def flat(self, obs: np.ndarray) -> np.ndarray:
        shape = obs_shape(self.space)
        arr = (obs[None] if obs.shape == shape else obs)
        if arr.shape[1:] != shape:
            raise ValueError(f"observation must have shape {shape} or (B, *{shape}), got {obs.shape}")
        arr = arr.reshape(arr.shape[0], -1).astype(np.int64) - self.start
        bad = (arr < 0) | (arr >= self.nvec)
        if bad.any():
            dim = int(np.nonzero(bad.any(0))[0][0])
            raise ValueError(f"observation out of the {self.space} space in dimension {dim}: {obs}")
        return arr

    def __call__(self, obs) -> np.ndarray:
        x = self.flat(obs)
        f = np.zeros((x.shape[0], self.n_inputs))
        f[np.arange(x.shape[0])[:, None], self.offset[None, :] + x] = 1.0
        return f

    def input_groups(self) -> list[tuple[str, int, int]]:
        return [(f"obs[{d}]", int(o), int(o + n)) for d, (o, n) in enumerate(zip(self.offset, self.nvec))]


class RateCode:
    """Bernoulli input spikes with ``p = p_max f`` at every one of ``T`` steps."""

    name = "rate"
    binary = False
    """Whether every probability is 0 or 1 (the spikes need no random number)."""

    def __init__(self, T: int, p_max: float):
        self.T, self.p_max = T, p_max

    def __call__(self, f: np.ndarray) -> np.ndarray:
        return np.repeat((self.p_max * f)[:, :, None], self.T, axis=2)


class RegularCode:
    """Deterministic spikes at rate ``r = p_max f``: a spike at ``t`` iff
    ``floor(1/2 + (t + 1) r) > floor(1/2 + t r)`` (probabilities 0 or 1). The input carries
    the observation without sampling noise; the policy's randomness is its own neurons'."""

    name = "regular"
    binary = True

    def __init__(self, T: int, p_max: float):
        self.T, self.p_max = T, p_max

    def rates(self, f: np.ndarray) -> np.ndarray:
        """Each input's rate ``p_max f`` ``(B, n)`` of features ``f``, contiguous float64."""
        return np.ascontiguousarray(self.p_max * f, dtype=np.float64)

    def __call__(self, f: np.ndarray) -> np.ndarray:
        return _regular_code(self.rates(f), self.T)


@njit
def _regular_code(r, T):
    """``floor(1/2 + (t + 1) r) - floor(1/2 + t r)`` ``(B, n, T)`` of rates ``r`` ``(B, n)``,
    element by element (the same operations as numpy's broadcast, in one pass)."""
    B, n = r.shape
    p = np.empty((B, n, T))
    for b in range(B):
        for j in range(n):
            rj = r[b, j]
            for t in range(T):
                p[b, j, t] = np.floor(0.5 + (t + 1.0) * rj) - np.floor(0.5 + t * rj)
    return p


class TimeCode:
    """One input spike at ``t = round((1 - f)(T - 1))`` (earlier for larger ``f``), none when ``f < f_min``."""

    name = "time"
    binary = True

    def __init__(self, T: int, f_min: float):
        self.T, self.f_min = T, f_min

    def __call__(self, f: np.ndarray) -> np.ndarray:
        p = np.zeros((f.shape[0], f.shape[1], self.T))
        t = np.rint((1.0 - f) * (self.T - 1)).astype(np.int64)
        b, j = np.nonzero(f >= self.f_min)
        p[b, j, t[b, j]] = 1.0
        return p


class Encoder:
    """Observation -> input spike probabilities ``(B, n_inputs, T)``: a feature map
    (:attr:`feature_map`, one class per map) composed with a temporal code (:attr:`temporal_code`).

    Args:
        space: the observation space (``Box`` for normalized/population; ``Discrete`` for
            onehot/tile; ``MultiDiscrete`` or a ``Tuple`` of ``Discrete`` for onehot).
        features: one of ``auto`` (population for a Box, onehot for the discrete spaces),
            ``normalized``, ``population``, ``onehot``, ``tile``.
        code: ``rate``, ``regular`` or ``time``.
        T: presentation length in steps (``>= 1``).
        p_max: spike probability (rate) or rate (regular) of a fully active input neuron.
        n_fields: receptive fields per dimension (population).
        width: field width in units of the spacing between centres (population).
        low, high: bounds per dimension that replace infinite space bounds.
        n_std: running-statistics bounds are ``mean +- n_std * std``.
        bounds: ``space`` (the space's finite bounds; running statistics where a bound is
            infinite) or ``running`` (running statistics in every dimension, kept within the
            space's finite bounds). ``low``/``high`` fix a dimension in either case.
        grid_shape, tile: for ``tile``: the grid ``(rows, cols)`` of the ``Discrete``
            index ``row * cols + col``, and the tile size ``(h, w)``.
        f_min: under time coding, features below this do not spike.
        n_projections: fixed random directions of the observation coded besides its
            dimensions (:class:`PopulationFeatures`); the other feature maps have none.
    """

    def __init__(
        self,
        space: spaces.Space,
        *,
        features: str = "population",
        code: str = "rate",
        T: int = 8,
        p_max: float = 0.9,
        n_fields: int = 8,
        width: float = 1.0,
        low=None,
        high=None,
        n_std: float = 3.0,
        grid_shape=None,
        tile=(1, 1),
        f_min: float = 0.05,
        bounds: str = "space",
        n_projections: int = 0,
    ):
        if features not in FEATURES:
            raise ValueError(f"unknown encoder features {features!r}; expected one of {FEATURES}")
        components = discrete_components(space)
        if features == "auto":
            features = "onehot" if isinstance(space, spaces.Discrete) or components is not None else "population"
        if code not in CODES:
            raise ValueError(f"unknown encoder code {code!r}; expected one of {CODES}")
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
            raise ValueError(f"T (presentation length) must be an integer >= 1, got {T!r}")
        if not 0 < p_max <= 1:
            raise ValueError(f"p_max must be in (0, 1], got {p_max!r}")
        self.space, self.features, self.code, self.T, self.p_max = space, features, code, int(T), float(p_max)
        self.f_min = float(f_min)
        box = dict(low=low, high=high, n_std=n_std, bounds=bounds)
        if features == "normalized":
            self.feature_map = NormalizedFeatures(space, **box)
        elif features == "population":
            self.feature_map = PopulationFeatures(space, n_fields=n_fields, width=width, n_projections=n_projections,
                                                  **box)
        elif features == "onehot" and components is not None:
            self.feature_map = ComponentOneHotFeatures(space)
        elif features == "onehot":
            self.feature_map = OneHotFeatures(space)
        else:
            self.feature_map = TileFeatures(space, grid_shape=grid_shape, tile=tile)
        codes = {"rate": lambda: RateCode(self.T, self.p_max), "regular": lambda: RegularCode(self.T, self.p_max),
                 "time": lambda: TimeCode(self.T, self.f_min)}
        self.temporal_code = codes[code]()
        self.n_inputs, self.obs_dim = self.feature_map.n_inputs, self.feature_map.obs_dim

    @property
    def stationary(self) -> bool:
        """True when features of an observation never change (no running statistics)."""
        return self.feature_map.stationary

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Current ``(low, high)`` of a Box feature map."""
        return self.feature_map.bounds()

    def update(self, obs: np.ndarray) -> None:
        """Update running statistics with a batch of observations (no-op when nothing runs)."""
        self.feature_map.update(obs_array(self.space, obs))

    def input_groups(self) -> list[tuple[str, int, int]]:
        """Which input neurons encode what: ``(label, first, stop)`` per observation
        dimension (Box, MultiDiscrete, Tuple) or one group for a Discrete state."""
        return self.feature_map.input_groups()

    def features_of(self, obs) -> np.ndarray:
        """Feature values in ``[0, 1]``, ``(B, n_inputs)``."""
        return self.feature_map(obs_array(self.space, obs))

    @property
    def decodes(self) -> bool:
        """Whether :meth:`decode` can read the normalized observation back from the features
        (the Box feature maps: normalized, population)."""
        return hasattr(self.feature_map, "decode")

    def decode(self, features: np.ndarray) -> np.ndarray:
        """The normalized observation ``(B, obs_dim)`` in ``[0, 1]`` read back from the features
        ``(B, n_inputs)`` (Box feature maps only, see :attr:`decodes`)."""
        if not self.decodes:
            raise ValueError(f"the {self.features} features of a {type(self.space).__name__} observation space "
                             f"cannot be decoded into a normalized observation")
        return self.feature_map.decode(features)

    def __call__(self, obs) -> np.ndarray:
        """Input spike probabilities ``(B, n_inputs, T)``."""
        return self.temporal(self.features_of(obs))

    def temporal(self, f: np.ndarray) -> np.ndarray:
        """Feature values ``(B, n_inputs)`` -> spike probabilities ``(B, n_inputs, T)``."""
        return self.temporal_code(f)

    def state_dict(self) -> dict:
        return self.feature_map.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.feature_map.load_state_dict(state)
