r"""``pg-mlp``: an ANN policy trained by the *same* policy-gradient method as the spiking
agent (same encoder features, reward factor, critic, optimiser and loop), so that a
comparison isolates the network from the algorithm.

The policy is a one-hidden-layer perceptron on the encoder's features ``f``:

    h = act(W1 f + b1),   pi(a | s) = softmax(W2 h + b2)_a

and its eligibility is the exact score ``grad log pi(a | s)`` (numpy, no torch). One
forward pass costs ``n_in*H + H*A`` multiply-accumulates.
"""
from __future__ import annotations

import numpy as np

from .agent import PolicyGradientAgent
from .hyperparams import MLPConfig
from .policy import PolicyOutput, Replayed


class MLPPolicy:
    """Softmax perceptron with a flat parameter vector ``theta`` = [W1, b1, W2, b2]
    (a :class:`~spikerl.policy.Policy`: a decision costs ``macs`` multiply-accumulates)."""

    spiking = False
    scores_without_learning = True

    def __init__(self, encoder, n_actions: int, hidden: int, activation: str, rng: np.random.Generator):
        self.encoder, self.n_actions, self.hidden, self.activation = encoder, n_actions, hidden, activation
        n_in = encoder.n_inputs
        if hidden:
            shapes = [(hidden, n_in), (hidden,), (n_actions, hidden), (n_actions,)]
            init = [rng.standard_normal(shapes[0]) * np.sqrt(2.0 / n_in), np.zeros(hidden),
                    rng.standard_normal(shapes[2]) * 0.01, np.zeros(n_actions)]
        else:
            shapes = [(n_actions, n_in), (n_actions,)]
            init = [rng.standard_normal(shapes[0]) * 0.01, np.zeros(n_actions)]
        self.shapes = shapes
        self.theta = np.concatenate([x.ravel() for x in init])
        self.learnable = np.ones(self.theta.size, bool)
        self.hidden_mask = np.zeros(self.theta.size, bool)
        self.estimator = None  # every parameter's score is exact: no hidden-neuron estimator
        self.param_neuron = np.zeros(self.theta.size, np.int64)  # one unit: the softmax decision
        self.macs = n_in * hidden + hidden * n_actions if hidden else n_in * n_actions

    @property
    def n_params(self) -> int:
        return int(self.theta.size)

    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W1, b1), (W2, b2)]`` (or ``[(W, b)]`` without a hidden layer), views into ``theta``."""
        v = self._views()
        return [(v[0], v[1]), (v[2], v[3])] if self.hidden else [(v[0], v[1])]

    def _views(self):
        out, off = [], 0
        for sh in self.shapes:
            n = int(np.prod(sh))
            out.append(self.theta[off : off + n].reshape(sh))
            off += n
        return out

    def state_meta(self) -> dict:
        return {"shapes": [list(sh) for sh in self.shapes]}

    def state_arrays(self) -> dict:
        return {"theta": self.theta}

    def load_state_arrays(self, arrays: dict, meta: dict) -> None:
        if [list(sh) for sh in self.shapes] != meta.get("shapes"):
            raise ValueError(f"saved layer shapes {meta.get('shapes')} differ from the config's {self.shapes}")
        theta = np.asarray(arrays["theta"], dtype=np.float64)
        if theta.shape != self.theta.shape:
            raise ValueError(f"theta has {theta.size} entries, expected {self.theta.size}")
        self.theta[:] = theta

    def set_theta(self, theta: np.ndarray) -> None:
        self.theta[:] = theta

    def regularise(self, grad: np.ndarray, hidden_rate) -> None:
        """No regulariser: the perceptron's only objective is the reward factor."""

    def constrain(self, theta: np.ndarray) -> None:
        """No constraint beyond the loop's weight clip."""

    def forward(self, f: np.ndarray):
        """Hidden activations (or ``None``) and action probabilities for features ``(B, n_in)``."""
        p = self._views()
        if self.hidden:
            W1, b1, W2, b2 = p
            pre = f @ W1.T + b1
            h = np.maximum(pre, 0.0) if self.activation == "relu" else np.tanh(pre)
            logits = h @ W2.T + b2
        else:
            W2, b2 = p
            h, pre, logits = None, None, f @ W2.T + b2
        logits = logits - logits.max(1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        return pre, h, probs

    def act(self, obs, rng: np.random.Generator, *, deterministic: bool = False, learn: bool = False,
            features: np.ndarray | None = None, keep_raster: bool = False) -> PolicyOutput:
        f = self.encoder.features_of(obs) if features is None else features
        pre, h, probs = self.forward(f)
        B = f.shape[0]
        if deterministic:
            action = probs.argmax(1)
        else:
            action = (probs.cumsum(1) > rng.random(B)[:, None]).argmax(1)
        elig = self._score(f, pre, h, probs, action) if learn else None
        ll = np.log(probs[np.arange(B), action] + 1e-300)
        zeros = np.zeros(B, np.int64)
        return PolicyOutput(action, elig, ll, np.zeros((B, 3), np.int64), zeros, np.ones(B, np.int64),
                            np.zeros(B, bool), None, ll, ll[:, None])

    def _score(self, f, pre, h, probs, action) -> np.ndarray:
        """``grad log pi(action | f)`` in ``theta`` order, ``(B, P)``."""
        B = f.shape[0]
        d_logits = -probs
        d_logits[np.arange(B), action] += 1.0  # grad of log softmax
        if self.hidden:
            W2 = self._views()[2]
            dh = d_logits @ W2
            dpre = dh * ((pre > 0) if self.activation == "relu" else (1 - h * h))
            parts = [dpre[:, :, None] * f[:, None, :], dpre, d_logits[:, :, None] * h[:, None, :], d_logits]
        else:
            parts = [d_logits[:, :, None] * f[:, None, :], d_logits]
        return np.concatenate([x.reshape(B, -1) for x in parts], axis=1)

    def record(self, out: PolicyOutput, features: np.ndarray) -> dict:
        """What replays each decision: its features and action."""
        return {"features": features, "action": out.action}

    def replay_record(self, record: dict) -> Replayed:
        f, action = record["features"], record["action"]
        pre, h, probs = self.forward(f)
        ll = np.log(probs[np.arange(f.shape[0]), action] + 1e-300)
        return Replayed(ll, ll, ll[:, None], self._score(f, pre, h, probs, action), None)


class PGMLPAgent(PolicyGradientAgent):
    """The spiking agent's learning loop (:class:`~spikerl.agent.PolicyGradientAgent`)
    driving an ANN policy."""

    config_class = MLPConfig
    agent_file = "pg-mlp"

    def _build_policy(self, n_actions: int):
        c = self.config
        return MLPPolicy(self.encoder, n_actions, c.mlp_hidden, c.activation, self.rng)
