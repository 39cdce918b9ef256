r"""ANN -> rate-coded spiking network conversion: the baseline that Rosenfeld, Simeone and
Rajendran (2019) compare first-to-spike training against.

A trained :class:`~spikerl.pg_mlp.MLPPolicy` (ReLU hidden layer or linear softmax) becomes a
network of integrate-and-fire neurons:

- inputs fire Bernoulli spikes with probability ``p_max * f`` (the encoder's features);
- every layer integrates ``V += W s_in + b`` each step, spikes when ``V >= 1`` and resets by
  subtraction (Rueckauer et al. 2017), with weights rescaled layer by layer by the largest
  activation seen on a set of observations (data-based normalisation, Diehl et al. 2015);
- the action is the output with the most spikes over all ``T`` steps (ties: the larger
  membrane potential), so every decision takes ``T`` steps.

Spikes and synaptic operations (spikes x fan-out) are counted per decision.
"""
from __future__ import annotations

import numpy as np

from .policy import PolicyOutput, decision_summary


class ConvertedSNN:
    """An SB3-style predictor (``predict``) built from a trained pg-mlp agent."""

    def __init__(self, agent, calibration_obs, *, T: int = 8, p_max: float = 1.0, seed: int | None = 0):
        pol = agent.policy
        if getattr(pol, "activation", "relu") != "relu" and pol.hidden:
            raise ValueError("only ReLU (or linear) perceptrons convert to integrate-and-fire networks")
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        self.encoder, self.T, self.p_max = pol.encoder, int(T), float(p_max)
        self.observation_space, self.action_space = agent.observation_space, agent.action_space
        self.action_values = agent.action_values
        self.rng = np.random.default_rng(seed)
        f = self.encoder.features_of(calibration_obs) * self.p_max
        layers = pol.layers()
        self.layers, prev_scale, x = [], 1.0, f
        for i, (W, b) in enumerate(layers):
            a = x @ W.T + b
            if i < len(layers) - 1:
                a = np.maximum(a, 0.0)
            scale = max(float(np.percentile(np.abs(a), 99.9)), 1e-6)
            self.layers.append((W * prev_scale / scale, b / scale))
            prev_scale, x = scale, a
        self.predict_stats = np.zeros(6)  # decisions, input, hidden, output spikes, sops, latency (as the agents')

    def act(self, obs, deterministic: bool = True) -> PolicyOutput:
        f = self.encoder.features_of(obs) * self.p_max
        B = f.shape[0]
        V = [np.zeros((B, W.shape[0])) for W, _ in self.layers]
        counts = np.zeros((B, self.layers[-1][0].shape[0]))
        spikes = np.zeros((B, 3))  # input, hidden, output
        sops = np.zeros(B)
        for _ in range(self.T):
            s = (self.rng.random(f.shape) < f).astype(np.float64)
            spikes[:, 0] += s.sum(1)
            for li, (W, b) in enumerate(self.layers):
                sops += s.sum(1) * W.shape[0]
                V[li] += s @ W.T + b
                s = (V[li] >= 1.0).astype(np.float64)
                V[li] -= s
                spikes[:, 2 if li == len(self.layers) - 1 else 1] += s.sum(1)
            counts += s
        score = counts + 1e-6 * np.tanh(V[-1])  # ties: the larger membrane potential
        action = score.argmax(1)
        latency = np.full(B, self.T)
        self.predict_stats += np.r_[B, spikes.sum(0), sops.sum(), latency.sum()]
        return PolicyOutput(action, None, np.zeros(B), spikes.astype(np.int64), sops.astype(np.int64), latency,
                            counts.sum(1) == 0, None)

    def energy_summary(self, which: str = "predict") -> dict:
        """Per-decision averages of the ``predict`` calls (the agents' :meth:`energy_summary`)."""
        return decision_summary(self.predict_stats)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        obs = np.asarray(observation)
        single = obs.ndim == len(self.observation_space.shape)
        out = self.act(obs[None] if single else obs)
        action = self.action_values[out.action]
        return (action[0] if single else action), state
