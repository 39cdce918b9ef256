"""Callbacks in the shape SB3 users know: ``on_training_start``, ``on_step`` (return False
to stop), ``on_training_end``; evaluation with stop-at-threshold, checkpoints, a progress bar.

An SB3 user's own callbacks (``stable_baselines3.common.callbacks``: ``CheckpointCallback``,
``EvalCallback``, ``CallbackList``, ``StopTrainingOnMaxEpisodes``, a subclass of their
``BaseCallback``, ...) are hosted as they are (:class:`SB3Callback`): the agent offers what
they read of an SB3 model (``num_timesteps``, ``get_env``, ``get_vec_normalize_env``,
``save``, ``logger``) and, at each step, SB3's rollout locals (``dones``, ``infos``,
``rewards``, ``new_obs``, ``actions``, ``total_timesteps``). Recognised by their interface,
so spikerl never imports SB3 for them."""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from .protocol import run_episodes


class BaseCallback:
    """Subclass and override the hooks; ``self.model`` is the agent."""

    def init(self, model) -> None:
        self.model = model

    def on_training_start(self) -> None:
        pass

    def on_step(self) -> bool:
        return True

    def on_training_end(self) -> None:
        pass


class CallbackList(BaseCallback):
    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def init(self, model) -> None:
        super().init(model)
        for cb in self.callbacks:
            cb.init(model)

    def on_training_start(self) -> None:
        for cb in self.callbacks:
            cb.on_training_start()

    def on_step(self) -> bool:
        return all([cb.on_step() for cb in self.callbacks])

    def on_training_end(self) -> None:
        for cb in self.callbacks:
            cb.on_training_end()


class _FunctionCallback(BaseCallback):
    def __init__(self, fn):
        self.fn = fn

    def on_step(self) -> bool:
        return self.fn(self.model) is not False


def is_sb3_callback(callback) -> bool:
    """Whether ``callback`` is a Stable-Baselines3 callback (or has its interface)."""
    return not isinstance(callback, BaseCallback) and all(
        hasattr(callback, name) for name in ("init_callback", "on_training_start", "on_step", "update_locals",
                                             "on_rollout_start", "on_rollout_end", "on_training_end"))


class SB3Callback(BaseCallback):
    """A Stable-Baselines3 callback ``callback`` run by spikerl's loop: ``init_callback`` with
    the agent, ``on_training_start(locals, globals)`` and ``on_rollout_start`` when training
    starts, then per vector step ``update_locals`` (the agent's :attr:`rollout_locals`) and
    ``on_step`` (False stops training), and ``on_rollout_end``/``on_training_end`` at the end
    (spikerl's rules have no rollout phase a callback could act in between)."""

    def __init__(self, callback):
        self.callback = callback

    def init(self, model) -> None:
        super().init(model)
        self.callback.init_callback(model)

    def on_training_start(self) -> None:
        self.callback.on_training_start(dict(self.model.rollout_locals), {})
        self.callback.on_rollout_start()

    def on_step(self) -> bool:
        self.callback.update_locals(self.model.rollout_locals)
        return bool(self.callback.on_step())

    def on_training_end(self) -> None:
        self.callback.on_rollout_end()
        self.callback.on_training_end()


class KeyValueLogger:
    """What SB3 callbacks call on ``model.logger``: ``record``/``record_mean`` key-value pairs,
    ``dump(step)`` them (appended to :attr:`history` as ``(step, {key: value})``; printed when
    ``verbose``). SB3's ``exclude`` argument is accepted (nothing here is excluded)."""

    def __init__(self, verbose: int = 0):
        self.verbose = verbose
        self.name_to_value: dict = {}
        self._means: dict = {}
        self.history: list[tuple[int, dict]] = []

    def record(self, key: str, value, exclude=None) -> None:
        self.name_to_value[key] = value

    def record_mean(self, key: str, value, exclude=None) -> None:
        total, n = self._means.get(key, (0.0, 0))
        self._means[key] = (total + float(value), n + 1)
        self.name_to_value[key] = (total + float(value)) / (n + 1)

    def dump(self, step: int = 0) -> None:
        if self.name_to_value:
            self.history.append((int(step), dict(self.name_to_value)))
            if self.verbose:
                print(f"[{step}] " + ", ".join(f"{k}={v}" for k, v in sorted(self.name_to_value.items())))
        self.name_to_value, self._means = {}, {}

    def log(self, *args, **kwargs) -> None:
        if self.verbose:
            print(*args)


def train_figures(values: dict) -> dict:
    """The ``train/...`` entries of logger ``values`` (SB3's or :class:`KeyValueLogger`'s),
    prefix dropped: what a run's ``train`` rows hold."""
    return {k[6:]: v for k, v in values.items() if k.startswith("train/")}


def _as_callback(callback) -> BaseCallback:
    if isinstance(callback, BaseCallback):
        return callback
    if is_sb3_callback(callback):
        return SB3Callback(callback)
    if callable(callback):
        return _FunctionCallback(callback)
    raise ValueError(f"callback must be a spikerl or Stable-Baselines3 callback, a list of them or a function, got "
                     f"{type(callback).__name__}")


def make_callback(callback, progress_bar: bool = False) -> BaseCallback:
    """``None``, a callback (spikerl's or SB3's), a list of them, or a function ``f(agent) -> bool | None``."""
    if callback is None:
        cbs = []
    elif isinstance(callback, (list, tuple)):
        cbs = [_as_callback(c) for c in callback]
    else:
        cbs = [_as_callback(callback)]
    if progress_bar:
        cbs.append(ProgressBarCallback())
    return CallbackList(cbs)


def evaluate(agent, env, n_episodes: int = 10, *, deterministic: bool = True, seed: int | None = None) -> dict:
    """Play ``n_episodes`` on a single (non-vector) env by the one protocol
    (:func:`spikerl.protocol.run_episodes`: reset with ``seed``, then unseeded); return mean/std
    return and length, and the per-decision energy figures of the spiking policy."""
    agent.predict_stats[:] = 0.0
    returns, lengths = run_episodes(agent, env, n_episodes, seed, deterministic)
    e = agent.energy_summary("predict")
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "returns": returns,
            "mean_length": float(np.mean(lengths)),
            "spikes_per_decision": e["input_spikes"] + e["hidden_spikes"] + e["output_spikes"],
            "sops_per_decision": e["sops"], "latency": e["latency"]}


class EvalCallback(BaseCallback):
    """Evaluate every ``eval_freq`` environment steps; stop when the mean return reaches
    ``reward_threshold``. ``self.evaluations`` keeps ``(timestep, result)`` pairs."""

    def __init__(self, eval_env, *, eval_freq: int = 10_000, n_eval_episodes: int = 10, deterministic: bool = True,
                 reward_threshold: float | None = None, seed: int | None = 0, on_result=None, verbose: int = 0):
        self.eval_env, self.eval_freq, self.n_eval_episodes = eval_env, eval_freq, n_eval_episodes
        self.deterministic, self.reward_threshold, self.seed = deterministic, reward_threshold, seed
        self.on_result, self.verbose = on_result, verbose
        self.evaluations: list[tuple[int, dict]] = []
        self._next = None

    def on_training_start(self) -> None:
        self._next = self.model.num_timesteps + self.eval_freq

    def run(self) -> dict:
        res = evaluate(self.model, self.eval_env, self.n_eval_episodes, deterministic=self.deterministic, seed=self.seed)
        self.evaluations.append((self.model.num_timesteps, res))
        if self.on_result is not None:
            self.on_result(self.model.num_timesteps, res)
        if self.verbose:
            print(f"eval @ {self.model.num_timesteps}: return {res['mean_return']:.1f} +- {res['std_return']:.1f}")
        return res

    def on_step(self) -> bool:
        if self.model.num_timesteps < self._next:
            return True
        self._next += self.eval_freq
        res = self.run()
        return self.reward_threshold is None or res["mean_return"] < self.reward_threshold


class CheckpointCallback(BaseCallback):
    """Save the agent (with its training state) every ``save_freq`` steps to ``path``
    (one file, replaced atomically), and at the end of training."""

    def __init__(self, path, *, save_freq: int = 10_000):
        self.path, self.save_freq = os.fspath(path), save_freq
        self._next = None

    def on_training_start(self) -> None:
        self._next = self.model.num_timesteps + self.save_freq

    def on_step(self) -> bool:
        if self.model.num_timesteps >= self._next:
            self._next += self.save_freq
            self.model.save(self.path)
        return True

    def on_training_end(self) -> None:
        self.model.save(self.path)


class ProgressBarCallback(BaseCallback):
    """Steps, steps/s and the rolling mean return on one terminal line (tqdm when installed)."""

    def on_training_start(self) -> None:
        self._t0, self._last = time.time(), 0.0
        self._start = self.model.num_timesteps
        total = self.model._target - self._start
        try:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="step", dynamic_ncols=True)
        except ImportError:
            self._bar = None
        self._total = total

    def _ret(self) -> str:
        buf = self.model.ep_info_buffer
        return f"{np.mean([e['r'] for e in buf]):.1f}" if buf else "-"

    def on_step(self) -> bool:
        now = time.time()
        if now - self._last < 0.5:
            return True
        self._last = now
        done = self.model.num_timesteps - self._start
        if self._bar is not None:
            self._bar.n = min(done, self._total)
            self._bar.set_postfix_str(f"return {self._ret()}")
            self._bar.refresh()
        else:
            rate = done / max(now - self._t0, 1e-9)
            sys.stderr.write(f"\r{done}/{self._total} steps  {rate:.0f} steps/s  return {self._ret()}   ")
            sys.stderr.flush()
        return True

    def on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.n = min(self.model.num_timesteps - self._start, self._total)
            self._bar.close()
        else:
            sys.stderr.write("\n")
