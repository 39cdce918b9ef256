r"""The updating part: reward factors and hidden-neuron estimators of the three-factor rule
(DESIGN.md section 5).

Every decision ``d`` brings an eligibility vector ``e_d`` (post-synaptic error x
pre-synaptic trace, in ``theta`` order). A **reward factor** turns rewards into one global
scalar ``M_d`` per decision and the update ``theta += eta * mean_d(M_d e_d)``. All rules share
one interface, :meth:`Rule.step`: the agent hands it each vector step as a
:class:`Transition` and applies, in order, every update it yields (zero, one or many), so the
learning loop never dispatches on the rule (``needs_eligibility`` tells it whether the
decisions it acts with must carry their eligibilities).

- :class:`ProximalRule` (the default): collects ``n_steps x n_envs`` decisions, stores each
  as the bits that replay it exactly, computes advantages by GAE(lambda) from the critic,
  then makes ``n_epochs`` passes of minibatch updates; each stored decision is replayed
  through the compiled kernel with clamping under the current parameters, giving
  ``log p_theta(d)`` and ``e_d``, and its modulator is ``M_d = rho_d A_d`` unless PPO's clipped
  surrogate is clipped at ``rho_d = exp(log p_theta(d) - log p_old(d))`` (then 0). What the
  ratio covers is a choice: the ``joint`` trajectory of hidden and output spikes, the
  ``output`` spikes only, or (the default) each ``neuron``'s own spikes, so that a synapse is
  gated by the ratio of its post-synaptic neuron: ``M_{d,i} = rho_{d,i} A_d`` unless clipped,
  with ``rho_{d,i}`` computed by neuron ``i`` from its own log-likelihood. The joint ratio is
  a product over every hidden and output spike probability of the decision (hundreds of
  Bernoulli factors), so it leaves the clip range after tiny steps and most decisions get
  gated off (clip fraction 0.3-0.55 measured on CartPole, Acrobot and the grid world); a
  per-neuron ratio keeps each neuron in its own trust region (clip fraction < 0.02);
- :class:`MonteCarloRule` (REINFORCE): return-to-go minus a critic baseline, applied once an
  episode ends (bootstrapped with the critic on truncation);
- :class:`ActorCriticRule` (online, the on-chip rule): TD error
  ``delta = r + gamma V(s') - V(s)`` with eligibility traces across decisions
  ``z <- gamma*lambda*z + e``; memory is O(synapses) per environment, no episode buffer.

**Hidden-neuron estimators** decide what multiplies a hidden neuron's pre x post term:

- ``joint``: the hidden spikes are part of the decision's trajectory, so hidden
  eligibilities are their own score and get the same modulator as the outputs. This is the
  score-function gradient of the expected reward of the marginal policy: unbiased (the
  default until the posterior estimator; what the on-device rule of ``export --learn`` runs).
- ``posterior`` (:class:`PosteriorSpikes`, the default): each hidden spike's score replaced by its
  expectation given the rest of the decision's raster, ``(q - p)`` in place of ``(s - p)``
  with ``q`` the spike's posterior probability given the spikes it drives (Rao-Blackwell):
  unbiased, and a spike that moved no output brings no noise. Under the proximal rule a
  hidden neuron's ratio is then the one of this estimator's surrogate (the likelihood of
  what its spikes drive, with its spikes summed out; :meth:`PosteriorSpikes.targets`), not
  the observed spikes' ratio, which the posterior update does not follow and whose clip
  would not hold it.
- ``learning_signal`` (the seed rule of DESIGN.md): each step's hidden error is weighted by
  the learning signal ``l_t = kappa l_{t-1} + (1 - kappa) sum_o log p(s_{o,t} | u_{o,t})``
  centred by a per-step running baseline ``b_t`` (so decisions of different lengths are
  centred by their own step's mean), then multiplied by the reward factor. It follows a
  reward-weighted likelihood of the outputs, not the gradient of the expected reward:
  biased (``tests/test_estimators.py`` shows both on an enumerable network).

The critic is linear in ``[f, cos(W f + b), 1]``: the encoder's features ``f`` and fixed
random Fourier features of them (conjunctions the population code alone cannot express),
learnt by the same kind of local rule; or (``critic="mlp"``, batched rules only) a small
perceptron of the normalized observation (:class:`MLPCritic`).
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from ._numba import njit, njit_inline, njit_sums, pairwise_sum
from .engine import _log_sigmoid, _sigmoid, _softplus, batched
from .optim import Adam


class CriticBase:
    """What every critic offers the rules besides its values and fit: :meth:`observe`."""

    def observe(self, x: np.ndarray, target: np.ndarray) -> None:
        """Returns ``target`` about to be fitted (rows ``x`` of :meth:`augment`): nothing to
        track here; :class:`MixCritic` scores its parts on them before they see them."""


class Critic(CriticBase):
    """``V(s) = c . [f, cos(W f + b), 1]`` on encoder features ``f`` (``n_random = 0``: linear)."""

    def __init__(self, n_features: int, lr: float, *, n_random: int = 0, scale: float = 1.0, seed: int | None = None):
        rng = np.random.default_rng(None if seed is None else seed + 7_919)
        self.W = rng.standard_normal((n_random, n_features)) * scale
        self.b = rng.uniform(0.0, 2 * np.pi, n_random)
        self.c = np.zeros(n_features + n_random + 1)
        self.lr = lr
        self.opt = Adam(self.c.size)
        self.single = False
        """Random features computed in single precision (their product and cosine; numpy's
        float64 ones cost three to five times as much on a rollout's batch): set by
        :class:`MixCritic` for its linear part."""

    def augment(self, features: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``[f, cos(W f + b), 1]`` of features ``(B, n_features)``, into ``out`` if given."""
        B, F = features.shape
        R = self.b.size
        if out is None:
            out = np.empty((B, F + R + 1))
        out[:, :F] = features
        if R and self.single:
            f32 = np.float32
            out[:, F : F + R] = np.cos(np.asarray(features, f32) @ self.W.T.astype(f32) + self.b.astype(f32))
        elif R:
            out[:, F : F + R] = np.cos(features @ self.W.T + self.b)
        out[:, F + R] = 1.0
        return out

    def value(self, features: np.ndarray) -> np.ndarray:
        return self.predict(self.augment(features))

    def step(self, grad: np.ndarray) -> None:
        self.c = self.opt.step(self.c, grad, self.lr)

    def predict(self, phi: np.ndarray) -> np.ndarray:
        """Values of precomputed features ``phi`` (rows of :meth:`augment`)."""
        return phi @ self.c

    def regress(self, phi: np.ndarray, target: np.ndarray) -> None:
        """One step of least squares towards ``target`` on precomputed features ``phi``."""
        self.step(((target - self.predict(phi))[:, None] * phi).mean(0))


class MLPCritic(CriticBase):
    """``V(s)``: a perceptron with two tanh layers of ``hidden`` units on the normalized
    observation ``z`` (read back from the encoder's features by ``decode``, fed as ``2 z - 1``),
    trained by minibatch least squares with Adam (backpropagation: the batched rules' critic
    off the chip; the on-chip ``td`` rule keeps the linear :class:`Critic`).

    Its parameters are one flat vector ``c`` (``W1, b1, W2, b2, w3, b3``), as the linear
    critic's are, so files and the optimiser's state treat both alike."""

    def __init__(self, n_in: int, lr: float, *, hidden: int = 64, decode=None, seed: int | None = None):
        rng = np.random.default_rng(None if seed is None else seed + 7_919)
        self.n_in, self.hidden, self.lr = int(n_in), int(hidden), lr
        self.decode = decode if decode is not None else (lambda f: f)
        h = self.hidden
        self._shapes = [(self.n_in, h), (h,), (h, h), (h,), (h,), (1,)]
        bounds = np.cumsum([0] + [int(np.prod(shape)) for shape in self._shapes])
        self._slices = [(shape, int(i), int(j)) for shape, i, j in zip(self._shapes, bounds[:-1], bounds[1:])]
        """``(shape, start, stop)`` of each parameter array in ``c``."""
        self.c = np.concatenate([rng.standard_normal(self.n_in * h) / np.sqrt(self.n_in), np.zeros(h),
                                 rng.standard_normal(h * h) / np.sqrt(h), np.zeros(h),
                                 0.01 * rng.standard_normal(h) / np.sqrt(h), np.zeros(1)])
        self.opt = Adam(self.c.size)

    def _unpack(self, theta: np.ndarray) -> list[np.ndarray]:
        return [theta[i:j].reshape(shape) for shape, i, j in self._slices]

    def augment(self, features: np.ndarray) -> np.ndarray:
        """The network's input ``2 z - 1`` of encoder features ``(B, n_features)``."""
        return 2.0 * self.decode(features) - 1.0

    dtype = np.float32
    """What the forward and backward passes compute in (``c`` and its optimiser stay float64):
    single precision, as SB3's torch perceptrons, with ``tanh`` a compiled rational
    approximation as accurate as numpy's float32 one (:func:`_tanh_layer`; numpy's costs three
    times as much, and its float64 one five times that)."""

    def _forward(self, x: np.ndarray, params: list | None = None):
        """Hidden layers (rows: ``x``'s leading axes flattened) and values (``x``'s leading
        shape) of inputs ``x`` (in :attr:`dtype`; the values float64): ``params`` the arrays of
        :meth:`_unpack` in :attr:`dtype` (cast from ``c`` if not given)."""
        W1, b1, W2, b2, w3, b3 = self._unpack(self.c.astype(self.dtype)) if params is None else params
        lead = x.shape[:-1]  # any leading axes (a rollout's steps and environments)
        h1 = np.asarray(x, dtype=self.dtype).reshape(-1, x.shape[-1]) @ W1
        self._tanh(h1, b1)
        h2 = h1 @ W2
        self._tanh(h2, b2)
        y = np.empty(len(h2))
        _linear_head(h2, w3, b3[0], y)
        return h1, h2, y.reshape(lead)

    def _tanh(self, z: np.ndarray, b: np.ndarray) -> None:
        """``z = tanh(z + b)`` in place: compiled in single precision, numpy's in double."""
        if z.dtype == np.float32:
            _tanh_layer(z, b)
        else:
            np.tanh(z + b, out=z)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Values of precomputed inputs ``x`` (rows of :meth:`augment`)."""
        return self._forward(x)[2]

    def value(self, features: np.ndarray) -> np.ndarray:
        return self.predict(self.augment(features))

    def gradient(self, x: np.ndarray, target: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient of ``-mean((V(x) - target)^2) / 2`` with respect to ``c`` (ascent direction),
        float64, into ``out`` if given: the layers' errors and the biases' and last layer's
        gradients in compiled passes (:func:`_head_errors`, :func:`_hidden_errors`), the two
        weight matrices' by the library's products."""
        params = self._unpack(self.c.astype(self.dtype))
        W1, b1, W2, b2, w3, b3 = params
        x = np.asarray(x, dtype=self.dtype)
        h1, h2, y = self._forward(x, params)
        out = np.empty(self.c.size) if out is None else out
        (_, i1, j1), (_, ib1, jb1), (_, i2, j2), (_, ib2, jb2), (_, i3, j3), (_, ib3, _) = self._slices
        d2 = np.empty_like(h2)
        _head_errors(h2, w3, y, np.ascontiguousarray(target, dtype=np.float64), d2, out[ib2:jb2], out[i3:j3],
                     out[ib3:])
        d1 = d2 @ W2.T
        _hidden_errors(d1, h1, out[ib1:jb1])
        out[i1:j1] = (x.T @ d1).ravel()  # float32 -> float64: exact
        out[i2:j2] = (h1.T @ d2).ravel()
        return out

    def regress(self, x: np.ndarray, target: np.ndarray) -> None:
        """One Adam step of least squares towards ``target`` on precomputed inputs ``x``."""
        self.c = self.opt.step(self.c, self.gradient(x, target), self.lr)


_TANH_P = tuple(np.float32(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                        5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                        4.89352455891786e-03))
_TANH_Q = tuple(np.float32(c) for c in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                        4.89352518554385e-03))
_NINE, _ONE = np.float32(9.0), np.float32(1.0)


@njit
def _tanh_layer(z, b):
    """``z = tanh(z + b)`` in place, float32 ``(B, n)`` and ``(n,)``: Eigen's rational
    approximation (odd degree 13 over even degree 6 on ``[-9, 9]``, where float32's tanh
    reaches 1), within 4e-7 of the exact tanh (numpy's float32 one: 6e-8), in arithmetic a
    core runs on vector registers."""
    p0, p1, p2, p3, p4, p5, p6 = _TANH_P
    q0, q1, q2, q3 = _TANH_Q
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            x = min(max(z[i, j] + b[j], -_NINE), _NINE)
            x2 = x * x
            p = x2 * (x2 * (x2 * (x2 * (x2 * (x2 * p0 + p1) + p2) + p3) + p4) + p5) + p6
            q = x2 * (x2 * (x2 * q0 + q1) + q2) + q3
            z[i, j] = min(max(x * p / q, -_ONE), _ONE)


@njit_sums
def _linear_head(h, w, b, y):
    """``y = h @ w + b`` (float32 ``h``, ``w``; float64 sums and ``y``)."""
    for i in range(h.shape[0]):
        acc = 0.0
        for k in range(h.shape[1]):
            acc += np.float64(h[i, k]) * np.float64(w[k])
        y[i] = acc + b


@njit_sums
def _head_errors(h2, w3, y, target, d2, g_b2, g_w3, g_b3):
    """The perceptron's last layer in reverse (:meth:`MLPCritic.gradient`): ``g = (target - y) /
    B`` (the loss's ascent direction in ``y``), the last hidden layer's errors ``d2 = g w3 (1 -
    h2^2)`` (in ``d2``'s precision), and the gradients of ``b2``, ``w3`` and ``b3`` (float64)."""
    B, H = h2.shape
    for k in range(H):
        g_b2[k] = 0.0
        g_w3[k] = 0.0
    gsum = 0.0
    for i in range(B):
        g = (target[i] - y[i]) / B
        gsum += g
        for k in range(H):
            h = np.float64(h2[i, k])
            d2[i, k] = g * w3[k] * (1.0 - h * h)
            g_b2[k] += d2[i, k]
            g_w3[k] += g * h
    g_b3[0] = gsum


@njit_sums
def _hidden_errors(d1, h1, g_b1):
    """``d1 *= 1 - h1^2`` in place (the first hidden layer's errors from the products with the
    next layer's weights) and the gradient of ``b1`` (float64)."""
    B, H = d1.shape
    for k in range(H):
        g_b1[k] = 0.0
    for i in range(B):
        for k in range(H):
            h = np.float64(h1[i, k])
            d1[i, k] = d1[i, k] * (1.0 - h * h)
            g_b1[k] += d1[i, k]


class SumCritic(CriticBase):
    """``V(s) = mlp(z) + c_lin . [f, cos(W f + b), 1]``: the perceptron and the linear critic
    summed, fitted together on the same squared error (each part's gradient is its own
    critic's towards the target minus the other part's value), each at its own Adam step size.

    The linear part (step 0.01 on fixed features) tracks the returns within a few rounds, as
    the default critic does; the perceptron (0.001) fits what it leaves over. Parameters: one
    flat ``c`` (the perceptron's, then the linear part's), one Adam over it."""

    n_fixed = 0
    """Parameters after the parts' that no gradient moves (:class:`MixCritic`'s running errors)."""

    def __init__(self, mlp: MLPCritic, linear: Critic):
        self.mlp, self.linear = mlp, linear
        self.n_x = mlp.n_in  # the perceptron's columns of an augmented row
        fixed = np.zeros(self.n_fixed)
        self.lr = np.concatenate([np.full(mlp.c.size, mlp.lr), np.full(linear.c.size, linear.lr), fixed])
        self.opt = Adam(self.lr.size)
        self._own(np.concatenate([mlp.c, linear.c, fixed]))

    def _own(self, flat: np.ndarray) -> None:
        """Hold the parameters as one flat vector ``flat``, the parts' ``c`` views into it (so an
        optimiser step updates them in place, with nothing concatenated or copied)."""
        n, m = self.mlp.c.size, self.linear.c.size
        self._flat = flat
        self.mlp.c, self.linear.c = flat[:n], flat[n : n + m]
        self._grad = np.zeros(flat.size)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._own(self._flat)  # a copy or a pickle holds the parts' views as arrays of their own

    @property
    def c(self) -> np.ndarray:
        """The parameters, flat (a copy)."""
        return self._flat.copy()

    @c.setter
    def c(self, value: np.ndarray) -> None:
        if value.shape != (self.lr.size,):
            raise ValueError(f"critic parameters have shape {value.shape}, expected ({self.lr.size},)")
        self._flat[:] = value

    def augment(self, features: np.ndarray) -> np.ndarray:
        """Both parts' inputs side by side: the perceptron's ``2 z - 1``, then the linear features."""
        out = np.empty((features.shape[0], self.n_x + self.linear.c.size))
        out[:, : self.n_x] = self.mlp.augment(features)
        self.linear.augment(features, out=out[:, self.n_x :])
        return out

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.mlp.predict(x[..., : self.n_x]), self.linear.predict(x[..., self.n_x :])

    def predict(self, x: np.ndarray) -> np.ndarray:
        a, b = self._parts(x)
        return a + b

    def value(self, features: np.ndarray) -> np.ndarray:
        return self.predict(self.augment(features))

    def gradient(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Gradient of ``-mean((V(x) - target)^2) / 2`` with respect to ``c`` (ascent direction)."""
        v_mlp, v_lin = self._parts(x)
        phi = x[:, self.n_x :]
        return np.concatenate([self.mlp.gradient(x[:, : self.n_x], target - v_lin),
                               ((target - v_mlp - v_lin)[:, None] * phi).mean(0)])

    def regress(self, x: np.ndarray, target: np.ndarray) -> None:
        """One Adam step of least squares towards ``target`` (each part at its own step size),
        in place."""
        self.opt.step(self._flat, self.gradient(x, target), self.lr, out=self._flat)


class MixCritic(SumCritic):
    """``V(s) = w_mlp mlp(z) + w_lin c_lin . [f, cos(W f + b), 1]``: the perceptron and the
    linear critic, each fitted to the returns on its own (each at its own Adam step size), their
    values combined with weights inversely proportional to each one's squared error on returns
    it had not been fitted to (a forecast combination, Bates & Granger 1969).

    :meth:`observe` takes each new batch of returns before either part is fitted to it and
    updates each part's running held-out error (an average over ``1 / (1 - decay)`` batches;
    the first batch sets it). Before any, the weights are equal. Early the linear part, which
    tracks the returns within a few rounds, carries the value; the perceptron takes over where
    it predicts better. Parameters: one flat ``c`` (the perceptron's, the linear part's, then
    the two running errors, which no gradient moves), one Adam over it."""

    def __init__(self, mlp: MLPCritic, linear: Critic, *, decay: float = 0.9):
        super().__init__(mlp, linear)  # the two errors 0: not yet measured
        linear.single = True  # its random features in float32, as the perceptron runs
        self.decay = decay

    n_fixed = 2

    def _own(self, flat: np.ndarray) -> None:
        super()._own(flat)
        self.err = flat[self.mlp.c.size + self.linear.c.size :]

    @property
    def weights(self) -> np.ndarray:
        """``(w_mlp, w_lin)``: inverse held-out errors, normalised (equal before any)."""
        if not (self.err > 0).all():
            return np.full(2, 0.5)
        inv = 1.0 / self.err
        return inv / inv.sum()

    def predict(self, x: np.ndarray) -> np.ndarray:
        a, b = self._parts(x)
        w = self.weights
        return w[0] * a + w[1] * b

    def observe(self, x: np.ndarray, target: np.ndarray) -> None:
        """Each part's squared error on returns ``target`` it has not been fitted to, into its running error."""
        if target.size == 0:
            return
        err = np.array([np.mean((p - target) ** 2) for p in self._parts(x)]) + 1e-12
        self.err[:] = err if not (self.err > 0).all() else self.decay * self.err + (1.0 - self.decay) * err

    def gradient(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Each part's own least-squares gradient towards ``target`` (ascent), zeros for the
        errors (written into one buffer, overwritten by the next call)."""
        phi = x[:, self.n_x :]
        n, m = self.mlp.c.size, self.linear.c.size
        g = self._grad
        self.mlp.gradient(x[:, : self.n_x], target, out=g[:n])
        g[n : n + m] = (target - self.linear.predict(phi)) @ phi / len(phi)
        return g


# -- hidden-neuron estimators ---------------------------------------------------------------

class LearningSignal:
    """The seed rule for hidden neurons, as DESIGN.md states it (see the module docstring).

    ``eligibility`` recomputes the hidden neurons' entries of ``e`` from the kernel's raster
    and potentials: ``e_{i,j,k} = sum_t (l_t - b_t)(s_{i,t} - sigmoid(u_{i,t})) xbar_{j,k,t}``.
    """

    acting_eligibility = True
    """Acting decisions carry eligibilities: the running baseline follows every decision."""

    def __init__(self, T: int, kappa: float, baseline_decay: float):
        self.kappa, self.decay = kappa, baseline_decay
        self.baseline = np.zeros(T)

    def signal(self, policy, r) -> np.ndarray:
        """``l_t`` ``(B, T)``: the kappa-filtered per-step log-likelihood of the output spikes."""
        topo = policy.topo
        out0 = topo.n_in + topo.n_hid
        s, u = r.raster[:, out0:, :], r.potential[:, out0:, :]
        T = s.shape[2]
        live = np.arange(T)[None, :] <= r.t_star[:, None]
        step_ll = np.where(live, (-np.logaddexp(0.0, np.where(s > 0, -u, u))).sum(1), 0.0)
        l = np.empty_like(step_ll)
        acc = np.zeros(step_ll.shape[0])
        for t in range(T):
            acc = self.kappa * acc + (1 - self.kappa) * step_ll[:, t]
            l[:, t] = acc
        return np.where(live, l, 0.0)

    def eligibility(self, policy, r, elig: np.ndarray) -> np.ndarray:
        topo = policy.topo
        if topo.n_hid == 0:
            return elig
        T = r.raster.shape[2]
        live = np.arange(T)[None, :] <= r.t_star[:, None]
        l = self.signal(policy, r)
        count = live.sum(0)
        seen = count > 0
        if seen.any():  # per-step running baseline of l_t
            mean = l.sum(0)[seen] / count[seen]
            self.baseline[seen] = self.decay * self.baseline[seen] + (1 - self.decay) * mean
        weight = np.where(live, l - self.baseline[None, :], 0.0)  # (B, T)
        prob = np.where(live[:, None, :], 0.5 * (1.0 + np.tanh(0.5 * r.potential)), 0.0)  # sigmoid, no overflow
        err = (r.raster - prob) * live[:, None, :]
        hid = slice(topo.n_in, topo.n_in + topo.n_hid)
        return hidden_eligibility(policy, r.raster, err[:, hid, :] * weight[:, None, :], elig)

    def state_dict(self) -> dict:
        return {"baseline": self.baseline.copy()}

    def load_state_dict(self, state: dict) -> None:
        if "baseline" in state:
            self.baseline = np.array(state["baseline"], dtype=np.float64)


def _traces(raster: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """``xbar[b, j, k, t] = sum_{d >= 0} bank[k, d] raster[b, j, t-1-d]``."""
    B, N, T = raster.shape
    K, D = bank.shape
    x = np.zeros((B, N, K, T))
    for d in range(min(D, T - 1)):
        x[..., d + 1 :] += raster[:, :, None, : T - 1 - d] * bank[None, None, :, d, None]
    return x


def kernel_eligibility(r) -> np.ndarray:
    """A kernel result's eligibility arrays as one ``(B, P)`` array in ``theta`` order."""
    B = r.eg.shape[0]
    return np.concatenate([r.ew.reshape(B, -1), r.ev.reshape(B, -1), r.eg], axis=1)


def hidden_eligibility(policy, raster: np.ndarray, werr: np.ndarray, elig: np.ndarray) -> np.ndarray:
    """``elig`` with the hidden neurons' entries formed from per-step errors ``werr``
    ``(B, n_hid, T)`` in place of their own: ``e_{i,j,k} = sum_t werr_{i,t} xbar_{j,k,t}``
    (synapses into hidden neurons), ``sum_t werr_{i,t} ybar_{i,k,t}`` (their self-feedback)
    and ``sum_t werr_{i,t}`` (their biases)."""
    topo = policy.topo
    n_in, n_hid = topo.n_in, topo.n_hid
    B, N, T = raster.shape
    raster = raster.astype(np.float64)
    hid = slice(n_in, n_in + n_hid)
    out = elig.copy()
    a, b = policy.ff_kernel, policy.fb_kernel
    syn = np.flatnonzero((topo.post >= n_in) & (topo.post < n_in + n_hid))
    xbar = _traces(raster, a)  # (B, N, K, T)
    ew = np.einsum("bst,bskt->bsk", werr[:, topo.post[syn] - n_in, :], xbar[:, topo.pre[syn]])
    K, Kb = a.shape[0], b.shape[0]
    S = topo.n_synapses
    w_idx = (syn[:, None] * K + np.arange(K)[None, :]).ravel()
    out[:, w_idx] = ew.reshape(B, -1)
    ybar = _traces(raster[:, hid, :], b)  # (B, n_hid, Kb, T)
    ev = np.einsum("bit,bikt->bik", werr, ybar)
    v_idx = (S * K + (np.arange(n_in, n_in + n_hid)[:, None] * Kb + np.arange(Kb)[None, :])).ravel()
    out[:, v_idx] = ev.reshape(B, -1)
    out[:, S * K + N * Kb + n_in : S * K + N * Kb + n_in + n_hid] = werr.sum(2)
    return out


def timing_args(policy, action, B: int) -> tuple:
    """The arguments that make :func:`_posterior_lambdas` score the outputs as ``policy`` does:
    ``(action, quadrature nodes, weights, marginal)``; ``action`` is read only when the output
    layer is scored with its timing summed out (``output_score="marginal"``)."""
    marginal = getattr(policy, "output_score", "pattern") == "marginal"
    act = np.asarray(action, np.int64) if marginal else np.zeros(B, np.int64)
    gx, gw = action_quadrature(policy.topo.n_out) if marginal else (np.zeros(1), np.zeros(1))
    return act, gx, gw, marginal


class PosteriorSpikes:
    r"""Rao-Blackwellised hidden credit (``hidden_rule="posterior"``): each hidden spike
    variable's score ``(s_{i,t} - p_{i,t}) \nabla u_{i,t}`` is replaced by its expectation given
    every other spike of the decision, ``(q_{i,t} - p_{i,t}) \nabla u_{i,t}``, where
    ``q_{i,t} = P(s_{i,t} = 1 | the rest) = sigmoid(u_{i,t} + lambda_{i,t})`` and
    ``lambda_{i,t} = log P(downstream | s_{i,t} = 1) - log P(downstream | s_{i,t} = 0)``: how much
    more likely the spikes that neuron ``i``'s spike at ``t`` drives (its targets' and its own
    later spikes that can still reach an output by ``t*``, outputs up to ``t*``) are with the
    spike than without, the rest of the raster held as observed. The reward factor does not
    depend on ``s_{i,t}`` once the rest is fixed, so the conditional expectation leaves the
    gradient's expectation unchanged (unbiased) and its variance no larger per term: a spike
    that moved no output gets no credit (``lambda = 0``), instead of the reward's noise.
    Hidden spikes at ``t*`` reach nothing before the decision (``lambda = 0``). Local in the
    three-factor sense: neuron ``i``'s error needs, besides its own potential, the log-likelihood
    change its spike makes at its targets (a feedback signal, as e-prop's learning signal)."""

    acting_eligibility = False
    """Stateless: a rule that replays its decisions forms the eligibilities when it replays them."""

    def rewrite(self, policy, r, record: dict | None = None) -> None:
        """Replace the hidden neurons' entries of a kernel result's eligibility arrays
        (``r.ew``, ``r.ev``, ``r.eg``) in place, in one compiled pass. With a ``record`` that
        holds :meth:`targets` (a proximal rule's replay), the errors and the hidden neurons'
        log-likelihoods (``r.ll_neuron``) are those of the marginal surrogate instead."""
        topo = policy.topo
        if topo.n_hid == 0:
            return
        if record is not None and "posterior.lam" in record:
            B, _, T = r.raster.shape
            werr, g = np.empty((B, topo.n_hid, T)), np.empty((B, topo.n_hid))
            batched(_marginal_terms_range, B, r.potential, r.t_star, topo.n_in, record["posterior.lam"], werr, g)
            r.ll_neuron[:, topo.n_in : topo.n_in + topo.n_hid] = record["posterior.base"] + g
        else:
            p = policy.params
            werr = _posterior_errors(r.raster, r.potential, r.t_star, topo.n_in, topo.n_hid, topo.pre_ptr,
                                     topo.pre_syn, topo.post, p.w, p.v, policy.ff_kernel, policy.fb_kernel,
                                     *timing_args(policy, r.action, len(r.t_star)))
        batched(_hidden_eligibilities_into, len(r.t_star), r.raster, werr, r.t_star, topo.n_in, topo.n_hid,
                topo.pre_ptr, topo.pre_syn, topo.post, policy.ff_kernel, policy.fb_kernel, r.ew, r.ev, r.eg)

    def eligibility(self, policy, r, elig: np.ndarray) -> np.ndarray:
        self.rewrite(policy, r)
        return kernel_eligibility(r)

    def targets(self, policy, record: dict, batch: int) -> dict:
        r"""What a proximal rule holds fixed over a rollout's epochs, from one replay of its
        stored decisions (``record``) under the parameters that took them, ``batch`` at a time:
        each hidden spike variable's ``lambda`` (``posterior.lam``, ``(n, n_hid, T)``) and
        ``posterior.base`` ``(n, n_hid)``, its log-likelihood minus ``g`` (:func:`_marginal_terms`).

        The surrogate this gives each hidden neuron ``i`` is the ratio, new over old, of the
        likelihood of what its spikes drive with its spikes summed out,
        ``rho_t = sum_s p_theta(s) L(s) / sum_s p_old(s) L(s)`` with ``L(1) / L(0) = e^lambda``:
        ``log rho_t = g_t(u) - g_t(u_old)``, ``g_t(u) = softplus(u + lambda) - softplus(u)``, whose
        gradient is ``(sigmoid(u + lambda) - sigmoid(u)) grad u``: the posterior error ``q - p``
        at the old parameters, so the first step is the Rao-Blackwellised gradient. The PPO
        clip then bounds how far ``p`` moves towards ``q`` (the ratio of the observed spikes,
        which the posterior error does not follow, would not: with ``s = 0`` observed and
        ``q > p`` under a positive advantage it only falls, and the clip never closes)."""
        topo = policy.topo
        n_in, n_hid, T = topo.n_in, topo.n_hid, policy.encoder.T
        raster = record["raster"]
        n = len(raster)
        lam, base = np.zeros((n, n_hid, T)), np.zeros((n, n_hid))
        if n_hid == 0:
            return {"posterior.lam": lam, "posterior.base": base}
        p = policy.params
        werr = np.empty((min(batch, n), n_hid, T))
        for start in range(0, n, batch):
            part = slice(start, min(start + batch, n))
            r = policy.replay_kernel({"raster": raster[part]}, learn=False)  # potentials and log-likelihoods
            action = record["action"][part] if "action" in record else None
            m = len(r.t_star)
            batched(_posterior_lambdas_range, m, r.raster, r.potential, r.t_star, n_in, n_hid, topo.pre_ptr,
                    topo.pre_syn, topo.post, p.w, p.v, policy.ff_kernel, policy.fb_kernel,
                    *timing_args(policy, action, m), lam[part])
            g = np.empty((m, n_hid))
            batched(_marginal_terms_range, m, r.potential, r.t_star, n_in, lam[part], werr[:m], g)
            base[part] = r.ll_neuron[:, n_in : n_in + n_hid] - g
        return {"posterior.lam": lam, "posterior.base": base}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@njit
def _log_p(s, u):
    """``log P(s | u)`` of a Bernoulli(sigmoid(u)) spike, without overflow."""
    x = -u if s else u
    return -(max(x, 0.0) + np.log1p(np.exp(-abs(x))))


@njit
def _hidden_eligibilities_into(lo, hi, raster, werr, t_star, n_in, n_hid, pre_ptr, pre_syn, post, a, b, ew, ev, eg):
    """:func:`hidden_eligibility` into the kernel's arrays ``ew (B, S, K)``, ``ev (B, N, Kb)``,
    ``eg (B, N)``, event-driven as the kernel's own: each error filtered backwards by the
    kernel once (``F_{t'} = sum_d a(d) werr_{t'+1+d}``), then summed over the spike times of
    each pre-synaptic neuron (``sum_t werr_t xbar_t = sum_{t'} s_{t'} F_{t'}``). ``werr`` is 0 from
    ``t*`` on, and the kernel wrote only the synapses of neurons that spiked before ``t*``
    (the rest are 0), so only those are rewritten. Batch elements ``lo..hi-1`` (see
    :func:`~spikerl.engine.batched`)."""
    B, N, T = raster.shape
    K, D = a.shape
    Kb, Db = b.shape
    out0 = n_in + n_hid
    filt_a = np.zeros((T, n_hid, K))
    filt_b = np.zeros((T, n_hid, Kb))
    times = np.empty(T, np.int64)
    for bi in range(lo, hi):
        last = t_star[bi]
        for h in range(n_hid):
            acc = 0.0
            for t in range(last):
                acc += werr[bi, h, t]
            eg[bi, n_in + h] = acc
            for tp in range(last):
                for k in range(K):
                    f = 0.0
                    for d in range(min(D, last - 1 - tp)):
                        f += a[k, d] * werr[bi, h, tp + 1 + d]
                    filt_a[tp, h, k] = f
                for k in range(Kb):
                    f = 0.0
                    for d in range(min(Db, last - 1 - tp)):
                        f += b[k, d] * werr[bi, h, tp + 1 + d]
                    filt_b[tp, h, k] = f
        for j in range(N):
            ns = 0
            for tp in range(last):
                if raster[bi, j, tp]:
                    times[ns] = tp
                    ns += 1
            if ns == 0:
                continue
            for q in range(pre_ptr[j], pre_ptr[j + 1]):
                syn = pre_syn[q]
                i = post[syn]
                if i < n_in or i >= out0:
                    continue
                for k in range(K):
                    acc = 0.0
                    for m in range(ns):
                        acc += filt_a[times[m], i - n_in, k]
                    ew[bi, syn, k] = acc
            if n_in <= j < out0:
                for k in range(Kb):
                    acc = 0.0
                    for m in range(ns):
                        acc += filt_b[times[m], j - n_in, k]
                    ev[bi, j, k] = acc


@njit
def _flip_reach(pre_ptr, pre_syn, n_in, n_hid, w, v, a, b):
    """How much a hidden spike at ``t`` moves the potentials it reaches ``d + 1`` steps later:
    ``du_w[q - pre_ptr[n_in], d] = sum_k w[syn, k] a[k, d]`` for each synapse ``syn = pre_syn[q]``
    leaving a hidden neuron, ``du_v[i - n_in, d] = sum_k v[i, k] b[k, d]`` through its own
    self-feedback; formed once per call of :func:`_posterior_lambdas`, not once per spike variable."""
    out0 = n_in + n_hid
    K, D = a.shape
    Kb, Db = b.shape
    first = pre_ptr[n_in]
    du_w = np.zeros((pre_ptr[out0] - first, D))
    for q in range(first, pre_ptr[out0]):
        syn = pre_syn[q]
        for d in range(D):
            du = 0.0
            for k in range(K):
                du += w[syn, k] * a[k, d]
            du_w[q - first, d] = du
    du_v = np.zeros((n_hid, Db))
    for i in range(n_in, out0):
        for d in range(Db):
            du = 0.0
            for k in range(Kb):
                du += v[i, k] * b[k, d]
            du_v[i - n_in, d] = du
    return du_w, du_v


@njit
def _posterior_errors(raster, potential, t_star, n_in, n_hid, pre_ptr, pre_syn, post, w, v, a, b, action, gx, gw,
                      marginal):
    """``q - p`` of every hidden spike variable (see :class:`PosteriorSpikes`), ``(B, n_hid, T)``."""
    lam = _posterior_lambdas(raster, potential, t_star, n_in, n_hid, pre_ptr, pre_syn, post, w, v, a, b, action, gx,
                             gw, marginal)
    B, _, T = raster.shape
    err = np.empty((B, n_hid, T))
    _marginal_terms(potential, t_star, n_in, lam, err, np.empty((B, n_hid)))
    return err


@njit
def _posterior_lambdas(raster, potential, t_star, n_in, n_hid, pre_ptr, pre_syn, post, w, v, a, b, action, gx, gw,
                       marginal):
    """:func:`_posterior_lambdas_range` of the whole batch, into a new array ``(B, n_hid, T)``."""
    B, _, T = raster.shape
    lam = np.zeros((B, n_hid, T))
    _posterior_lambdas_range(0, B, raster, potential, t_star, n_in, n_hid, pre_ptr, pre_syn, post, w, v, a, b, action,
                             gx, gw, marginal, lam)
    return lam


@njit
def _posterior_lambdas_range(lo, hi, raster, potential, t_star, n_in, n_hid, pre_ptr, pre_syn, post, w, v, a, b,
                             action, gx, gw, marginal, lam):
    """``lambda`` of every hidden spike variable ``(B, n_hid, T)`` (0 from ``t*`` on): the
    log-likelihood of the spikes it drives with the spike minus without (see :class:`PosteriorSpikes`).
    ``marginal`` (``output_score="marginal"``, a decision continued to ``T`` with its outputs
    silent): the outputs' part is the change of ``log P(action | h)`` (:func:`_timing_terms`)
    instead of that of their observed spikes. Batch elements ``lo..hi-1`` into ``lam`` (their
    rows zero beforehand; see :func:`~spikerl.engine.batched`)."""
    B, N, T = raster.shape
    out0 = n_in + n_hid
    n_out = N - out0
    ll_obs = np.empty((N, T))  # log P of each observed spike, computed once per decision
    du_w, du_v = _flip_reach(pre_ptr, pre_syn, n_in, n_hid, w, v, a, b)
    first, D, Db = pre_ptr[n_in], a.shape[1], b.shape[1]
    u_out = np.empty((n_out, T))  # marginal: the outputs' potentials under a flip
    p, prod = np.empty(n_out), np.empty(gx.shape[0])
    log_j_base, log_j = np.empty(T + 1), np.empty(T + 1)
    log_s_base, log_s_flip = np.empty(T + 1), np.empty(T + 1)
    for bi in range(lo, hi):
        last = t_star[bi]
        for j in range(n_in, N):
            for tp in range(last + 1):
                ll_obs[j, tp] = _log_p(raster[bi, j, tp], potential[bi, j, tp])
        act = action[bi] if marginal else 0
        log_pa = 0.0
        if marginal:
            for o in range(n_out):
                for tp in range(T):
                    u_out[o, tp] = potential[bi, out0 + o, tp]
            log_pa = _log_action_from(u_out, act, gx, gw, 0, 0.0, log_j_base, log_s_base, p, prod)
        for i in range(n_in, out0):
            for t in range(last):  # spikes at t* reach nothing before the decision
                s = raster[bi, i, t]
                sign = 1.0 - 2.0 * s  # the flip: +1 adds the spike, -1 removes it
                # log P(downstream | flipped) - log P(downstream | observed), term by term: each
                # later spike of a neuron the flip reaches, its potential moved by sign du
                log_w = 0.0
                if marginal:  # the outputs: log P(action | h) with the flip minus without
                    moved = False
                    for o in range(n_out):
                        for tp in range(t + 1, T):
                            u_out[o, tp] = potential[bi, out0 + o, tp]
                    for q in range(pre_ptr[i], pre_ptr[i + 1]):
                        j = post[pre_syn[q]]
                        if j >= out0:
                            moved = True
                            for tp in range(t + 1, min(T, t + 1 + D)):
                                u_out[j - out0, tp] += sign * du_w[q - first, tp - t - 1]
                    if moved:
                        for tp in range(t + 1):
                            log_j[tp] = log_j_base[tp]
                        log_w += _log_action_from(u_out, act, gx, gw, t + 1, log_s_base[t + 1], log_j, log_s_flip,
                                                  p, prod) - log_pa
                for q in range(pre_ptr[i], pre_ptr[i + 1]):
                    j = post[pre_syn[q]]
                    if marginal and j >= out0:
                        continue
                    stop = last if j >= out0 else last - 1  # hidden spikes at t* reach no output
                    for tp in range(t + 1, min(stop + 1, t + 1 + D)):
                        log_w += _log_p(raster[bi, j, tp], potential[bi, j, tp] + sign * du_w[q - first, tp - t - 1]) \
                            - ll_obs[j, tp]
                # its own later spikes, through its self-feedback
                for tp in range(t + 1, min(last, t + 1 + Db)):
                    log_w += _log_p(raster[bi, i, tp], potential[bi, i, tp] + sign * du_v[i - n_in, tp - t - 1]) \
                        - ll_obs[i, tp]
                lam[bi, i - n_in, t] = -log_w if s else log_w  # log P(. | spike) - log P(. | no spike)


@njit
def _marginal_terms(potential, t_star, n_in, lam, werr, g):
    """:func:`_marginal_terms_range` of the whole batch."""
    _marginal_terms_range(0, lam.shape[0], potential, t_star, n_in, lam, werr, g)


@njit
def _marginal_terms_range(lo, hi, potential, t_star, n_in, lam, werr, g):
    """For fixed ``lambda`` ``(B, n_hid, T)`` and the current potentials: the per-step errors
    ``werr = sigmoid(u + lambda) - sigmoid(u)`` (into ``werr``, 0 from ``t*`` on) and each hidden
    neuron's ``g = sum_{t < t*} softplus(u + lambda) - softplus(u)`` (into ``g`` ``(B, n_hid)``),
    whose gradient in ``u_t`` is ``werr_t`` (see :meth:`PosteriorSpikes.targets`). Batch
    elements ``lo..hi-1`` (see :func:`~spikerl.engine.batched`)."""
    B, n_hid, T = lam.shape
    for bi in range(lo, hi):
        for h in range(n_hid):
            acc = 0.0
            for t in range(T):
                if t >= t_star[bi]:
                    werr[bi, h, t] = 0.0
                    continue
                u = potential[bi, n_in + h, t]
                x = u + lam[bi, h, t]
                werr[bi, h, t] = 1.0 / (1.0 + np.exp(-x)) - 1.0 / (1.0 + np.exp(-u))
                acc += _softplus(x) - _softplus(u)
            g[bi, h] = acc


def action_quadrature(n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on ``[0, 1]`` that integrate exactly the polynomials of
    degree ``< n_out`` :func:`_action_scores` integrates (``n_out // 2 + 1`` nodes)."""
    x, w = np.polynomial.legendre.leggauss(n_out // 2 + 1)
    return (x + 1.0) / 2.0, w / 2.0


@njit
def _action_scores(raster, potential, t_star, no_spike, action, out0, syn_out, pre, post, a, gx, gw,
                   ll_neuron, ll_out, ew, eg, learn):
    r"""The output layer scored on the action it took instead of its spike pattern at ``t*``
    (``output_score="action"``), in place on a kernel result. First-to-spike breaks a tie
    between outputs that spike together at ``t*`` uniformly, so the decision ``(no output
    spike before t*, action a at t*)`` has probability ``prod_{t<t*} prod_o (1 - p_{o,t})
    Q(a)`` with

        Q(a) = p_a E[1 / (1 + K)] = p_a \int_0^1 prod_{c != a} (1 - p_c + p_c x) dx,

    ``K`` the number of other outputs that spike at ``t*`` (``p = sigmoid(u)`` there); the
    integrand is a polynomial, integrated exactly by the quadrature ``gx``/``gw``
    (:func:`action_quadrature`). Its score replaces the pattern's at ``t*``: the error of
    output ``o`` there becomes ``d log Q / d u_o`` (``1 - p_a`` for the action; for another
    output ``p_c (1 - p_c) dQ/dp_c / Q < 0``: a rival that spiked with the action is pushed
    down under a positive advantage, where the pattern's score pushes it up), so every output
    synapse's eligibility gains ``(d log Q / d u_o - (s_o - p_o)) xbar`` at ``t*`` and each bias
    that difference. The output layer's log-likelihood (its pattern before ``t*`` and
    ``log Q(a)``) goes to ``ll_out`` and to the first output's column of ``ll_neuron`` (the
    other outputs' columns 0): the layer is one unit of a per-neuron ratio. Decisions with no
    output spike (uniform action) keep their scores: the pattern there is the decision."""
    B, N, T = raster.shape
    n_out = N - out0
    K, D = a.shape
    n_q = gx.shape[0]
    p = np.empty(n_out)
    prod = np.empty(n_q)
    delta = np.empty(n_out)
    xbar = np.empty((N, K))
    for bi in range(B):
        last = t_star[bi]
        act = action[bi]
        if not no_spike[bi]:
            for o in range(n_out):
                u = potential[bi, out0 + o, last]
                p[o] = 1.0 / (1.0 + np.exp(-u))
                ll_neuron[bi, out0 + o] -= _log_p(raster[bi, out0 + o, last], u)
            g = _tie_integral(p, act, gx, gw, prod)
            total = _log_sigmoid(potential[bi, out0 + act, last]) + np.log(g)  # log Q(a)
            if learn:
                for o in range(n_out):
                    if o == act:
                        d = 1.0 - p[o]
                    else:
                        dg = 0.0
                        for n in range(n_q):
                            dg += gw[n] * (gx[n] - 1.0) * prod[n] / (1.0 - p[o] * (1.0 - gx[n]))
                        d = p[o] * (1.0 - p[o]) * dg / g
                    delta[o] = d - (raster[bi, out0 + o, last] - p[o])
                    eg[bi, out0 + o] += delta[o]
                for j in range(N):  # each pre-synaptic trace at t*, once
                    for k in range(K):
                        xb = 0.0
                        for tp in range(max(0, last - D), last):
                            if raster[bi, j, tp]:
                                xb += a[k, last - 1 - tp]
                        xbar[j, k] = xb
                for q in range(syn_out.shape[0]):
                    syn = syn_out[q]
                    dq = delta[post[syn] - out0]
                    for k in range(K):
                        ew[bi, syn, k] += dq * xbar[pre[syn], k]
        else:
            total = 0.0  # no output spike: the pattern is the decision
        for o in range(n_out):
            total += ll_neuron[bi, out0 + o]
        ll_out[bi] = total
        ll_neuron[bi, out0] = total
        for o in range(1, n_out):
            ll_neuron[bi, out0 + o] = 0.0



@njit
def _log_sum_exp(x):
    top = x.max()
    tot = 0.0
    for t in range(x.shape[0]):
        tot += np.exp(x[t] - top)
    return top + np.log(tot)


@njit
def _tie_integral(p, act, gx, gw, prod):
    r"""``\int_0^1 prod_{c != act} (1 - p_c + p_c x) dx`` by the quadrature ``gx``/``gw`` (each
    node's product into ``prod``): ``Q(act) / p_act`` of a step at which outputs spike with
    probabilities ``p`` and a tie is broken uniformly."""
    g = 0.0
    for n in range(gx.shape[0]):
        acc = 1.0
        for c in range(p.shape[0]):
            if c != act:
                acc *= 1.0 - p[c] * (1.0 - gx[n])
        prod[n] = acc
        g += gw[n] * acc
    return g


@njit
def _log_action_from(u, act, gx, gw, start, log_s, log_j, log_s_at, p, prod):
    """``log P(a | h)`` (:func:`_timing_terms`) for :func:`_posterior_lambdas`, which moves the
    outputs' potentials ``u`` ``(n_out, T)`` only from step ``start`` on: ``log_j`` before
    ``start`` and the survival ``log_s`` up to it are given, ``log_j`` from ``start`` and
    ``log_s_at[t]`` (the survival up to ``t``) are filled; one ``exp`` and one ``log1p`` per
    output and step (``p`` ``(n_out,)``, ``prod`` scratch)."""
    n_out, T = u.shape
    for t in range(start, T):
        log_s_at[t] = log_s
        step, own = 0.0, 0.0
        for o in range(n_out):
            x = u[o, t]
            e = np.exp(-abs(x))
            l1 = np.log1p(e)
            if x >= 0.0:
                p[o] = 1.0 / (1.0 + e)
                step -= x + l1  # log(1 - p) = log sigmoid(-x)
                if o == act:
                    own = -l1
            else:
                p[o] = e / (1.0 + e)
                step -= l1
                if o == act:
                    own = x - l1
        log_j[t] = log_s + own + np.log(_tie_integral(p, act, gx, gw, prod))
        log_s += step
    log_s_at[T] = log_s
    log_j[T] = log_s - np.log(n_out)
    return _log_sum_exp(log_j)


@njit_inline
def _tie_errors(p, t, act, gx, gw, prod, g, dq):
    """``dq[o, t] = d log Q_t(a) / d u_{o,t}`` of step ``t`` (:func:`_timing_terms`), given the
    step's tie integral ``g`` and its quadrature products ``prod``."""
    for o in range(p.shape[0]):
        if o == act:
            dq[o, t] = 1.0 - p[o, t]
        else:
            dg = 0.0
            for n in range(gx.shape[0]):
                dg += gw[n] * (gx[n] - 1.0) * prod[n] / (1.0 - p[o, t] * (1.0 - gx[n]))
            dq[o, t] = p[o, t] * (1.0 - p[o, t]) * dg / g


@njit
def _timing_terms(u, act, gx, gw, p, log_j, dq, prod, learn):
    r"""``log P(a | h)`` of :func:`_marginal_scores` from the outputs' potentials ``u``
    ``(n_out, T)`` (their history silent), filling ``p = sigmoid(u)``, ``log_j[t] = log S_t
    Q_t(a)`` (``log_j[T]``: no spike by ``T``) and (``learn``) ``dq[o, t] = d log Q_t(a) / d u_{o,t}``."""
    n_out, T = u.shape
    log_s = 0.0
    for t in range(T):
        for o in range(n_out):
            p[o, t] = 1.0 / (1.0 + np.exp(-u[o, t]))
        g = _tie_integral(p[:, t], act, gx, gw, prod)
        log_j[t] = log_s + _log_sigmoid(u[act, t]) + np.log(g)
        if learn:
            _tie_errors(p, t, act, gx, gw, prod, g, dq)
        for o in range(n_out):
            log_s += _log_sigmoid(-u[o, t])
    log_j[T] = log_s - np.log(n_out)
    return _log_sum_exp(log_j)


@njit
def _timing_terms_shared(u, act, gx, gw, p, log_j, dq, prod):
    """:func:`_timing_terms` (learning) with ``p``, ``log p_{a,t}`` and ``log(1 - p_{o,t})``
    from one ``exp`` and one ``log1p`` per output and step (as :func:`_log_action_from`): the
    dense replay's for a decision too improbable for :func:`_timing_probabilities`
    (:func:`_replay_errors`); the kernel path keeps :func:`_timing_terms`' bits."""
    n_out, T = u.shape
    log_s = 0.0
    for t in range(T):
        own, step = 0.0, 0.0  # log p_{a,t}; sum_o log(1 - p_{o,t})
        for o in range(n_out):
            x = u[o, t]
            e = np.exp(-abs(x))
            l1 = np.log1p(e)
            if x >= 0.0:
                p[o, t] = 1.0 / (1.0 + e)
                step -= x + l1
                if o == act:
                    own = -l1
            else:
                p[o, t] = e / (1.0 + e)
                step -= l1
                if o == act:
                    own = x - l1
        g = _tie_integral(p[:, t], act, gx, gw, prod)
        log_j[t] = log_s + own + np.log(g)
        _tie_errors(p, t, act, gx, gw, prod, g, dq)
        log_s += step
    log_j[T] = log_s - np.log(n_out)
    return _log_sum_exp(log_j)


@njit
def _marginal_scores(lo, hi, raster, potential, action, out0, pre, post, a, gx, gw, ll_neuron, ll_out,
                     ew, ev, eg, learn):
    r"""The output layer scored on the action with its timing summed out
    (``output_score="marginal"``), in place on the kernel result of a decision whose input and
    hidden raster runs to ``T`` and whose outputs are clamped silent (the potentials of the
    outputs are then those of every step at which the decision could still have been taken).
    Given that raster ``h``, the action's probability is

        P(a | h) = sum_{t < T} S_t Q_t(a) + S_T / n_out,    S_t = prod_{t' < t} prod_o (1 - p_{o,t'}),

    ``Q_t(a) = p_{a,t} \int_0^1 prod_{c != a} (1 - p_{c,t} + p_{c,t} x) dx`` (a tie broken
    uniformly, as :func:`_action_scores`; the last term: no output spike by ``T``, uniform
    action). Its gradient in ``u_{o,t}`` is ``-p_{o,t} R_t + w_t d log Q_t(a) / d u_{o,t}``, with
    ``w_t`` the posterior probability that the decision was taken at ``t`` and ``R_t`` that it
    was taken later: the score of the decision's timing is replaced by its expectation given
    ``h`` and the action (Rao-Blackwellised). The output synapses' eligibilities are those
    errors times their pre-synaptic traces summed over ``t < T`` (over each input's spike times);
    the outputs' self-feedback eligibilities are 0 (no output spiked); ``log P(a | h)`` goes to
    ``ll_out`` and to the first output's column of ``ll_neuron`` (the others 0): the output
    layer is one unit of a per-neuron ratio. Batch elements ``lo..hi-1`` (see
    :func:`~spikerl.engine.batched`)."""
    B, N, T = raster.shape
    n_out = N - out0
    K = a.shape[0]
    p = np.empty((n_out, T))
    log_j = np.empty(T + 1)
    dq = np.empty((n_out, T))
    err = np.empty((n_out, T))
    prod = np.empty(gx.shape[0])
    filt = np.empty((T, n_out, K))
    summed = np.empty((n_out, K, out0))
    for bi in range(lo, hi):
        _marginal_one(bi, raster[bi], potential[bi, out0:, :], action[bi], out0, pre, post, a, gx, gw,
                      ll_neuron, ll_out, ew, ev, eg, learn, p, log_j, dq, err, prod, filt, summed)


@njit_inline
def _marginal_one(bi, raster, u, act, out0, pre, post, a, gx, gw, ll_neuron, ll_out, ew, ev, eg, learn,
                  p, log_j, dq, err, prod, filt, summed):
    """:func:`_marginal_scores` of batch element ``bi``: its raster ``(N, T)`` (only the
    inputs' and hidden neurons' rows are read) and its outputs' potentials ``u`` ``(n_out, T)``;
    the rest are the caller's scratch buffers."""
    n_out, T = u.shape
    K, D = a.shape
    log_p = _timing_terms(u, act, gx, gw, p, log_j, dq, prod, learn)
    ll_out[bi] = log_p
    ll_neuron[bi, out0] = log_p
    for o in range(1, n_out):
        ll_neuron[bi, out0 + o] = 0.0
    if not learn:
        return
    later = np.exp(log_j[T] - log_p)  # R_t: the decision taken after t (from t = T - 1 down)
    for t in range(T - 1, -1, -1):
        w_t = np.exp(log_j[t] - log_p)
        for o in range(n_out):
            err[o, t] = w_t * dq[o, t] - p[o, t] * later
        later += w_t
    for o in range(n_out):
        acc = 0.0
        for t in range(T):
            acc += err[o, t]
        eg[bi, out0 + o] = acc
        for k in range(ev.shape[2]):
            ev[bi, out0 + o, k] = 0.0
        for tp in range(T):  # F_{o,k,t'} = sum_d a(k, d) err_{o, t'+1+d}
            for k in range(K):
                f = 0.0
                for d in range(min(D, T - 1 - tp)):
                    f += a[k, d] * err[o, tp + 1 + d]
                filt[tp, o, k] = f
    # each pre-synaptic neuron's filtered errors summed over its spike times, in time order; a
    # silent step adds an exact 0 (no branch on unpredictable spikes; the neurons in the inner loop)
    for o in range(n_out):
        for k in range(K):
            for j in range(out0):
                summed[o, k, j] = 0.0
            for tp in range(T):
                f = filt[tp, o, k]
                for j in range(out0):
                    summed[o, k, j] += raster[j, tp] * f
    for syn in range(post.shape[0]):
        o = post[syn] - out0
        if o >= 0:
            for k in range(K):
                ew[bi, syn, k] = summed[o, k, pre[syn]]


@njit_inline
def _dense_input_weights(n_in, n_out, pre, post, w, a):
    """``(n_out, n_in)``: the kernel's ``w a(0)`` of each input-to-output synapse
    (:func:`~spikerl.engine.presynaptic_order_into`), 0 where none (a topology has at most one
    synapse per pair of neurons)."""
    wd = np.zeros((n_out, n_in))
    for syn in range(pre.shape[0]):
        wd[post[syn] - n_in, pre[syn]] = w[syn, 0] * a[0, 0]
    return wd


@njit_inline
def _silent_scratch(n_in, N, T, pre, post, w, a, n_q):
    """What :func:`_continue_marginal` and :func:`_act_silent` set up for a network of ``N``
    neurons, ``n_in`` of them inputs: the input-to-output weights ``w a(0)``
    (:func:`_dense_input_weights`); scratch: the inputs' raster ``(T, n_in)`` (time-major: the
    scorer reads it by step), the spiking inputs per step and their counts, the outputs'
    potentials, then :func:`_marginal_one`'s buffers and its empty eligibility arrays."""
    n_out, K = N - n_in, a.shape[0]
    return (_dense_input_weights(n_in, n_out, pre, post, w, a), np.empty((T, n_in), np.uint8),
            np.empty((T, n_in), np.int64), np.empty(T, np.int64), np.empty((n_out, T)), np.empty((n_out, T)),
            np.empty(T + 1), np.empty((n_out, T)), np.empty((n_out, T)), np.empty(n_q), np.empty((T, n_out, K)),
            np.empty((n_out, K, n_in)), np.zeros((0, 0, 0)), np.zeros((0, 0)))


@njit_inline
def _silent_outputs(raster, wd, bias, n_in, ff_decay, spiking, n_spiking, u):
    """The output potentials ``u`` ``(n_out, T)`` of a network without hidden neurons whose
    inputs spike as ``raster`` ``(T, n_in)`` and whose outputs stay silent, with a geometric
    one-basis kernel of ratio ``ff_decay``: the kernel's additions in the kernel's order
    (:func:`~spikerl.engine._decide_range`: ``u = cur_ff + cur_fb + bias``, ``cur_fb = 0`` with
    no output spike; each step's input spikes into ``cur_ff`` in input order), so the same bits.
    ``spiking``/``n_spiking``: the inputs that spike at each step, listed in input order (the
    caller may read them after)."""
    n_out, T = u.shape
    for t in range(T):  # listed per step, without a branch on unpredictable spikes
        m = 0
        for j in range(n_in):
            spiking[t, m] = j
            m += raster[t, j]
        n_spiking[t] = m
    for o in range(n_out):
        cur = 0.0  # the kernel's cur_ff of output o
        for t in range(T):
            u[o, t] = cur + 0.0 + bias[n_in + o]  # + cur_fb: 0, no output spikes
            if t == T - 1:
                break
            cur *= ff_decay
            for m in range(n_spiking[t]):
                cur += wd[o, spiking[t, m]]


@njit_inline
def _decision_traces(packed, b, decay, x):
    """The inputs' filtered traces ``x[t, j] = sum_{t' < t} decay^(t - 1 - t') s_{j, t'}``
    ``(T, n_in)`` (time-major: a step's row is one vector) of stored decision ``b``, from its
    bits ``packed`` ``(B, N, ceil(T/8))`` (:meth:`~spikerl.policy.SpikingPolicy.record`; only
    the inputs' rows are read): what a geometric one-basis kernel of ratio ``decay`` feeds an
    output at step ``t`` per unit of ``w a(0)``. One decision's traces stay in the core's
    nearest cache (a minibatch's would not): :func:`_replay_errors` forms them, reads them for
    the potentials and for the eligibilities, then moves to the next decision."""
    T, n_in = x.shape
    for j in range(n_in):
        x[0, j] = 0.0
    for t in range(1, T):
        byte, shift = (t - 1) >> 3, 7 - ((t - 1) & 7)
        for j in range(n_in):
            x[t, j] = decay * x[t - 1, j] + ((packed[b, j, byte] >> shift) & 1)


@njit_inline
def _timing_probabilities(u, act, gx, gw, p, j, dq, prod):
    """:func:`_timing_terms` (learning) in probabilities: ``P(a | h)`` returned, ``j[t] = S_t
    Q_t(a)`` (``j[T] = S_T / n_out``) filled, with the survival ``S_t`` a running product and one
    ``exp`` per output and step the only transcendental (the log-space form takes four more per
    step). The caller falls back on :func:`_timing_terms_shared` when the probability is too
    small for its terms to keep their precision (:data:`_TINY`)."""
    n_out, T = u.shape
    surv = 1.0
    for t in range(T):
        own, step = 0.0, 1.0  # p_{a,t}; prod_o (1 - p_{o,t})
        for o in range(n_out):
            x = u[o, t]
            e = np.exp(-abs(x))
            big = 1.0 / (1.0 + e)  # sigmoid(|x|); sigmoid(-|x|) = e big
            if x >= 0.0:
                p[o, t] = big
                step *= e * big
            else:
                p[o, t] = e * big
                step *= big
            if o == act:
                own = p[o, t]
        g = _tie_integral(p[:, t], act, gx, gw, prod)
        j[t] = surv * own * g
        _tie_errors(p, t, act, gx, gw, prod, g, dq)
        surv *= step
    j[T] = surv / n_out
    total = 0.0
    for t in range(T + 1):
        total += j[t]
    return total


_TINY = 1e-200
"""Below this ``P(a | h)`` the dense replay scores a decision in log space: the terms of a
smaller probability could lose their precision to underflow (doubles reach 1e-308)."""


@njit_sums
def _replay_errors(lo, hi, packed, T, decay, wd, bias, action, gx, gw, ll_out, elig, elig_bias):
    """:func:`_marginal_scores` of stored decisions ``lo..hi-1`` of a network without hidden
    neurons, ``T`` steps, from their bits (:func:`_decision_traces`): the outputs' potentials
    run silent to ``T``, ``u[o, t] = bias[o] + sum_j wd[o, j] x[t, j]`` (``wd``: ``w a(0)`` of each
    input-to-output synapse, :func:`_dense_input_weights`), then ``log P(a | h)`` into ``ll_out``
    (from :func:`_timing_probabilities`; for a decision so improbable that its terms could
    underflow, in log space, :func:`_timing_terms_shared`) and, from the errors ``err[o, t] =
    d log P / d u[o, t]``, each decision's eligibilities, formed while its traces are in the
    nearest cache: ``elig[b, o, j] = sum_t err[o, t] x[t, j]`` ``(B, n_out, n_in)`` (an output
    synapse's, over ``a(0)``) and ``elig_bias[b, o] = sum_t err[o, t]`` (a bias's); the modulated
    sum over the decisions is then one product
    (:meth:`~spikerl.policy.SpikingPolicy._replay_marginal_gradient`)."""
    n_out, n_in = wd.shape
    u, p, j, dq = np.empty((n_out, T)), np.empty((n_out, T)), np.empty(T + 1), np.empty((n_out, T))
    err, w = np.empty((n_out, T)), np.empty(T + 1)
    prod = np.empty(gx.shape[0])
    x = np.empty((T, n_in))
    for b in range(lo, hi):
        _decision_traces(packed, b, decay, x)
        for o in range(n_out):
            for t in range(T):
                acc = 0.0
                for i in range(n_in):
                    acc += wd[o, i] * x[t, i]
                u[o, t] = acc + bias[o]
        prob = _timing_probabilities(u, action[b], gx, gw, p, j, dq, prod)
        if prob >= _TINY:  # w[t]: the posterior probability that the decision was taken at t (T: never)
            ll_out[b] = np.log(prob)
            for t in range(T + 1):
                w[t] = j[t] / prob
        else:  # the same in log space (j: log S_t Q_t(a))
            log_p = _timing_terms_shared(u, action[b], gx, gw, p, j, dq, prod)
            ll_out[b] = log_p
            for t in range(T + 1):
                w[t] = np.exp(j[t] - log_p)
        later = w[T]  # R_t: the decision taken after t (from t = T - 1 down)
        for t in range(T - 1, -1, -1):
            for o in range(n_out):
                err[o, t] = w[t] * dq[o, t] - p[o, t] * later
            later += w[t]
        for o in range(n_out):
            eb = 0.0
            for i in range(n_in):
                elig[b, o, i] = 0.0
            for t in range(T):
                c = err[o, t]
                eb += c
                for i in range(n_in):
                    elig[b, o, i] += c * x[t, i]
            elig_bias[b, o] = eb


@njit
def _continue_marginal(lo, hi, decided, t_star, p_in, rand, action, n_in, pre, post, w, bias, ff_decay, a, gx, gw,
                       raster, ll_neuron, ll_out):
    """:meth:`~spikerl.policy.SpikingPolicy._continue` of a network without hidden neurons
    (scored, not learning), in one pass per decision: the inputs as they spiked up to ``t*``
    (``decided``, the decision's raster ``(B, T, N)``) and sampled after it as the kernel
    samples them (spike iff ``rand[b, j, t] < p_in[b, j, t]``), into ``raster`` ``(B, N, T)``
    (the outputs' rows 0); the outputs' potentials run silent to ``T``
    (:func:`_silent_outputs`) and the action's log-probability with its timing summed out
    (:func:`_marginal_scores`) into ``ll_out`` and ``ll_neuron`` (the inputs' 0): what the
    kernel's clamped pass and the scorer give, bit for bit."""
    N, T = raster.shape[1], raster.shape[2]
    n_out = N - n_in
    (wd, steps, spiking, n_spiking, u, p, log_j, dq, err, prod, filt, summed, empty3,
     empty2) = _silent_scratch(n_in, N, T, pre, post, w, a, gx.shape[0])
    for bi in range(lo, hi):
        for t in range(T):  # the branch on t* outside the neurons' loop
            if t <= t_star[bi]:
                for j in range(n_in):
                    steps[t, j] = decided[bi, t, j]
            else:
                for j in range(n_in):
                    steps[t, j] = 1 if rand[bi, j, t] < p_in[bi, j, t] else 0
        for j in range(n_in):
            for t in range(T):
                raster[bi, j, t] = steps[t, j]
        for o in range(n_out):
            for t in range(T):
                raster[bi, n_in + o, t] = 0
        _silent_outputs(steps, wd, bias, n_in, ff_decay, spiking, n_spiking, u)
        for i in range(n_in):
            ll_neuron[bi, i] = 0.0
        _marginal_one(bi, steps.T, u, action[bi], n_in, pre, post, a, gx, gw, ll_neuron, ll_out, empty3, empty3,
                      empty2, False, p, log_j, dq, err, prod, filt, summed)


@njit
def _act_silent(lo, hi, p_in, rates, from_rates, rand_out, tie, n_in, pre, post, pre_ptr, w, bias, ff_decay, a, gx, gw,
                action, t_star, no_spike, spikes, sops, raster, packed, ll_neuron, ll_out):
    """Sampled decisions of a network without hidden neurons whose inputs' probabilities are 0
    or 1 (a binary code: an input spikes iff ``0 < p``), continued to ``T`` and scored with their
    timing summed out, in one pass per decision (``from_rates``: the inputs' spikes of the regular
    code computed from its rates ``(B, n_in)``, as :func:`~spikerl.coding._regular_code` computes
    its probabilities; else read from ``p_in``): what the kernel's decision
    (:func:`~spikerl.engine._decide_validated`, the inputs' uniforms 0 and the outputs'
    ``rand_out`` ``(B, n_out, T)``, ties by ``tie``) and its continuation
    (:func:`_continue_marginal`) give, bit for bit. The inputs spike as the code says whatever
    the outputs do, and before ``t*`` no output has spiked, so the outputs' potentials are their
    silent ones (:func:`_silent_outputs`) both for the decision and for its score: the outputs
    are sampled on them step by step until one spikes (``t*``) or ``T - 1``, the action is a
    spiking output (ties uniform by ``tie``; none: uniform), then spikes and synaptic operations
    up to ``t*`` are counted (from :func:`_silent_outputs`' lists) and the action scored (:func:`_marginal_one`). Writes ``action``,
    ``t_star``, ``no_spike``, ``spikes`` ``(B, 3)``, ``sops``, the continued raster ``(B, N, T)``
    (the outputs' rows 0; a raster of no rows: none written) and its bits ``packed`` ``(B, N, ceil(T/8))``
    (:meth:`~spikerl.policy.SpikingPolicy.record`'s), ``ll_neuron`` (the inputs' 0) and ``ll_out``."""
    N, T = raster.shape[1], raster.shape[2]
    n_out, K = N - n_in, a.shape[0]
    (wd, steps, spiking, n_spiking, u, p, log_j, dq, err, prod, filt, summed, empty3,
     empty2) = _silent_scratch(n_in, N, T, pre, post, w, a, gx.shape[0])
    fired = np.empty(n_out, np.bool_)
    n_bytes = packed.shape[2]
    fan = np.empty(n_in, np.int64)  # an input spike's synaptic operations
    below, bits = np.empty(n_in), np.empty(n_in, np.uint8)
    keep_raster = raster.shape[0] > 0  # else only the bits
    for j in range(n_in):
        fan[j] = (pre_ptr[j + 1] - pre_ptr[j]) * K
    for bi in range(lo, hi):
        # the inputs' spikes, step by step (each step's inputs contiguous, on vector registers)
        if from_rates:  # the regular code's spike test, as _regular_code computes its probabilities
            for j in range(n_in):
                below[j] = np.floor(0.5 + 0.0 * rates[bi, j])
        for t in range(T):
            if from_rates:
                for j in range(n_in):
                    above = np.floor(0.5 + (t + 1.0) * rates[bi, j])
                    steps[t, j] = 1 if above - below[j] > 0.0 else 0
                    below[j] = above
            else:
                for j in range(n_in):
                    steps[t, j] = 1 if 0.0 < p_in[bi, j, t] else 0
        for byte in range(n_bytes):  # their bits (big-endian, as pack_bits)
            for j in range(n_in):
                bits[j] = 0
            for bit in range(min(8, T - 8 * byte)):
                for j in range(n_in):
                    bits[j] |= steps[8 * byte + bit, j] << (7 - bit)
            for j in range(n_in):
                packed[bi, j, byte] = bits[j]
        if keep_raster:
            for j in range(n_in):
                for t in range(T):
                    raster[bi, j, t] = steps[t, j]
        for o in range(n_out):
            if keep_raster:
                for t in range(T):
                    raster[bi, n_in + o, t] = 0
            for byte in range(n_bytes):
                packed[bi, n_in + o, byte] = 0
        _silent_outputs(steps, wd, bias, n_in, ff_decay, spiking, n_spiking, u)
        last, n_first = T - 1, 0
        for t in range(T):  # the kernel's draws: output o spikes at t iff rand < sigmoid(u)
            n_first = 0
            for o in range(n_out):
                fired[o] = rand_out[bi, o, t] < _sigmoid(u[o, t])
                n_first += fired[o]
            if n_first > 0:
                last = t
                break
        if n_first > 0:  # the kernel's decoder (first to spike, a tie uniform)
            pick = min(int(tie[bi] * n_first), n_first - 1)
            seen = 0
            for o in range(n_out):
                if fired[o]:
                    if seen == pick:
                        action[bi] = o
                    seen += 1
            no_spike[bi] = False
        else:
            action[bi] = min(int(tie[bi] * n_out), n_out - 1)
            no_spike[bi] = True
        c_in, n_sops = 0, 0
        for t in range(last + 1):
            c_in += n_spiking[t]
            if t < last:  # the spikes before t* reach their targets
                for k in range(n_spiking[t]):
                    n_sops += fan[spiking[t, k]]
        spikes[bi, 0], spikes[bi, 1], spikes[bi, 2] = c_in, 0, n_first
        sops[bi] = n_sops
        t_star[bi] = last
        for i in range(n_in):
            ll_neuron[bi, i] = 0.0
        _marginal_one(bi, steps.T, u, action[bi], n_in, pre, post, a, gx, gw, ll_neuron, ll_out, empty3, empty3,
                      empty2, False, p, log_j, dq, err, prod, filt, summed)


# -- reward factors -------------------------------------------------------------------------

class Transition:
    """One vector step as a rule sees it (arrays over environments).

    ``next_values``, the critic's value of each next observation (the final one at an episode
    end), is either given or computed on first use by ``value_of_next()``: a rule that needs it
    only at episode ends and rollout ends does not pay for a critic evaluation every step.
    """

    __slots__ = ("valid", "out", "features", "rewards", "terminated", "done", "_next_values", "_value_of_next")

    def __init__(self, valid, out, features, rewards, terminated, done, next_values=None, *, value_of_next=None):
        if (next_values is None) == (value_of_next is None):
            raise ValueError("Transition needs exactly one of next_values and value_of_next")
        self.valid = valid  # bool: the env acted (False on a NEXT_STEP reset step)
        self.out = out  # PolicyOutput of the decisions taken
        self.features = features  # encoder features of the observations acted on
        self.rewards, self.terminated = rewards, terminated
        self.done = done  # terminated or truncated (and valid)
        self._next_values, self._value_of_next = next_values, value_of_next

    @property
    def next_values(self) -> np.ndarray:
        if self._next_values is None:
            self._next_values = self._value_of_next()
        return self._next_values


class Update(NamedTuple):
    """One actor step: the ascent direction and the hidden rates it came with (regulariser)."""

    grad: np.ndarray
    hidden_rate: np.ndarray | None


class ReturnScaler:
    """Rewards divided by the running standard deviation of the discounted return (as SB3's
    ``VecNormalize``), so the critic and advantages see the same scale on every task."""

    CLIP = 10.0
    """Scaled rewards are clipped to +-CLIP (VecNormalize's ``clip_reward``)."""

    def __init__(self, n_envs: int, gamma: float):
        self.gamma = gamma
        self.ret = np.zeros(n_envs)
        # a prior of variance 1 worth 1e-4 samples, as VecNormalize's RunningMeanStd: the first
        # returns (all equal on a -1-per-step task) cannot blow the scale up
        self.count, self.mean, self.m2 = 1e-4, 0.0, 1e-4

    def __call__(self, rewards: np.ndarray, valid: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Rewards scaled by the running deviation after this step's returns joined it (Chan
        et al.'s parallel update of count, mean and sum of squares), in one compiled pass
        whose every operation is the numpy statement's (sums included: :func:`_scale_rewards`)."""
        out = np.empty(len(rewards))
        self.count, self.mean, self.m2 = _scale_rewards(
            self.ret, np.asarray(rewards, np.float64), np.asarray(valid, np.bool_), np.asarray(done, np.bool_),
            self.gamma, self.count, self.mean, self.m2, self.CLIP, out)
        return out

    def state_dict(self) -> dict:
        return {"ret": self.ret.copy(), "stats": np.array([self.count, self.mean, self.m2])}

    def load_state_dict(self, state: dict) -> None:
        self.ret = np.array(state["ret"], dtype=np.float64)
        self.count, self.mean, self.m2 = map(float, state["stats"])


@njit
def _scale_rewards(ret, rewards, valid, done, gamma, count, mean, m2, clip, out):
    """:meth:`ReturnScaler.__call__`: ``ret`` updated in place, the scaled rewards into ``out``,
    returns the new ``(count, mean, m2)``. The same operations in the same order as
    ``ret = where(valid, ret * gamma + rewards, ret); x = ret[valid]; delta = x.mean() - mean;
    total = count + n; mean += delta * n / total; m2 += ((x - x.mean()) ** 2).sum() + delta**2 *
    count * n / total; ret[done] = 0; out = clip(rewards / sqrt(m2 / total + 1e-8), -clip, clip)``
    (numpy's pairwise sums: :func:`~spikerl._numba.pairwise_sum`), so the same bits."""
    B = ret.shape[0]
    x = np.empty(B)
    n = 0
    for b in range(B):
        if valid[b]:
            ret[b] = ret[b] * gamma + rewards[b]
            x[n] = ret[b]
            n += 1
    if n:
        x_mean = pairwise_sum(x, 0, n) / n
        delta = x_mean - mean
        total = count + n
        mean += delta * n / total
        for i in range(n):
            d = x[i] - x_mean
            x[i] = d * d
        m2 += pairwise_sum(x, 0, n) + delta * delta * count * n / total
        count = total
    for b in range(B):
        if done[b]:
            ret[b] = 0.0
    scale = np.sqrt(m2 / count + 1e-8)
    for b in range(B):
        out[b] = min(max(rewards[b] / scale, -clip), clip)
    return count, mean, m2


def clipped_modulator(rho: np.ndarray, adv: np.ndarray, clip: float,
                      dual_clip: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(M, gate)``: the derivative of PPO's clipped surrogate ``min(rho A, clip(rho, 1 - eps,
    1 + eps) A)`` with respect to ``log rho``, which is ``rho A`` where the unclipped branch is
    taken (``gate``) and 0 where the clipped one is; times ``e = grad log p`` it is the update.

    ``dual_clip`` (``c > 1``, Ye et al. 2020) bounds the surrogate of a negative advantage
    from below by ``c A``: ``max(min(...), c A)``, so a decision whose ratio has grown past
    ``c`` while its advantage is negative stops pushing (without it, its modulator ``rho A``
    grows with ``rho`` without bound)."""
    gate = ~(((adv > 0) & (rho > 1 + clip)) | ((adv < 0) & (rho < 1 - clip)))
    if dual_clip is not None:
        gate &= ~((adv < 0) & (rho > dual_clip))
    return np.where(gate, rho * adv, 0.0), gate


def ratio_modulator(log_prob: np.ndarray, old: np.ndarray, adv: np.ndarray, clip: float,
                    dual_clip: float | None = None, units: np.ndarray | None = None, *, old_of_units: bool = False,
                    out: np.ndarray | None = None):
    """:func:`clipped_modulator` of ``rho = exp(clip(log_prob - old, -20, 20))`` for log-probabilities
    ``(B, U)`` and advantages ``(B,)``, in one compiled pass: ``(M, rho, log_ratio, open)``,
    ``open`` the number of unclipped entries (what ``gate.sum()`` counts). ``units``: only those
    columns (the units that own parameters; ``M`` is 0 in the others, ``rho`` and ``log_ratio``
    have those columns only, and ``open`` counts among them); ``old_of_units``: ``old`` holds
    those columns only ``(B, len(units))``, in their order. ``out``: ``M``'s array ``(B, U)``,
    0 outside the units (a buffer the caller reuses: only the units' columns are written)."""
    U = np.shape(log_prob)[1]
    units = np.arange(U, dtype=np.int64) if units is None else np.ascontiguousarray(units, dtype=np.int64)
    cols = np.arange(len(units), dtype=np.int64) if old_of_units else units
    B = np.shape(log_prob)[0]
    if out is None:
        out = np.zeros((B, U))
    elif out.shape != (B, U) or out.dtype != np.float64:
        raise ValueError(f"ratio_modulator's out must be float64 of shape {(B, U)}, got {out.dtype} {out.shape}")
    return _ratio_modulator(np.ascontiguousarray(log_prob, dtype=np.float64), np.ascontiguousarray(old, dtype=np.float64),
                            np.ascontiguousarray(adv, dtype=np.float64), float(clip),
                            np.inf if dual_clip is None else float(dual_clip), units, cols, out)


@njit
def _ratio_modulator(log_prob, old, adv, clip, dual, units, cols, M):
    B = log_prob.shape[0]
    n_u = units.shape[0]
    rho, log_ratio = np.empty((B, n_u)), np.empty((B, n_u))
    hi, lo = 1 + clip, 1 - clip
    n_open = 0
    for b in range(B):
        a = adv[b]
        for c in range(n_u):
            u = units[c]
            lr = log_prob[b, u] - old[b, cols[c]]
            r = np.exp(min(max(lr, -20.0), 20.0))  # beyond, the gate is shut anyway
            log_ratio[b, c], rho[b, c] = lr, r
            if not ((a > 0 and r > hi) or (a < 0 and (r < lo or r > dual))):
                M[b, u] = r * a
                n_open += 1
            else:
                M[b, u] = 0.0
    return M, rho, log_ratio, n_open


def standardized(a: np.ndarray) -> np.ndarray:
    """``(a - a.mean()) / (a.std() + 1e-8)`` of advantages ``a`` ``(B,)``, in one compiled pass
    of numpy's operations (its pairwise sums: :func:`~spikerl._numba.pairwise_sum`), so the
    same bits."""
    return _standardized(np.ascontiguousarray(a, dtype=np.float64))


@njit
def _standardized(a):
    n = a.shape[0]
    mean = pairwise_sum(a, 0, n) / n
    sq = np.empty(n)
    for i in range(n):
        d = a[i] - mean
        sq[i] = d * d
    std = np.sqrt(pairwise_sum(sq, 0, n) / n)
    out = np.empty(n)
    for i in range(n):
        out[i] = (a[i] - mean) / (std + 1e-8)
    return out


def modulated_gradient(M: np.ndarray, elig: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """``mean_d M[d, unit[p]] e[d, p]``: each parameter's eligibility times the modulator of
    its unit (``M`` with one column: the same modulator for every parameter)."""
    if M.shape[1] == 1:
        return M[:, 0] @ elig / len(M)
    return gated_sum(M, (elig,), unit)


def gated_sum(M: np.ndarray, parts: tuple, unit: np.ndarray) -> np.ndarray:
    """:func:`modulated_gradient` with one modulator per unit, of eligibilities given as
    ``(B, P_i)`` blocks whose concatenation is ``e`` (so a policy need not concatenate them):
    each synapse gated by its own neuron, summed over decisions in order, as einsum("bp,bp->p",
    M[:, unit], e) does, without building M[:, unit]."""
    blocks = tuple(np.ascontiguousarray(b, dtype=np.float64) for b in parts)
    blocks += (np.zeros((len(M), 0)),) * (3 - len(blocks))
    return _gated_sum(np.ascontiguousarray(M, dtype=np.float64), *blocks,
                      np.ascontiguousarray(unit, dtype=np.int64)) / len(M)


def replayed_gradient(policy, record: dict, modulator) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mean_d M[d, unit] e_d, hidden rates)`` of stored decisions replayed under the current
    parameters, ``M = modulator(replayed)`` from their log-probabilities. A policy that gates its
    eligibilities without forming them (``replay_gradient``) does; any other replays them whole."""
    fast = getattr(policy, "replay_gradient", None)
    if fast is not None:
        return fast(record, modulator)
    return whole_replay_gradient(policy, record, modulator)


def whole_replay_gradient(policy, record: dict, modulator) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`replayed_gradient` through ``replay_record``: the ``(B, P)`` eligibilities formed."""
    r = policy.replay_record(record)
    return modulated_gradient(modulator(r), r.elig, policy.param_neuron), r.hidden_rate


@njit
def _gated_sum(M, e0, e1, e2, unit):
    """``sum_b M[b, unit[p]] e[b, p]`` with ``e`` the concatenation of ``e0, e1, e2``."""
    B = M.shape[0]
    n0, n1, n2 = e0.shape[1], e1.shape[1], e2.shape[1]
    g = np.zeros(n0 + n1 + n2)
    for b in range(B):
        m = M[b]
        for p in range(n0):
            g[p] += m[unit[p]] * e0[b, p]
        for p in range(n1):
            g[n0 + p] += m[unit[n0 + p]] * e1[b, p]
        for p in range(n2):
            g[n0 + n1 + p] += m[unit[n0 + n1 + p]] * e2[b, p]
    return g


class RolloutBuffer:
    """``n_steps x n_envs`` decisions, as SB3's ``RolloutBuffer``: per vector step named arrays
    (what replays each decision, its old log-probabilities, reward, episode end, features
    for the critic), then GAE(lambda) over them and flat views of the valid decisions."""

    def __init__(self, n_steps: int, n_envs: int, gamma: float, lam: float):
        self.n_steps, self.n_envs, self.gamma, self.lam = n_steps, n_envs, gamma, lam
        self.reset()

    def reset(self) -> None:
        self.pos = 0
        self.data: dict = {}

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def add(self, **arrays: np.ndarray) -> None:
        """One vector step: arrays with the environments first."""
        for name, value in arrays.items():
            if name not in self.data:
                self.data[name] = np.zeros((self.n_steps, *value.shape), value.dtype)
            self.data[name][self.pos] = value
        self.pos += 1

    def advantages(self, values: np.ndarray, last_values: np.ndarray) -> np.ndarray:
        """GAE(lambda) ``(n_steps, n_envs)``; an episode end cuts the chain (a truncated
        episode's bootstrap is already in its last reward)."""
        d, n = self.data, self.n_steps
        return _gae(np.ascontiguousarray(d["reward"][:n], dtype=np.float64), np.ascontiguousarray(d["done"][:n], dtype=np.bool_),
                    np.ascontiguousarray(values, dtype=np.float64), np.asarray(last_values, dtype=np.float64),
                    self.gamma, self.gamma * self.lam)

    def flat(self, name: str, keep: np.ndarray) -> np.ndarray:
        """Array ``name`` with steps and environments flattened, rows ``keep``."""
        v = self.data[name]
        return v.reshape(self.n_steps * self.n_envs, *v.shape[2:])[keep]

    def state_dict(self) -> dict:
        out = {f"buf.{k}": v[: self.pos].copy() for k, v in self.data.items()}
        out["pos"] = np.array(self.pos)
        return out

    def load_state_dict(self, state: dict) -> None:
        self.reset()
        self.pos = int(state.get("pos", 0))
        for k, v in state.items():
            if k.startswith("buf."):
                arr = np.zeros((self.n_steps, *v.shape[1:]), v.dtype)
                arr[: v.shape[0]] = v
                self.data[k[4:]] = arr


@njit
def _gae(reward, done, values, last_values, gamma, gamma_lam):
    """:meth:`RolloutBuffer.advantages`, backwards in time, each element as numpy's statement
    computes it: ``delta = reward[t] + gamma * next_v * live - values[t]``, ``gae = delta +
    gamma_lam * live * gae`` (``live = not done[t]``, ``next_v`` the next step's value)."""
    n_steps, n_envs = reward.shape
    adv = np.zeros((n_steps, n_envs))
    for e in range(n_envs):
        gae = 0.0
        next_v = last_values[e]
        for t in range(n_steps - 1, -1, -1):
            live = 0.0 if done[t, e] else 1.0
            delta = reward[t, e] + gamma * next_v * live - values[t, e]
            gae = delta + gamma_lam * live * gae
            adv[t, e] = gae
            next_v = values[t, e]
    return adv


class ProximalRule:
    """Batched proximal reward factor (PPO's clipped surrogate, kept local; see the module
    docstring): ``step`` collects into a :class:`RolloutBuffer`, ``_train`` replays it."""

    needs_eligibility = False
    """Whether acting must compute eligibilities: no, the replay computes them; acting needs
    only the decisions' log-probabilities and rasters."""

    def __init__(self, n_envs: int, policy, critic: Critic, *, gamma: float, lam: float, n_steps: int, n_epochs: int,
                 batch_size: int, clip_range: float, ent_coef: float, target_kl: float | None, ratio: str,
                 normalize_advantage: bool, scale_rewards: bool, rng: np.random.Generator,
                 dual_clip: float | None = None):
        self.policy, self.critic, self.rng, self.gamma = policy, critic, rng, gamma
        self.n_epochs, self.batch_size, self.clip, self.ent_coef = n_epochs, batch_size, clip_range, ent_coef
        self.target_kl, self.ratio, self.normalize = target_kl, ratio, normalize_advantage
        self.dual_clip = dual_clip
        self.buffer = RolloutBuffer(n_steps, n_envs, gamma, lam)
        self.scaler = ReturnScaler(n_envs, gamma) if scale_rewards else None
        self.stats: dict = {}
        """The last training round's figures (SB3's names, logged as ``train/...``)."""

    def step(self, tr: Transition) -> Iterator[Update]:
        rewards = self.scaler(tr.rewards, tr.valid, tr.done) if self.scaler is not None else tr.rewards
        # truncation: bootstrap with the critic (a terminated episode is worth 0 afterwards)
        trunc = tr.done & ~tr.terminated
        if trunc.any():
            rewards = np.where(trunc, rewards + self.gamma * tr.next_values, rewards)
        rewards = rewards * tr.valid
        record = self.policy.record(tr.out, tr.features)  # what replays each decision
        self.buffer.add(valid=tr.valid, done=tr.done, reward=rewards, features=tr.features,
                        log_prob=self._ratio_terms(tr.out), **{"record." + k: v for k, v in record.items()})
        if not self.buffer.full:
            return
        yield from self._train(tr.next_values)  # V of the observation after the last step
        self.buffer.reset()

    def _ratio_terms(self, r) -> np.ndarray:
        """``(B, U)`` log-probabilities whose ratios gate the update: one unit (the joint
        trajectory, or the outputs given the hidden spikes) or one per neuron."""
        if self.ratio == "neuron":
            return r.ll_neuron
        return (r.log_prob if self.ratio == "joint" else r.ll_out)[:, None]

    def _train(self, last_values: np.ndarray) -> Iterator[Update]:
        buf = self.buffer
        features = buf.data["features"]
        phi = self.critic.augment(features.reshape(-1, features.shape[-1])).reshape(*features.shape[:2], -1)
        values = self.critic.predict(phi)
        adv = buf.advantages(values, last_values)
        returns = adv + values
        keep = np.flatnonzero(buf.data["valid"].reshape(-1))
        phi, returns, adv = phi.reshape(-1, phi.shape[-1]), returns.reshape(-1), adv.reshape(-1)
        if keep.size < len(phi):  # some envs were resetting (NEXT_STEP autoreset): their steps hold no decision
            phi, returns, adv = phi[keep], returns[keep], adv[keep]
        self.critic.observe(phi, returns)  # before the fit: MixCritic's parts scored on unseen returns
        old = buf.flat("log_prob", keep)
        records = {k[7:]: buf.flat(k, keep) for k in buf.data if k.startswith("record.")}
        n = keep.size
        mb = min(self.batch_size, n)
        targets = getattr(self.policy.estimator, "targets", None)
        if targets is not None:  # what the hidden estimator's surrogate holds fixed over the epochs
            records.update(targets(self.policy, records, mb))
        clipped, kls, epochs = [], [], 0
        # per-neuron ratios: the neurons that own learnable parameters (an input's ratio is 1, and
        # counting it would dilute the clip fraction)
        learnable = getattr(self.policy, "learnable", None)
        units = None if learnable is None else np.unique(self.policy.param_neuron[learnable])
        per_unit = units is not None and old.shape[1] > 1
        if per_unit:  # only those units' old log-probabilities are ever compared
            old = np.ascontiguousarray(old[:, units])
        m_buf: dict = {}  # the modulators' array, reused: only the units' columns are ever written
        empty = {k for k, v in records.items() if v.size == 0}  # nothing to gather (no hidden neuron's targets)
        for _ in range(self.n_epochs):
            order = self.rng.permutation(n)
            epochs += 1
            stop = False
            for start in range(0, n - mb + 1, mb):
                idx = order[start : start + mb]
                self.critic.regress(phi[idx], returns[idx])
                a = adv[idx]
                if self.normalize and a.size > 1:
                    a = standardized(a)

                def modulator(r, a=a, old=old[idx]):
                    log_prob = self._ratio_terms(r)
                    out = m_buf.get(log_prob.shape)
                    if out is None:
                        out = m_buf[log_prob.shape] = np.zeros(log_prob.shape)
                    M, rho, log_ratio, n_open = ratio_modulator(log_prob, old, a, self.clip, self.dual_clip,
                                                                units if per_unit else None, old_of_units=per_unit,
                                                                out=out)
                    if self.ent_coef:  # score-function gradient of the entropy: -(log p - mean) e
                        M = M - self.ent_coef * (log_prob - log_prob.mean(0))
                    clipped.append(1.0 - n_open / rho.size)  # among the compared units (rho: (mb, units))
                    kls.append(float(np.mean(np.sum(rho - 1.0 - log_ratio, axis=1))))  # units independent given the past
                    return M

                batch = {k: v[: len(idx)] if k in empty else v[idx] for k, v in records.items()}
                grad, hidden_rate = replayed_gradient(self.policy, batch, modulator)
                if self.target_kl is not None and kls[-1] > 1.5 * self.target_kl:
                    stop = True
                    break
                yield Update(grad, hidden_rate)
            if stop:
                break
        var = float(np.var(returns))
        self.stats = {"clip_fraction": float(np.mean(clipped)) if clipped else 0.0,
                      "approx_kl": float(np.mean(kls)) if kls else 0.0, "n_epochs": epochs,
                      "value_loss": float(np.mean((returns - self.critic.predict(phi)) ** 2)),
                      # SB3's: how much of the returns' variance the critic explained before this round
                      # (returns - values before the round are the advantages)
                      "explained_variance": 1.0 - float(np.var(adv)) / var if var > 0 else float("nan")}

    def state_dict(self) -> dict:
        """The rollout collected so far and the reward scale (for exact resumption)."""
        out = self.buffer.state_dict()
        if self.scaler is not None:
            out.update({f"scaler.{k}": v for k, v in self.scaler.state_dict().items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state)
        if self.scaler is not None and "scaler.ret" in state:
            self.scaler.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("scaler.")})


class MonteCarloRule:
    """REINFORCE with a critic baseline and optional per-parameter control variates."""

    needs_eligibility = True

    def __init__(self, n_envs: int, critic: Critic, *, gamma: float, batch_size: int,
                 normalize_advantage: bool, control_variate: bool):
        self.n_envs, self.critic, self.gamma = n_envs, critic, gamma
        self.batch_size, self.normalize, self.control_variate = batch_size, normalize_advantage, control_variate
        self.episodes = [dict(e=[], r=[], f=[]) for _ in range(n_envs)]
        self.ready_e, self.ready_a = [], []
        self.ready_f, self.ready_g = [], []

    def step(self, tr: Transition) -> Iterator[Update]:
        for b in np.flatnonzero(tr.valid):
            self.observe(b, tr.out.elig[b], tr.rewards[b], tr.features[b])
            if tr.done[b]:
                self.end_episode(b, 0.0 if tr.terminated[b] else tr.next_values[b])
        grad = self.gradient()
        if grad is not None:
            rate = tr.out.hidden_rate
            yield Update(grad, rate[tr.valid] if rate is not None and tr.valid.any() else None)

    def observe(self, b: int, elig: np.ndarray, reward: float, features: np.ndarray) -> None:
        ep = self.episodes[b]
        ep["e"].append(elig)
        ep["r"].append(reward)
        ep["f"].append(features)

    def end_episode(self, b: int, bootstrap: float) -> None:
        ep = self.episodes[b]
        if not ep["r"]:
            return
        G = np.empty(len(ep["r"]))
        acc = bootstrap
        for t in range(len(ep["r"]) - 1, -1, -1):
            acc = ep["r"][t] + self.gamma * acc
            G[t] = acc
        f = np.asarray(ep["f"])
        self.ready_e.append(np.asarray(ep["e"]))
        self.ready_f.append(f)
        self.ready_g.append(G)
        self.ready_a.append(G - self.critic.value(f))
        self.episodes[b] = dict(e=[], r=[], f=[])

    def gradient(self) -> np.ndarray | None:
        """The actor gradient once ``batch_size`` finished decisions are ready, else ``None``."""
        if sum(len(a) for a in self.ready_a) < self.batch_size:
            return None
        e = np.concatenate(self.ready_e)
        adv = np.concatenate(self.ready_a)
        f = np.concatenate(self.ready_f)
        G = np.concatenate(self.ready_g)
        self.ready_e, self.ready_a, self.ready_f, self.ready_g = [], [], [], []
        x = self.critic.augment(f)
        self.critic.observe(x, G)
        self.critic.regress(x, G)  # regress V(s_t) on the return
        if self.normalize and adv.size > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        if self.control_variate:
            e2 = e * e
            cv = (e2 * adv[:, None]).sum(0) / (e2.sum(0) + 1e-8)
            return ((adv[:, None] - cv[None, :]) * e).mean(0)
        return adv @ e / adv.size

    def state_dict(self) -> dict:
        """Unfinished episodes and ready batches, as arrays (for exact resumption)."""
        out = {}
        for b, ep in enumerate(self.episodes):
            out[f"ep{b}.r"] = np.asarray(ep["r"], dtype=np.float64)
            if ep["r"]:
                out[f"ep{b}.e"] = np.asarray(ep["e"])
                out[f"ep{b}.f"] = np.asarray(ep["f"])
        for i, (e, a, f, g) in enumerate(zip(self.ready_e, self.ready_a, self.ready_f, self.ready_g)):
            out[f"ready{i}.e"], out[f"ready{i}.a"], out[f"ready{i}.f"], out[f"ready{i}.g"] = e, a, f, g
        return out

    def load_state_dict(self, state: dict) -> None:
        for b in range(self.n_envs):
            r = state.get(f"ep{b}.r", np.zeros(0))
            if r.size:
                self.episodes[b] = dict(e=list(state[f"ep{b}.e"]), r=list(r), f=list(state[f"ep{b}.f"]))
            else:
                self.episodes[b] = dict(e=[], r=[], f=[])
        self.ready_e, self.ready_a, self.ready_f, self.ready_g = [], [], [], []
        i = 0
        while f"ready{i}.e" in state:
            self.ready_e.append(state[f"ready{i}.e"])
            self.ready_a.append(state[f"ready{i}.a"])
            self.ready_f.append(state[f"ready{i}.f"])
            self.ready_g.append(state[f"ready{i}.g"])
            i += 1


class ActorCriticRule:
    """Online actor-critic with eligibility traces across decisions (no episode buffer)."""

    needs_eligibility = True

    def __init__(self, n_envs: int, n_params: int, critic: Critic, *, gamma: float, lam: float):
        self.critic, self.gamma, self.lam = critic, gamma, lam
        self.z = np.zeros((n_envs, n_params))
        self.zc = np.zeros((n_envs, critic.c.size))

    def step(self, tr: Transition) -> Iterator[Update]:
        """One vector step: one actor update (mean over valid environments)."""
        valid, done = tr.valid, tr.done
        fa = self.critic.augment(tr.features)
        v = fa @ self.critic.c
        delta = tr.rewards + self.gamma * np.where(tr.terminated, 0.0, tr.next_values) - v
        delta = np.where(valid, delta, 0.0)
        decay = self.gamma * self.lam
        self.z *= decay
        self.z[valid] += tr.out.elig[valid]
        self.zc *= decay
        self.zc[valid] += fa[valid]
        n = max(int(valid.sum()), 1)
        self.critic.step(delta @ self.zc / n)
        grad = delta @ self.z / n
        self.z[done] = 0.0
        self.zc[done] = 0.0
        rate = tr.out.hidden_rate
        yield Update(grad, rate[valid] if rate is not None and valid.any() else None)

    def state_dict(self) -> dict:
        return {"z": self.z.copy(), "zc": self.zc.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.z, self.zc = np.array(state["z"]), np.array(state["zc"])
