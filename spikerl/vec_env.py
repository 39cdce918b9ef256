"""Stable-Baselines3 vector environments as Gymnasium ones, so an SB3 user's own ``VecEnv``
(``make_vec_env``, ``DummyVecEnv``, ``SubprocVecEnv``, ``VecNormalize``, ...) trains and
scores a spikerl agent as it would an SB3 one.

Recognised by its interface (``step_async``/``step_wait``/``num_envs``), so spikerl never
imports SB3 (nor torch) for it. SB3 resets a finished environment inside ``step`` and files
its last observation under ``info["terminal_observation"]``, a truncation under
``info["TimeLimit.truncated"]``: the Gymnasium vector API in its same-step autoreset mode,
which is what :class:`SB3VecEnv` presents (``terminated``/``truncated`` split, the last
observations under ``infos["final_obs"]``).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space


def is_sb3_vec_env(env) -> bool:
    """Whether ``env`` is a Stable-Baselines3 ``VecEnv`` (or anything with its interface)."""
    return (not isinstance(env, (gym.Env, gym.vector.VectorEnv))
            and all(hasattr(env, name) for name in ("step_async", "step_wait", "num_envs", "observation_space",
                                                      "action_space", "reset")))


def venv_chain(env):
    """``env``, then each ``.venv`` below it (spikerl's adapter, SB3's ``VecEnvWrapper`` s such as
    ``VecNormalize``), down to the innermost vector env."""
    while env is not None:
        yield env
        env = getattr(env, "venv", None)


class SB3VecEnv(gym.vector.VectorEnv):
    """A Gymnasium ``VectorEnv`` (same-step autoreset) over an SB3 ``VecEnv`` ``venv``.

    ``reset(seed=s)`` seeds environment ``i`` with ``s + i`` (SB3's ``VecEnv.seed``);
    ``close`` closes ``venv``; ``venv`` is the user's object, returned by the agent's
    ``get_env``.
    """

    def __init__(self, venv):
        self.venv = venv
        self.num_envs = int(venv.num_envs)
        self.single_observation_space = venv.observation_space
        self.single_action_space = venv.action_space
        self.observation_space = batch_space(venv.observation_space, self.num_envs)
        self.action_space = batch_space(venv.action_space, self.num_envs)
        self.metadata = {**(getattr(venv, "metadata", None) or {}), "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = getattr(venv, "render_mode", None)
        self.spec = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.venv.seed(int(seed))
        if options is not None:
            self.venv.set_options(options)
        return self.venv.reset(), {}

    def step(self, actions):
        obs, rewards, dones, infos = self.venv.step(np.asarray(actions))
        dones = np.asarray(dones, bool)
        truncated = dones & np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos], bool)
        final = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(dones):
            if "terminal_observation" not in infos[i]:
                raise ValueError(f"the SB3 VecEnv {type(self.venv).__name__} ended episode {i} without "
                                 f"info['terminal_observation'] (every SB3 VecEnv files it)")
            final[i] = infos[i]["terminal_observation"]
        info = {"final_obs": final, "_final_obs": dones.copy(), "sb3_infos": infos}
        return obs, np.asarray(rewards, np.float64), dones & ~truncated, truncated, info

    def close_extras(self, **kwargs):
        self.venv.close()

    def __del__(self):
        pass  # the user's VecEnv is theirs to close (an agent that drops it leaves it open, as SB3 does)


__all__ = ["SB3VecEnv", "is_sb3_vec_env", "venv_chain"]
