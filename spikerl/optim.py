"""Element-wise optimisers for local learning rules.

Every update is per parameter (no parameter sees another's gradient), so the rule stays
local; Adam only rescales each synapse's own step by its own history.
"""
from __future__ import annotations

import numpy as np


class Adam:
    """Adam (Kingma & Ba 2015) for gradient *ascent* on a flat parameter vector.

    ``step(theta, grad, lr)`` returns ``theta + lr * m_hat / (sqrt(v_hat) + eps)``.
    """

    def __init__(self, size: int, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = 0
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def step(self, theta: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        self.t += 1
        self.m *= self.beta1
        self.m += (1 - self.beta1) * grad
        self.v *= self.beta2
        self.v += (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return theta + lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict:
        return {"m": self.m.copy(), "v": self.v.copy(), "t": np.array(self.t)}

    def load_state_dict(self, state: dict) -> None:
        if state["m"].shape != self.m.shape:
            raise ValueError(f"optimiser state has {state['m'].size} entries, the model {self.m.size}")
        self.m = np.array(state["m"], dtype=np.float64)
        self.v = np.array(state["v"], dtype=np.float64)
        self.t = int(state["t"])
