r"""The updating part: reward factors for the three-factor rule (DESIGN.md section 5).

Every decision ``t`` of environment ``b`` brings an eligibility vector ``e_t`` (post-synaptic
error x pre-synaptic trace, in ``theta`` order) that the agent has already shaped by the
hidden-neuron rule (``l_t`` x ``e_t`` for hidden neurons under the seed rule). A rule turns
rewards into the reward factor ``r_t`` and the update ``theta += eta * mean(r_t * e_t)``:

- :class:`MonteCarloRule` (REINFORCE): return-to-go minus a baseline from a linear critic,
  applied once an episode ends (bootstrapped with the critic on truncation);
- :class:`ActorCriticRule` (online): TD error ``delta = r + gamma V(s') - V(s)`` with
  eligibility traces across decisions ``z <- gamma*lambda*z + e``; memory is O(synapses)
  per environment, no episode buffer.

The critic is linear in the encoder's features (plus a bias) and learns by the same kind
of local rule. Both rules hand back a gradient; the agent applies it with its optimiser.
"""
from __future__ import annotations

import numpy as np

from .optim import Adam


class LinearCritic:
    """``V(s) = c . [f(s), 1]`` on encoder features ``f``."""

    def __init__(self, n_features: int, lr: float):
        self.c = np.zeros(n_features + 1)
        self.lr = lr
        self.opt = Adam(n_features + 1)

    @staticmethod
    def augment(features: np.ndarray) -> np.ndarray:
        return np.concatenate([features, np.ones((features.shape[0], 1))], axis=1)

    def value(self, features: np.ndarray) -> np.ndarray:
        return self.augment(features) @ self.c

    def step(self, grad: np.ndarray) -> None:
        self.c = self.opt.step(self.c, grad, self.lr)


class MonteCarloRule:
    """REINFORCE with a critic baseline and optional per-parameter control variates."""

    def __init__(self, n_envs: int, critic: LinearCritic, *, gamma: float, batch_size: int,
                 normalize_advantage: bool, control_variate: bool):
        self.n_envs, self.critic, self.gamma = n_envs, critic, gamma
        self.batch_size, self.normalize, self.control_variate = batch_size, normalize_advantage, control_variate
        self.episodes = [dict(e=[], r=[], f=[]) for _ in range(n_envs)]
        self.ready_e, self.ready_a = [], []
        self.ready_f, self.ready_g = [], []

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

    def drop_episode(self, b: int) -> None:
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
        # critic: regress V(s_t) on the return
        fa = self.critic.augment(f)
        self.critic.step(((G - fa @ self.critic.c)[:, None] * fa).mean(0))
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

    def __init__(self, n_envs: int, n_params: int, critic: LinearCritic, *, gamma: float, lam: float):
        self.critic, self.gamma, self.lam = critic, gamma, lam
        self.z = np.zeros((n_envs, n_params))
        self.zc = np.zeros((n_envs, critic.c.size))

    def step(self, valid: np.ndarray, elig: np.ndarray, features: np.ndarray, rewards: np.ndarray,
             next_values: np.ndarray, terminated: np.ndarray, done: np.ndarray) -> np.ndarray:
        """One vector step: returns the actor gradient (mean over valid environments)."""
        fa = self.critic.augment(features)
        v = fa @ self.critic.c
        delta = rewards + self.gamma * np.where(terminated, 0.0, next_values) - v
        delta = np.where(valid, delta, 0.0)
        decay = self.gamma * self.lam
        self.z *= decay
        self.z[valid] += elig[valid]
        self.zc *= decay
        self.zc[valid] += fa[valid]
        n = max(int(valid.sum()), 1)
        self.critic.step(delta @ self.zc / n)
        grad = delta @ self.z / n
        self.z[done] = 0.0
        self.zc[done] = 0.0
        return grad

    def state_dict(self) -> dict:
        return {"z": self.z.copy(), "zc": self.zc.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.z, self.zc = np.array(state["z"]), np.array(state["zc"])
