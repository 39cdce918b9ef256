"""The acting part of a spiking agent: encoder + GLM network + decoder, parameters as one
flat vector (``theta``) with ``GLMParams`` views into it.

A :class:`SpikingPolicy` turns a batch of observations into actions with one compiled
call, and (``learn=True``) returns the eligibilities flattened in the order of ``theta``.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from ._numba import njit
from .coding import Encoder, RegularCode
from .engine import DECODERS, Workspace, _decide_validated, batched, geometric_decay
from .kernels import check_bank, exponential_bank, raised_cosine_bank
from .network import GLMParams, Topology, check_params, init_params, layered, topology_from_edges
from .rules import (_act_silent, _action_scores, _continue_marginal, _dense_input_weights, _marginal_scores,
                    _replay_errors, action_quadrature, gated_sum, kernel_eligibility, modulated_gradient,
                    whole_replay_gradient)


class PolicyOutput(NamedTuple):
    """A batch of decisions; ``elig`` is ``(B, P)`` in ``theta`` order or ``None``.

    When scored (always when learning), ``log_prob`` is ``log P(decision)`` under the current parameters: of the
    whole spike trajectory (hidden and output neurons up to ``t*``) for a spiking policy, of
    the action for an ANN; ``raster`` ``(B, N, T)`` holds what replays the decision exactly
    (``None`` for an ANN, which replays from its features).
    """

    action: np.ndarray
    elig: np.ndarray | None
    ll_out: np.ndarray
    spikes: np.ndarray  # (B, 3) input, hidden, output
    sops: np.ndarray
    latency: np.ndarray  # steps until the decision, t* + 1
    no_spike: np.ndarray
    hidden_rate: np.ndarray | None  # (B, n_hid) spikes per step, when learning
    log_prob: np.ndarray | None = None
    ll_neuron: np.ndarray | None = None  # (B, N) each neuron's log-likelihood (ANN: (B, 1))
    raster: np.ndarray | None = None
    packed: np.ndarray | None = None  # the raster as bits (B, N, ceil(T/8)), when the decision wrote them


def decision_summary(stats: np.ndarray) -> dict:
    """Per-decision averages of counters ``[decisions, input, hidden, output spikes, sops, latency]``."""
    n = max(stats[0], 1.0)
    s = stats[1:] / n
    return {"decisions": int(stats[0]), "input_spikes": s[0], "hidden_spikes": s[1],
            "output_spikes": s[2], "sops": s[3], "latency": s[4]}


class Replayed(NamedTuple):
    """A stored decision replayed under the current parameters (see :meth:`SpikingPolicy.replay`)."""

    log_prob: np.ndarray  # (B,) log P(hidden and output trajectory)
    ll_out: np.ndarray  # (B,) log P(output spikes | hidden spikes)
    ll_neuron: np.ndarray  # (B, N) each neuron's log-likelihood
    elig: np.ndarray  # (B, P) in theta order, shaped by the hidden-neuron estimator
    hidden_rate: np.ndarray | None


@runtime_checkable
class Policy(Protocol):
    """What an agent's loop, evaluation, conversion, export and energy accounting use of a
    policy; :class:`SpikingPolicy` and :class:`~spikerl.pg_mlp.MLPPolicy` implement it.

    Parameters are one flat float64 vector ``theta``; ``learnable``, ``hidden_mask`` and
    ``param_neuron`` describe its entries (trained or not, modulated by a hidden-neuron
    estimator or not, the unit each belongs to); ``estimator`` forms hidden eligibilities
    (``None``: every score is exact). ``spiking`` says how a decision costs: spikes and
    synaptic operations (counted in :class:`PolicyOutput`) or multiply-accumulates (``macs``).
    ``scores_without_learning``: ``act(learn=False)`` still returns ``log_prob`` and
    ``ll_neuron`` (a rule that replays its decisions then acts without eligibilities; a policy
    that says False is asked to learn whenever the agent trains).
    """

    encoder: Encoder
    theta: np.ndarray
    learnable: np.ndarray
    hidden_mask: np.ndarray
    param_neuron: np.ndarray
    estimator: object
    spiking: bool
    scores_without_learning: bool

    @property
    def n_params(self) -> int: ...

    def act(self, obs, rng: np.random.Generator, *, deterministic=False, learn: bool = False,
            features: np.ndarray | None = None, keep_raster: bool = False) -> PolicyOutput:
        """Decide for a batch of observations (or of encoder ``features``); ``learn``: with
        eligibilities and log-probabilities."""

    def record(self, out: PolicyOutput, features: np.ndarray) -> dict:
        """What replays each decision of ``out`` exactly (arrays with a leading batch axis)."""

    def replay_record(self, record: dict) -> Replayed:
        """Stored decisions under the current parameters: log-probabilities and eligibilities."""

    def set_theta(self, theta: np.ndarray) -> None:
        """Copy ``theta`` in."""

    def regularise(self, grad: np.ndarray, hidden_rate: np.ndarray | None) -> None:
        """Add the policy's own regularisers to an ascent direction ``grad`` (in place)."""

    def constrain(self, theta: np.ndarray) -> None:
        """Project updated parameters onto the policy's constraints (in place)."""

    def state_meta(self) -> dict:
        """JSON-able facts a saved file needs to rebuild the policy."""

    def state_arrays(self) -> dict:
        """Arrays a saved file stores."""

    def load_state_arrays(self, arrays: dict, meta: dict) -> None:
        """Replace the parameters (and structure) by saved ones, validated."""


def make_bank(kind: str, n_basis: int, tau: float, memory: int, name: str) -> np.ndarray:
    if kind == "exponential":
        if n_basis != 1:
            raise ValueError(f"{name}: the exponential kernel has exactly one basis, got n_basis={n_basis}")
        return exponential_bank(tau, memory)
    if kind == "raised_cosine":
        return raised_cosine_bank(n_basis, memory)
    raise ValueError(f"{name}: unknown kernel {kind!r}; expected 'exponential' or 'raised_cosine'")


class SpikingPolicy:
    """Encoder -> GLM network -> first-to-spike (or rate) decoder.

    ``rate_reg``/``target_rate`` pull hidden firing rates towards a target through their
    biases (:meth:`regularise`); ``out_bias_max`` caps output biases (:meth:`constrain`).
    """

    spiking = True
    scores_without_learning = True

    def __init__(self, encoder: Encoder, topo: Topology, ff_kernel, fb_kernel, params: GLMParams, decoder: str,
                 estimator=None, *, rate_reg: float = 0.0, target_rate: float = 0.1, out_bias_max: float | None = None):
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {decoder!r}")
        self.encoder, self.decoder = encoder, decoder
        self.estimator = estimator
        """How hidden neurons' eligibilities are formed (``None``: their plain score, the joint estimator)."""
        self.causal = False
        """Hidden neurons' scores and log-likelihoods stop before the decision step ``t*``, which
        no output sees (the same expected gradient with less noise; see :func:`~spikerl.engine.decide`)."""
        self.rate_reg, self.target_rate, self.out_bias_max = float(rate_reg), float(target_rate), out_bias_max
        self._output_score = "pattern"
        self.workspace = Workspace()
        self.replay_workspace = Workspace()
        self.extend_workspace = Workspace()  # a sampled decision continued to T (output_score="marginal")
        self._replay_zeros = None  # the inputs and uniforms a replay passes (every neuron is clamped)
        self._replay_elig = None  # eligibility arrays of a forward-only replay (_replay_potentials)
        self._zeros = None  # what a continuation with nothing to draw compares with (_no_uniforms)
        self._act_uniforms = None  # a binary code's acting uniforms, the inputs' 0 (_output_uniforms)
        self._replay_bufs = None  # the dense replay's eligibilities and per-neuron log-likelihoods (_replay_marginal_gradient)
        self._set_network(topo, ff_kernel, fb_kernel, params)

    def _set_network(self, topo: Topology, ff_kernel, fb_kernel, params: GLMParams) -> None:
        """Topology, kernels and parameters (validated), and what derives from them."""
        if topo.n_in != self.encoder.n_inputs:
            raise ValueError(f"the network has {topo.n_in} input neurons but the encoder makes {self.encoder.n_inputs}")
        self.topo = topo
        params = check_params(topo, params, ff_kernel, fb_kernel)  # validated once; act() skips the checks
        self.ff_kernel, self.fb_kernel = check_bank(ff_kernel, "ff_kernel"), check_bank(fb_kernel, "fb_kernel")
        self.shapes = [p.shape for p in params]
        self.theta = np.concatenate([p.ravel() for p in params]).astype(np.float64)
        self.params = self._views(self.theta)
        n_in, n_hid = topo.n_in, topo.n_hid
        # which entries of theta belong to hidden neurons (modulated by the learning signal)
        post_of = np.concatenate([
            np.repeat(topo.post, ff_kernel.shape[0]),
            np.repeat(np.arange(topo.n_neurons), fb_kernel.shape[0]),
            np.arange(topo.n_neurons),
        ])
        self.hidden_mask = (post_of >= n_in) & (post_of < n_in + n_hid)
        self._post_of = post_of
        self.learnable = post_of >= n_in
        self._syn_out = np.flatnonzero(topo.post >= n_in + n_hid).astype(np.int64)
        self._quadrature = action_quadrature(topo.n_out)
        self._set_units()
        off = params.w.size + params.v.size
        self.bias_slice = slice(off, off + topo.n_neurons)
        T = self.encoder.T
        self._dense_replay = (n_hid == 0 and geometric_decay(self.ff_kernel, T) >= 0.0
                              and geometric_decay(self.fb_kernel, T) >= 0.0 and bool(np.all(topo.pre < n_in)))
        self._post_out = topo.post - n_in - n_hid  # each synapse's post-synaptic output (the dense replay's row)
        self._out_index = self._post_out * n_in + topo.pre  # each synapse's entry of an output x input matrix, flat

    @property
    def output_score(self) -> str:
        """What the output neurons' score covers at the decision step ``t*``: ``pattern`` (the
        spikes they fired there), ``action`` (the action taken, ties summed out; see
        :func:`~spikerl.rules._action_scores`) or ``marginal`` (the action taken, its timing
        summed out given the input and hidden raster continued to ``T``; see
        :func:`~spikerl.rules._marginal_scores`). The last two: first-to-spike only."""
        return self._output_score

    @output_score.setter
    def output_score(self, value: str) -> None:
        if value not in ("pattern", "action", "marginal"):
            raise ValueError(f"output_score must be 'pattern', 'action' or 'marginal', got {value!r}")
        if value != "pattern" and self.decoder != "first_to_spike":
            raise ValueError(f"output_score={value!r} needs the first_to_spike decoder, got {self.decoder!r}")
        self._output_score = value
        self._set_units()

    def _set_units(self) -> None:
        """``param_neuron``: the neuron each entry of theta belongs to (its post-synaptic
        neuron); scored on the action, the output layer is one unit (its first neuron)."""
        unit = self._post_of
        if self._output_score != "pattern":
            out0 = self.topo.n_in + self.topo.n_hid
            unit = np.where(unit >= out0, out0, unit)
        self.param_neuron = unit

    def _score_actions(self, r, action: np.ndarray, learn: bool) -> None:
        """Scored on the action (:attr:`output_score`): a kernel result's output log-likelihoods
        and (``learn``) output eligibilities rewritten in place for the actions taken."""
        gx, gw = self._quadrature
        out0 = self.topo.n_in + self.topo.n_hid
        _action_scores(r.raster, r.potential, r.t_star, r.no_spike, np.asarray(action, np.int64), out0,
                       self._syn_out, self.topo.pre, self.topo.post, self.ff_kernel, gx, gw, r.ll_neuron, r.ll_out,
                       r.ew if learn else np.zeros((0, 0, 0)), r.eg if learn else np.zeros((0, 0)), learn)

    def _score_marginal(self, r, action: np.ndarray, learn: bool) -> None:
        """Scored on the action with its timing summed out (:attr:`output_score` ``marginal``): a
        kernel result of a continued decision (outputs clamped silent to ``T``) rewritten in place."""
        gx, gw = self._quadrature
        topo = self.topo
        empty3 = np.zeros((0, 0, 0))
        batched(_marginal_scores, len(r.t_star), r.raster, r.potential, np.asarray(action, np.int64),
                topo.n_in + topo.n_hid, topo.pre, topo.post, self.ff_kernel, gx, gw, r.ll_neuron,
                r.ll_out, r.ew if learn else empty3, r.ev if learn else empty3,
                r.eg if learn else np.zeros((0, 0)), learn)
        r.action[:] = action  # the kernel's own is the uniform draw of a silent decision

    def _continue(self, r, p_in: np.ndarray, rng: np.random.Generator, learn: bool):
        """A sampled decision ``r`` continued to ``T``: inputs and hidden neurons clamped to what
        they did up to ``t*`` and sampled afresh after it (they do not depend on the outputs,
        so this draws them from their law given the decision so far), every output clamped
        silent; the kernel result (in :attr:`extend_workspace`) scored on ``r``'s actions with
        their timing summed out (:func:`~spikerl.rules._marginal_scores`)."""
        B, N, T = r.raster.shape
        if not learn and self._packed_replay:  # no hidden neuron: one compiled pass (the same bits)
            return self._continue_silent(r, p_in, rng)
        out0 = self.topo.n_in + self.topo.n_hid
        clamp = np.full((B, N, T), -1, np.int8)
        upto = np.arange(T)[None, None, :] <= r.t_star[:, None, None]
        clamp[:, :out0] = np.where(upto, r.raster[:, :out0], -1)
        clamp[:, out0:] = 0
        uniforms, tie = self._no_uniforms(B) if self._nothing_to_draw else (None, None)
        r2 = _decide_validated(self.topo, self.params, self.ff_kernel, self.fb_kernel, p_in, rng, uniforms=uniforms,
                               tie=tie, decoder=self.decoder,
                               learn=learn, clamp=clamp, workspace=self.extend_workspace, causal=self.causal,
                               hidden_eligibility=getattr(self.estimator, "rewrite", None) is None)
        self._score_marginal(r2, r.action, learn)
        return r2

    def _continue_silent(self, r, p_in: np.ndarray, rng: np.random.Generator):
        """:meth:`_continue` of a network without hidden neurons, not learning: the kernel's
        clamped pass and the output scorer in one compiled pass
        (:func:`~spikerl.rules._continue_marginal`), from the same random numbers (drawn as the
        kernel draws them), so the same raster and log-likelihoods. An input code whose
        probabilities are 0 or 1 (``binary``: the default regular code) needs no random number
        (an input spikes iff ``0 < p``), and none is drawn."""
        B, N, T = r.raster.shape
        topo, gx, gw = self.topo, *self._quadrature
        if self._nothing_to_draw:
            uniforms = self._no_uniforms(B)[0]
        else:
            buf = self.extend_workspace.get(B, N, T, topo.n_synapses, self.ff_kernel.shape[0],
                                            self.fb_kernel.shape[0], False)
            uniforms = rng.random(out=buf["uniforms"])
            rng.random(out=buf["tie"])  # the kernel's draw (unused: no output spikes)
        raster, ll_out, ll_neuron = np.empty((B, N, T), np.uint8), np.empty(B), np.empty((B, N))
        batched(_continue_marginal, B, r.raster.transpose(0, 2, 1), r.t_star, p_in, uniforms,
                np.asarray(r.action, np.int64), topo.n_in, topo.pre, topo.post, self.params.w, self.params.bias,
                geometric_decay(self.ff_kernel, T), self.ff_kernel, gx, gw, raster, ll_neuron, ll_out)
        return r._replace(ll_out=ll_out, ll_neuron=ll_neuron, raster=raster, potential=None)

    @classmethod
    def build(cls, encoder: Encoder, n_actions: int, *, n_hidden: int, skip: bool, recurrent: bool, feedback: bool,
              p_connect: float, kernel: str, n_basis: int, tau: float, memory: int, fb_tau: float,
              decoder: str, rng: np.random.Generator, **init) -> "SpikingPolicy":
        topo = layered(encoder.n_inputs, n_hidden, n_actions, skip=skip, recurrent=recurrent, feedback=feedback,
                       p_connect=p_connect, seed=int(rng.integers(2**31)))
        a = make_bank(kernel, n_basis, tau, memory, "kernel")
        b = exponential_bank(fb_tau, memory)
        params = init_params(topo, a.shape[0], 1, rng=rng, **init)
        return cls(encoder, topo, a, b, params, decoder)

    def _views(self, theta: np.ndarray) -> GLMParams:
        out, off = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            out.append(theta[off : off + size].reshape(shape))
            off += size
        return GLMParams(*out)

    def state_meta(self) -> dict:
        return {"n_in": self.topo.n_in, "n_hid": self.topo.n_hid, "n_out": self.topo.n_out}

    def state_arrays(self) -> dict:
        return {"theta": self.theta, "post": self.topo.post, "pre": self.topo.pre,
                "ff_kernel": self.ff_kernel, "fb_kernel": self.fb_kernel}

    def load_state_arrays(self, arrays: dict, meta: dict) -> None:
        """Replace topology, kernels and parameters by saved ones (validated)."""
        topo = topology_from_edges(meta["n_in"], meta["n_hid"], meta["n_out"], arrays["post"], arrays["pre"])
        ff, fb = check_bank(arrays["ff_kernel"], "ff_kernel"), check_bank(arrays["fb_kernel"], "fb_kernel")
        shapes = [(topo.n_synapses, ff.shape[0]), (topo.n_neurons, fb.shape[0]), (topo.n_neurons,)]
        sizes = [int(np.prod(x)) for x in shapes]
        theta = np.asarray(arrays["theta"], dtype=np.float64)
        if theta.shape != (sum(sizes),):
            raise ValueError(f"theta has {theta.size} entries but the saved topology needs {sum(sizes)}")
        parts = np.split(theta, np.cumsum(sizes)[:-1])
        params = GLMParams(*[q.reshape(sh) for q, sh in zip(parts, shapes)])
        self._set_network(topo, ff, fb, params)

    def regularise(self, grad: np.ndarray, hidden_rate: np.ndarray | None) -> None:
        """Firing-rate regulariser: pull each hidden neuron's rate (``hidden_rate`` ``(B, n_hid)``,
        averaged over the batch) towards ``target_rate`` through its bias, with strength ``rate_reg``."""
        n_in, n_hid = self.topo.n_in, self.topo.n_hid
        if self.rate_reg > 0 and n_hid and hidden_rate is not None and hidden_rate.size:
            grad[self.bias_slice][n_in : n_in + n_hid] -= self.rate_reg * (hidden_rate.mean(0) - self.target_rate)

    def constrain(self, theta: np.ndarray) -> None:
        """Keep output biases <= ``out_bias_max`` (in place)."""
        if self.out_bias_max is not None:
            g = theta[self.bias_slice]
            out0 = self.topo.n_in + self.topo.n_hid
            np.minimum(g[out0:], self.out_bias_max, out=g[out0:])

    def set_theta(self, theta: np.ndarray) -> None:
        """Copy ``theta`` in (the ``params`` views follow)."""
        self.theta[:] = theta

    @property
    def n_params(self) -> int:
        return int(self.theta.size)

    def act(self, obs, rng: np.random.Generator, *, deterministic: bool | str = False, learn: bool = False,
            features: np.ndarray | None = None, keep_raster: bool = False, score: bool = True,
            sparse_draws: bool = False) -> PolicyOutput:
        """Decide for a batch of observations (or of precomputed encoder ``features``).
        ``keep_raster`` returns the kernel's spike array of each decision also when not learning;
        ``score=False`` skips the log-likelihoods (``ll_out`` NaN; ``predict`` needs none); scored
        without ``learn``, the output has ``log_prob`` and ``ll_neuron`` but no eligibilities.
        ``sparse_draws``: draw random numbers only for the neurons whose spikes are random (with
        no hidden neuron and a binary input code, the outputs: :meth:`_output_uniforms`), as the
        training loop acts; otherwise the kernel's stream (every neuron's), which ``predict``'s
        compiled one-observation path and the exported C policy follow number for number."""
        features = self.encoder.features_of(obs) if features is None else features
        # scored on the action with its timing summed out, the continued decision is what is scored
        # (and replayed): the decision itself needs neither log-likelihoods nor eligibilities
        cont = self._output_score == "marginal" and (score or learn) and not deterministic
        if cont and not learn and sparse_draws and self._fused_acting and self._nothing_to_draw and self._packed_replay:
            return self._act_silent(features, rng, keep_raster)
        p_in = self.encoder.temporal(features)
        uniforms = None
        if sparse_draws and not deterministic and self._nothing_to_draw:
            uniforms = self._output_uniforms(rng, p_in.shape[0])
        # an estimator that rewrites the hidden neurons' eligibilities (the posterior) needs none of the kernel's
        r = _decide_validated(self.topo, self.params, self.ff_kernel, self.fb_kernel, p_in, rng, uniforms=uniforms,
                              deterministic=deterministic, decoder=self.decoder, learn=learn and not cont,
                              workspace=self.workspace, score=score and not cont, causal=self.causal,
                              hidden_eligibility=getattr(self.estimator, "rewrite", None) is None)
        if self._output_score == "action" and (score or learn):
            self._score_actions(r, r.action, learn)
        s = r  # what scores the decision (and replays it)
        if cont:
            s = self._continue(r, p_in, rng, learn)
        if not learn:
            # copies: the workspace is overwritten by the next call (arrays a continuation made
            # for itself, not the workspace's, need none)
            ws = self.extend_workspace if cont else self.workspace
            copy = lambda x: x.copy() if ws.holds(x) else x  # noqa: E731
            log_prob = ll_neuron = None
            if score:  # what a rule that replays needs of the acting decision (no eligibilities)
                log_prob, ll_neuron = self._trajectory_log_prob(s), copy(s.ll_neuron)
            return PolicyOutput(r.action.copy(), None, copy(s.ll_out), r.spikes.copy(), r.sops.copy(), r.t_star + 1,
                                r.no_spike.copy(), None, log_prob, ll_neuron, copy(s.raster) if keep_raster else None)
        log_prob, elig, hidden_rate = self._learning_terms(s)
        return PolicyOutput(r.action.copy(), elig, s.ll_out.copy(), r.spikes.copy(), r.sops.copy(), r.t_star + 1,
                            r.no_spike.copy(), hidden_rate, log_prob, s.ll_neuron.copy(), s.raster.copy())

    _fused_acting = True
    """Whether :meth:`act` takes :meth:`_act_silent` where it can (off: the kernel's decision
    and continuation, the path it replaces, with the same results)."""

    def _act_silent(self, features: np.ndarray, rng: np.random.Generator, keep_raster: bool) -> PolicyOutput:
        """:meth:`act` sampled, scored and continued to ``T``, with :attr:`_nothing_to_draw` and
        the dense replay's network (the training loop's decisions of the default agent): the
        kernel's decision and its continuation in one compiled pass
        (:func:`~spikerl.rules._act_silent`; the regular code's spikes computed there from its
        rates, any other binary code's read from its probabilities) from the same random numbers
        (the outputs' ``n_out T``, then the tie draw), so the same decisions, figures, raster and
        log-likelihoods; the raster's bits too (``packed``, what :meth:`record` stores)."""
        code = self.encoder.temporal_code
        from_rates = isinstance(code, RegularCode)
        if from_rates:
            rates, p_in = code.rates(features), np.zeros((0, 0, 0))
        else:
            rates, p_in = np.zeros((0, 0)), self.encoder.temporal(features)
        B, T = len(features), self.encoder.T
        topo = self.topo
        N, n_in = topo.n_neurons, topo.n_in
        gx, gw = self._quadrature
        rand_out = rng.random((B, N - n_in, T))  # what _output_uniforms draws, then the kernel's tie draw
        tie = rng.random(B)
        action, t_star, no_spike = np.empty(B, np.int64), np.empty(B, np.int64), np.empty(B, np.bool_)
        spikes, sops, ll_neuron, ll_out = np.empty((B, 3), np.int64), np.empty(B, np.int64), np.empty((B, N)), np.empty(B)
        raster, packed = np.empty((B if keep_raster else 0, N, T), np.uint8), np.empty((B, N, (T + 7) // 8), np.uint8)
        batched(_act_silent, B, p_in, rates, from_rates, rand_out, tie, n_in, topo.pre, topo.post, topo.pre_ptr, self.params.w,
                self.params.bias, geometric_decay(self.ff_kernel, T), self.ff_kernel, gx, gw, action, t_star, no_spike,
                spikes, sops, raster, packed, ll_neuron, ll_out)
        return PolicyOutput(action, None, ll_out, spikes, sops, t_star + 1, no_spike, None,
                            ll_out + 0.0, ll_neuron, raster if keep_raster else None, packed)  # no hidden neuron: log P is ll_out

    @property
    def _nothing_to_draw(self) -> bool:
        """Whether continuing a decision to ``T`` needs no random number: no hidden neuron, and an
        input code whose probabilities are 0 or 1 (``binary``: the default regular code)."""
        return self.topo.n_hid == 0 and getattr(self.encoder.temporal_code, "binary", False)

    def _no_uniforms(self, B: int) -> tuple[np.ndarray, np.ndarray]:
        """Zero uniforms ``(B, N, T)`` and tie draws ``(B,)`` for a continuation with
        :attr:`_nothing_to_draw` (an input spikes iff ``0 < p``; the outputs are clamped silent)."""
        N, T = self.topo.n_neurons, self.encoder.T
        z = self._zeros
        if z is None or z[0].shape != (B, N, T):
            z = self._zeros = (np.zeros((B, N, T)), np.zeros(B))
        return z

    def _output_uniforms(self, rng: np.random.Generator, B: int) -> np.ndarray:
        """The kernel's uniforms ``(B, N, T)`` for sampled decisions of a network whose only
        random neurons are its outputs (no hidden neuron, a binary input code): the outputs'
        drawn, the inputs' 0 (an input spikes iff ``0 < p``, ``p`` 0 or 1), so a decision draws
        ``n_out T`` numbers instead of ``N T`` (then the kernel's tie draw, as before)."""
        N, n_in, T = self.topo.n_neurons, self.topo.n_in, self.encoder.T
        u = self._act_uniforms
        if u is None or u.shape != (B, N, T):
            u = self._act_uniforms = np.zeros((B, N, T))
        u[:, n_in:, :] = rng.random((B, N - n_in, T))
        return u

    def replay(self, raster: np.ndarray, action: np.ndarray | None = None) -> Replayed:
        """Replay stored decisions ``(B, N, T)`` (every neuron clamped to its recorded spikes,
        inputs included) under the current parameters: their log-probability and eligibility.
        The kernel stops at the same ``t*``, since the first output spike is part of the raster.
        Scored on the action (:attr:`output_score`), the actions taken are needed too."""
        r = self._replay_kernel(raster)
        if self._output_score != "pattern":
            if action is None:
                raise ValueError(f"replay: output_score={self._output_score!r} scores the actions taken; pass action=")
            if self._output_score == "action":
                self._score_actions(r, action, True)
            else:
                self._score_marginal(r, action, True)
        log_prob, elig, hidden_rate = self._learning_terms(r)
        return Replayed(log_prob, r.ll_out.copy(), r.ll_neuron.copy(), elig, hidden_rate)

    def _replay_kernel(self, raster: np.ndarray, hidden_eligibility: bool = True, learn: bool = True,
                       score: bool = True):
        """The kernel's result (workspace views) for stored decisions ``(B, N, T)``, every neuron
        clamped, with eligibilities (the hidden neurons' left 0 without ``hidden_eligibility``;
        none without ``learn``, and no log-likelihoods without ``score`` either: the potentials only)."""
        B, N, T = raster.shape
        clamp = raster.view(np.int8) if raster.dtype == np.uint8 and raster.flags["C_CONTIGUOUS"] else \
            np.ascontiguousarray(raster, dtype=np.int8)
        zeros = self._replay_zeros  # inputs and uniforms are never read: every neuron is clamped
        if zeros is None or zeros[0].shape != (B, self.topo.n_in, T) or zeros[1].shape != (B, N, T):
            self._replay_zeros = (np.zeros((B, self.topo.n_in, T)), np.zeros((B, N, T)), np.zeros(B))
        p_in, uniforms, tie = self._replay_zeros
        return _decide_validated(self.topo, self.params, self.ff_kernel, self.fb_kernel, p_in, None,
                                 uniforms=uniforms, tie=tie, decoder=self.decoder, learn=learn, score=score,
                                 clamp=clamp, workspace=self.replay_workspace, causal=self.causal,
                                 hidden_eligibility=hidden_eligibility)

    def replay_kernel(self, record: dict, hidden_eligibility: bool = True, learn: bool = True, score: bool = True):
        """The kernel's result (workspace views, eligibilities as the kernel forms them; the
        hidden neurons' left 0 without ``hidden_eligibility``; see :meth:`_replay_kernel` for
        ``learn`` and ``score``) for decisions stored by :meth:`record`."""
        return self._replay_kernel(unpack_bits(record["raster"], self.encoder.T), hidden_eligibility, learn, score)

    def _replay_potentials(self, record: dict):
        """:meth:`replay_kernel` for a rule whose scorers write every eligibility and
        log-likelihood themselves (the output layer scored on the action with its timing summed
        out, the hidden neurons by an estimator's fixed targets): the kernel runs the forward pass
        only, and the result carries zeroed eligibility arrays (``ll_neuron`` 0 for the inputs,
        NaN elsewhere) for them to fill. The same bits as a learning replay whose output and
        hidden entries they overwrite, without the kernel's own eligibilities and log-likelihoods,
        which cost as much as the forward pass."""
        r = self.replay_kernel(record, learn=False, score=False)
        B = len(r.t_star)
        S, K = self.params.w.shape
        N, Kb = self.params.v.shape
        bufs = self._replay_elig
        if bufs is None or bufs[0].shape != (B, S, K) or bufs[1].shape != (B, N, Kb):
            self._replay_elig = bufs = (np.zeros((B, S, K)), np.zeros((B, N, Kb)), np.zeros((B, N)))
        else:
            for x in bufs:
                x.fill(0.0)
        r.ll_neuron[:, : self.topo.n_in] = 0.0
        return r._replace(ew=bufs[0], ev=bufs[1], eg=bufs[2])

    def record(self, out: PolicyOutput, features: np.ndarray) -> dict:
        """What replays each decision of ``out`` exactly: its raster as bits ``(B, N, ceil(T/8))``
        (and, scored on the action, the action: a tie at ``t*`` is not in the raster)."""
        record = {"raster": out.packed if out.packed is not None else pack_bits(out.raster)}
        if self._output_score != "pattern":
            record["action"] = np.asarray(out.action, np.int64)
        return record

    def replay_record(self, record: dict) -> Replayed:
        """:meth:`replay` of decisions stored by :meth:`record`."""
        return self.replay(unpack_bits(record["raster"], self.encoder.T), record.get("action"))

    def replay_gradient(self, record: dict, modulator) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mean_d M[d, unit] e_d, hidden rates)`` of decisions stored by :meth:`record`, where
        ``M = modulator(replayed)`` is computed from their log-probabilities (``replayed.elig``
        is ``None``): what :func:`~spikerl.rules.modulated_gradient` returns from
        :meth:`replay_record`, bit for bit, without forming the ``(B, P)`` eligibilities (the
        per-neuron modulators gate the kernel's eligibility arrays in one compiled pass)."""
        rewrite = getattr(self.estimator, "rewrite", None)
        if self.estimator is not None and rewrite is None:  # the estimator reshapes the eligibilities: form them
            return whole_replay_gradient(self, record, modulator)
        # an estimator that rewrites the hidden neurons' entries of the kernel's arrays in place:
        # the kernel leaves them to it
        if self._output_score == "marginal" and rewrite is not None and "posterior.lam" in record:
            if self._packed_replay:  # no hidden neuron: one compiled pass from the bits (the same bits)
                return self._replay_marginal_gradient(record, modulator)
            r = self._replay_potentials(record)  # the scorers below write every entry
        else:
            r = self.replay_kernel(record, hidden_eligibility=rewrite is None)
        if self._output_score == "action":
            self._score_actions(r, record["action"], True)
        elif self._output_score == "marginal":
            self._score_marginal(r, record["action"], True)
        if rewrite is not None:
            rewrite(self, r, record)
        M = modulator(Replayed(self._trajectory_log_prob(r), r.ll_out, r.ll_neuron, None, None))
        if M.shape[1] == 1:  # one modulator for every parameter: as modulated_gradient, a product with elig
            grad = modulated_gradient(M, kernel_eligibility(r), self.param_neuron)  # already rewritten
        else:
            grad = gated_sum(M, (r.ew.reshape(len(M), -1), r.ev.reshape(len(M), -1), r.eg), self.param_neuron)
        # only the rate regulariser reads the hidden rates
        return grad, self._hidden_rate(r) if self.rate_reg > 0 else None

    @property
    def _packed_replay(self) -> bool:
        """Whether :meth:`_replay_marginal_gradient` replays this network: no hidden neuron,
        every synapse from an input, and recursive (geometric, one-basis) kernels."""
        return self._dense_replay

    def _replay_marginal_gradient(self, record: dict, modulator) -> tuple[np.ndarray, None]:
        """:meth:`replay_gradient` of a network without hidden neurons scored ``marginal``, from
        the stored bits in one compiled pass over the decisions
        (:func:`~spikerl.rules._replay_errors`: each decision's inputs' traces, the outputs'
        potentials run silent to ``T``, the output scorer's log-likelihood and errors, and the
        errors times the traces summed over time, each decision's eligibilities), then the
        modulator of each decision and the modulated sum, one matrix product: the output layer is
        one unit (one modulator per decision), and only the output synapses and biases have
        eligibilities (the inputs' are 0, as are the outputs' self-feedback's: no output
        spiked). The kernel's path's gradient up to rounding (its sums run in another order)."""
        packed, action = record["raster"], np.asarray(record["action"], np.int64)
        B = len(packed)
        topo, T = self.topo, self.encoder.T
        n_in, N = topo.n_in, topo.n_neurons
        n_out = N - n_in
        a0 = self.ff_kernel[0, 0]
        wd = _dense_input_weights(n_in, n_out, topo.pre, topo.post, self.params.w, self.ff_kernel)
        bufs = self._replay_bufs  # reused: every entry is written before it is read
        if bufs is None or bufs[0].shape != (B, n_out, n_in):
            bufs = self._replay_bufs = (np.empty((B, n_out, n_in)), np.empty((B, n_out)), np.zeros((B, N)))
        elig, elig_bias, ll_neuron = bufs  # ll_neuron: only the output layer's column is ever written
        ll_out = np.empty(B)
        gx, gw = self._quadrature
        batched(_replay_errors, B, packed, T, geometric_decay(self.ff_kernel, T), wd, self.params.bias[n_in:], action,
                gx, gw, ll_out, elig, elig_bias)
        ll_neuron[:, n_in] = ll_out  # the output layer's log P(a | h) is its first neuron's (one unit)
        M = modulator(Replayed(ll_out, ll_out, ll_neuron, None, None))  # no hidden neuron: the joint log P is ll_out
        m = np.ascontiguousarray(M[:, 0] if M.shape[1] == 1 else M[:, n_in], dtype=np.float64) / B
        grad = np.zeros(self.n_params)
        K = self.params.w.shape[1]
        grad[: topo.n_synapses * K : K] = (m @ elig.reshape(B, -1))[self._out_index] * a0
        grad[self.bias_slice][n_in:] = m @ elig_bias
        return grad, None

    def _hidden_rate(self, r) -> np.ndarray | None:
        """Each hidden neuron's spikes per step up to ``t*`` ``(B, n_hid)`` (``None`` without hidden neurons)."""
        n_in, n_hid = self.topo.n_in, self.topo.n_hid
        if not n_hid:
            return None
        return r.raster[:, n_in : n_in + n_hid, :].sum(2) / (r.t_star[:, None] + 1.0)

    def _trajectory_log_prob(self, r) -> np.ndarray:
        """``log P`` of a decision's hidden and output spikes: the outputs' plus the hidden neurons'."""
        n_in, n_hid = self.topo.n_in, self.topo.n_hid
        if not n_hid:
            return r.ll_out + 0.0  # what adding the empty sum gives
        return r.ll_out + r.ll_neuron[:, n_in : n_in + n_hid].sum(1)

    def _learning_terms(self, r):
        """Joint log-probability, eligibility in ``theta`` order and hidden rates of a kernel result."""
        elig = kernel_eligibility(r)
        log_prob = self._trajectory_log_prob(r)
        hidden_rate = self._hidden_rate(r)
        if self.estimator is not None:
            elig = self.estimator.eligibility(self, r, elig)
        return log_prob, elig, hidden_rate


def pack_bits(spikes: np.ndarray) -> np.ndarray:
    """``np.packbits(spikes.astype(bool), axis=-1)`` (the same bytes: big-endian bits, the last
    byte padded with 0) in one compiled loop: numpy's costs more than a decision's kernel pass
    on a short last axis."""
    lead, count = spikes.shape[:-1], spikes.shape[-1]
    flat = np.ascontiguousarray(spikes).reshape(-1, count)
    return _pack_rows(flat, (count + 7) // 8).reshape(*lead, (count + 7) // 8)


@njit
def _pack_rows(rows, n_bytes):
    count = rows.shape[1]
    out = np.empty((rows.shape[0], n_bytes), np.uint8)
    for r in range(rows.shape[0]):
        for byte in range(n_bytes):
            acc = 0
            for bit in range(min(8, count - 8 * byte)):  # no branch on the (unpredictable) spikes
                acc |= (rows[r, 8 * byte + bit] != 0) << (7 - bit)
            out[r, byte] = acc
    return out


def unpack_bits(packed: np.ndarray, count: int) -> np.ndarray:
    """``np.unpackbits(packed, axis=-1, count=count)`` (C-contiguous ``uint8``) in one compiled
    loop: unpackbits along a short last axis costs more than the replay's own bookkeeping."""
    lead = packed.shape[:-1]
    flat = np.ascontiguousarray(packed, dtype=np.uint8).reshape(-1, packed.shape[-1])
    return _unpack_rows(flat, count).reshape(*lead, count)


@njit
def _unpack_rows(packed, count):
    out = np.empty((packed.shape[0], count), np.uint8)
    for r in range(packed.shape[0]):
        for t in range(count):
            out[r, t] = (packed[r, t >> 3] >> (7 - (t & 7))) & 1
    return out
