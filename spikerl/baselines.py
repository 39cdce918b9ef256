"""ANN baselines through Stable-Baselines3 (PPO, A2C, DQN). This is the only module that
imports torch / SB3, and only inside its functions, so ``import spikerl`` never does."""
from __future__ import annotations

ALGOS = ("PPO", "A2C", "DQN")
SCHEDULES = ("learning_rate", "clip_range")


def sb3_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("stable_baselines3") is not None


def sb3_evaluate(model, make_env, n_episodes: int, seed: int, deterministic: bool):
    """SB3's ``evaluate_policy`` on a seeded one-env ``DummyVecEnv``: (returns, lengths)."""
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: Monitor(make_env())])
    venv.seed(seed)
    try:
        return evaluate_policy(model, venv, n_eval_episodes=n_episodes, deterministic=deterministic,
                               return_episode_rewards=True, warn=False)
    finally:
        venv.close()


def make_vec(env_id: str, *, n_envs: int, seed: int, make_kwargs: dict | None = None):
    from stable_baselines3.common.env_util import make_vec_env

    from . import envs  # noqa: F401

    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=make_kwargs or None)


TRAIN_ROW_EVERY = 1_000
"""Environment steps between two ``train`` rows of an SB3 agent at least (SB3 trains every 4
steps for DQN, every 5 x n_envs for A2C; it thins its own logs by ``log_interval``)."""


def bridge_callback(on_episode, on_step, progress: bool, on_train=None):
    """An SB3 callback that reports finished episodes (``on_episode(step, return, length)``),
    asks ``on_step()`` whether to go on, optionally prints progress, and hands the algorithm's
    last training figures (its ``train/...`` logger values, prefix dropped) to
    ``on_train(step, values)`` when a rollout starts after training, at most once every
    :data:`TRAIN_ROW_EVERY` steps, and at the end."""
    import sys
    import time

    import numpy as np
    from stable_baselines3.common.callbacks import BaseCallback

    from .callbacks import train_figures

    class Bridge(BaseCallback):
        def _on_training_start(self) -> None:
            self.t0, self.last = time.time(), 0.0
            self.reported, self.next_row = getattr(self.model, "_n_updates", 0), 0

        def _report_training(self, last: bool = False) -> None:
            n = getattr(self.model, "_n_updates", None)
            if on_train is None or n is None or n == self.reported or (self.num_timesteps < self.next_row and not last):
                return
            values = train_figures(self.model.logger.name_to_value)
            if values:
                on_train(self.num_timesteps, values)
                self.reported, self.next_row = n, self.num_timesteps + TRAIN_ROW_EVERY

        def _on_rollout_start(self) -> None:
            self._report_training()

        def _on_training_end(self) -> None:
            self._report_training(last=True)

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                ep = info.get("episode")
                if ep is not None:
                    on_episode(self.num_timesteps, ep["r"], ep["l"])
            if progress and time.time() - self.last > 1.0:
                self.last = time.time()
                rate = self.num_timesteps / max(time.time() - self.t0, 1e-9)
                rets = [e["r"] for e in self.model.ep_info_buffer] if self.model.ep_info_buffer else []
                ret = f"{np.mean(rets):.1f}" if rets else "-"
                print(f"\r{self.num_timesteps} steps  {rate:.0f} steps/s  return {ret}   ", end="", file=sys.stderr,
                      flush=True)
            return on_step()

    return Bridge()


def wandb_callback():
    """W&B's Stable-Baselines3 integration (records the algorithm's hyperparameters in the
    run config; metrics come from spikerl's own rows). Needs an active ``wandb.run``."""
    from wandb.integration.sb3 import WandbCallback

    return WandbCallback(verbose=0, log=None)


def _algo_class(algo: str):
    if algo not in ALGOS:
        raise ValueError(f"unknown SB3 algorithm {algo!r}; expected one of {ALGOS}")
    import stable_baselines3 as sb3

    return getattr(sb3, algo)


def _linear(start: float):
    def schedule(progress_remaining: float) -> float:
        return progress_remaining * start

    return schedule


def sb3_kwargs(hyperparameters: dict) -> tuple[dict, int]:
    """Plain YAML values -> SB3 constructor kwargs and n_envs. ``X_schedule: linear`` turns
    ``X`` into a linear decay (the RL Zoo's ``lin_`` prefix)."""
    hp = dict(hyperparameters)
    n_envs = int(hp.pop("n_envs", 1))
    for name in SCHEDULES:
        kind = hp.pop(f"{name}_schedule", "constant")
        if kind == "linear" and name in hp:
            hp[name] = _linear(float(hp[name]))
        elif kind != "constant":
            raise ValueError(f"{name}_schedule must be constant or linear, got {kind!r}")
    hp.setdefault("policy", "MlpPolicy")
    return hp, n_envs


def make_sb3(algo: str, env_id: str, *, seed: int, hyperparameters: dict, make_kwargs: dict | None = None):
    cls = _algo_class(algo)
    kwargs, n_envs = sb3_kwargs(hyperparameters)
    policy = kwargs.pop("policy")
    venv = make_vec(env_id, n_envs=n_envs, seed=seed, make_kwargs=make_kwargs)
    return cls(policy, venv, seed=seed, verbose=0, device="cpu", **kwargs)


def load_sb3(algo: str, path, env=None):
    return _algo_class(algo).load(path, env=env, device="cpu")


def macs_per_forward(model) -> int:
    """Multiply-accumulates of the layers one ``predict`` runs: the actor path of PPO/A2C
    (features -> policy MLP -> action head) or DQN's Q-network."""
    import torch.nn as nn

    return int(sum(m.in_features * m.out_features for mod in actor_modules(model) for m in mod.modules()
                   if isinstance(m, nn.Linear)))


def actor_modules(model) -> list:
    """The layers one ``predict`` runs: PPO/A2C's policy MLP and action head, DQN's Q-network
    (a critic or target network never acts)."""
    policy = model.policy
    if hasattr(policy, "q_net"):
        return [policy.q_net]
    return [policy.mlp_extractor.policy_net, policy.action_net]


def n_parameters(model) -> int:
    """Parameters of the acting network (as the spiking agents count theirs: the policy, not
    its critic), so the parameter column compares like with like and matches the MACs."""
    return int(sum(p.numel() for m in actor_modules(model) for p in m.parameters()))
