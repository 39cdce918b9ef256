"""Train one agent on one env into a run folder: the everyday path behind ``spikerl train``
and every cell of ``spikerl bench``. Spiking agents, pg-mlp and SB3 baselines share the
evaluation protocol, the metrics file, checkpoints, W&B logging and interruption handling."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .callbacks import BaseCallback, ProgressBarCallback, train_figures
from .config import load_agent_file, load_env_file, resolve_hyperparameters
from .evaluation import evaluate_model
from .runs import RunLogger, plot_learning_curve, read_config, run_name, write_config
from .serialization import atomic_write

STOP = threading.Event()
"""Set by SIGINT/SIGTERM: training finishes the current step, checkpoints and returns."""


def install_signal_handlers() -> None:
    """First SIGINT/SIGTERM: stop gracefully after the current decision; a second one: abort."""

    def handler(signum, frame):
        if STOP.is_set():
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        STOP.set()
        print(f"\n{signal.Signals(signum).name}: finishing the current decision, writing a checkpoint ...",
              file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


class _Loop:
    """What happens between steps, for every kind of agent: episode rows, periodic
    evaluation, checkpoints, stop requests."""

    def __init__(self, model, kind, logger, run_dir, env, *, eval_freq, eval_episodes, eval_seed, checkpoint_freq,
                 stop_at=None):
        self.model, self.kind, self.logger, self.run_dir, self.env = model, kind, logger, Path(run_dir), env
        self.eval_freq, self.eval_episodes, self.eval_seed = eval_freq, eval_episodes, eval_seed
        self.checkpoint_freq, self.stop_at = checkpoint_freq, stop_at
        start = self.num_timesteps()
        self.next_eval = (start // eval_freq + 1) * eval_freq if eval_freq else None
        self.next_ckpt = start + checkpoint_freq if checkpoint_freq else None
        self.evals: list[dict] = []
        self.interrupted = False
        self.solved = False
        ext = "zip" if kind == "sb3" else "spk"
        self.best_path = self.run_dir / f"best_model.{ext}"
        self.best_info = self.run_dir / "best_model.json"  # survives a resume
        self.best = json.loads(self.best_info.read_text()) if self.best_info.exists() else None

    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def episode(self, step, ret, length, **energy) -> None:
        self.logger.log("episode", step, **{"return": float(ret), "length": int(length), **energy})

    def evaluate(self, n_episodes: int | None = None, confirm: bool = False) -> dict:
        res = evaluate_model(self.model, self.env.id, n_episodes=n_episodes or self.eval_episodes,
                             seed=self.eval_seed, make_kwargs=self.env.make_kwargs)
        row = {**res, "episodes": len(res["returns"]), "confirm": confirm}
        self.evals.append({"step": self.num_timesteps(), **row})
        self.logger.log("eval", self.num_timesteps(), **row)
        thr, more = self.env.solved_threshold, self.env.confirm_episodes
        if not confirm and thr is not None and more and more > row["episodes"] and res["mean_return"] >= thr:
            return self.evaluate(more, confirm=True)
        self.keep_if_best(res, row["episodes"])
        return res

    def keep_if_best(self, res: dict, episodes: int) -> None:
        """Save the model as ``best_model.*`` when this evaluation (the confirmation, when one
        was run) beats every earlier one: SB3's EvalCallback habit; policy-gradient agents
        keep moving after they solve a task."""
        if self.best is not None and res["mean_return"] <= self.best["mean_return"]:
            return
        save_model(self.model, self.kind, self.best_path)
        self.best = {"step": self.num_timesteps(), "mean_return": float(res["mean_return"]), "episodes": int(episodes)}
        atomic_write(self.best_info, lambda f: f.write(json.dumps(self.best).encode()))

    def checkpoint(self) -> Path:
        path = self.run_dir / "checkpoints" / ("last.spk" if self.kind != "sb3" else "last.zip")
        save_model(self.model, self.kind, path)
        return path

    def step(self) -> bool:
        n = self.num_timesteps()
        if self.next_eval is not None and n >= self.next_eval:
            self.next_eval += self.eval_freq
            res = self.evaluate()
            if self.stop_at is not None and res["mean_return"] >= self.stop_at:
                self.solved = True
                return False
        if self.next_ckpt is not None and n >= self.next_ckpt:
            self.next_ckpt += self.checkpoint_freq
            self.checkpoint()
        if STOP.is_set():
            self.interrupted = True
            return False
        return True


class _SpikingBridge(BaseCallback):
    def __init__(self, loop: _Loop):
        self.loop = loop
        self.seen = 0

    def on_training_start(self) -> None:
        self.seen = self.model.n_episodes
        self.rows = len(self.model.logger.history)

    def on_step(self) -> bool:
        new = self.model.n_episodes - self.seen
        if new:
            for info in list(self.model.ep_info_buffer)[-new:]:
                self.loop.episode(info["t"], info["r"], info["l"], spikes_per_decision=info["spikes_per_decision"],
                                  sops_per_decision=info["sops_per_decision"], latency=info["latency"])
            self.seen = self.model.n_episodes
        history = self.model.logger.history
        for step, row in history[self.rows:]:  # training rounds (rows of train/... figures)
            train = train_figures(row)
            if train:
                self.loop.logger.log("train", step, **train)
        self.rows = len(history)
        return self.loop.step()


def _sb3_bridge(loop: _Loop, progress: bool):
    from .baselines import bridge_callback

    return bridge_callback(loop.episode, loop.step, progress,
                           on_train=lambda step, values: loop.logger.log("train", step, **values))


def save_model(model, kind: str, path) -> Path:
    """Atomically write a model: ``.spk`` for spiking/pg-mlp, SB3's zip for baselines."""
    path = Path(path)
    if kind == "sb3":
        atomic_write(path, lambda f: model.save(f))
    else:
        model.save(path)
    return path


def build_model(kind: str, agent_file, env_file, hp: dict, seed: int):
    if kind == "spiking":
        from .agent import SpikingAgent

        return SpikingAgent(_make_env_arg(env_file), seed=seed, **hp)
    if kind == "pg-mlp":
        from .pg_mlp import PGMLPAgent

        return PGMLPAgent(_make_env_arg(env_file), seed=seed, **hp)
    from .baselines import make_sb3

    return make_sb3(agent_file.algo, env_file.id, seed=seed, hyperparameters=hp, make_kwargs=env_file.make_kwargs)


def _make_env_arg(env_file):
    if not env_file.make_kwargs:
        return env_file.id
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    return gym.make_vec(env_file.id, num_envs=1, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **env_file.make_kwargs)


def load_checkpoint(kind: str, path, agent_file, env_file, hp: dict, seed: int):
    if kind == "sb3":
        from .baselines import load_sb3, make_vec, sb3_kwargs

        _, n_envs = sb3_kwargs(hp)
        return load_sb3(agent_file.algo, path, env=make_vec(env_file.id, n_envs=n_envs, seed=seed,
                                                            make_kwargs=env_file.make_kwargs))
    from .serialization import load_model

    return load_model(path, env=_make_env_arg(env_file))


def train(agent: str, env_id: str | None = None, *, steps: int | None = None, seed: int = 0, n_envs: int | None = None,
          out: str | os.PathLike = "runs", overrides: dict | None = None, use_wandb: bool = True,
          resume: str | os.PathLike | None = None, progress: bool = False, stop_at: float | None = None,
          eval_episodes: int | None = None, eval_freq: int | None = None, checkpoint_freq: int | None = None,
          run_dir: str | os.PathLike | None = None, quiet: bool = False, media: bool = False) -> Path:
    """Train ``agent`` on ``env_id``; returns the run folder. With ``resume`` (a run folder),
    continue from its last checkpoint to the step budget it was given. With ``media``, the
    final policy is shown (:func:`spikerl.show.show`: rasters, decision summaries, an episode
    video) into ``RUN_DIR/media`` and logged to W&B."""
    if resume is not None:
        run_dir = Path(resume)
        cfg = read_config(run_dir)
        agent, env_id, seed, steps = cfg["agent"], cfg["env"], cfg["seed"], cfg["steps"]
        overrides, n_envs = cfg.get("overrides", {}), None
        eval_episodes, eval_freq = cfg["eval"]["episodes"], cfg["eval"]["freq"]
        checkpoint_freq, stop_at = cfg["checkpoint_freq"], cfg.get("stop_at")
    agent_name, agent_file, agent_path = load_agent_file(agent)
    env_file, env_path = load_env_file(env_id)
    overrides = dict(overrides or {})
    if n_envs is not None:
        overrides["n_envs"] = int(n_envs)
    hp = resolve_hyperparameters(agent_file, env_file, overrides)
    steps = int(steps if steps is not None else env_file.budget)
    eval_episodes = int(eval_episodes or env_file.eval_episodes)
    eval_freq = int(eval_freq if eval_freq is not None else env_file.eval_freq)
    checkpoint_freq = int(checkpoint_freq if checkpoint_freq is not None else max(eval_freq, 1000))
    if run_dir is None:
        run_dir = Path(out) / run_name(env_file.id, agent_name, seed)
    run_dir = Path(run_dir)
    config = {
        "agent": agent_name, "kind": agent_file.kind, "algo": agent_file.algo, "env": env_file.id, "seed": int(seed),
        "steps": steps, "hyperparameters": hp, "overrides": overrides,
        "eval": {"episodes": eval_episodes, "freq": eval_freq, "seed": 10_000, "deterministic": True},
        "checkpoint_freq": checkpoint_freq, "stop_at": stop_at, "solved_threshold": env_file.solved_threshold,
        "agent_config": str(agent_path), "env_config": str(env_path) if env_path else None,
        "hyperparameter_source": agent_file.hyperparameter_source,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        write_config(run_dir, config)
    logger = RunLogger(run_dir, config, use_wandb=use_wandb, group=env_file.id, job_type=agent_name, name=run_dir.name,
                       resume_of=str(resume) if resume else None)
    kind = agent_file.kind
    ckpt = run_dir / "checkpoints" / ("last.zip" if kind == "sb3" else "last.spk")
    if resume is not None and ckpt.exists():
        model = load_checkpoint(kind, ckpt, agent_file, env_file, hp, seed)
    else:
        model = build_model(kind, agent_file, env_file, hp, seed)
    done_steps = int(model.num_timesteps)
    loop = _Loop(model, kind, logger, run_dir, env_file, eval_freq=eval_freq, eval_episodes=eval_episodes,
                 eval_seed=10_000, checkpoint_freq=checkpoint_freq, stop_at=stop_at)
    t0 = time.time()
    remaining = max(steps - done_steps, 0)
    try:
        if kind == "sb3":
            from .baselines import wandb_callback

            callbacks = [_sb3_bridge(loop, progress)] + ([wandb_callback()] if logger.wandb_run is not None else [])
            model.learn(remaining, callback=callbacks, reset_num_timesteps=False)
            if progress:
                print(file=sys.stderr)
        else:
            callbacks = [_SpikingBridge(loop)] + ([ProgressBarCallback()] if progress else [])
            model.learn(remaining, callback=callbacks, reset_num_timesteps=False)
    except BaseException:
        loop.checkpoint()  # keep what was learned; logs are flushed per row
        logger.finish({"status": "crashed", "steps": int(model.num_timesteps)})
        raise
    wall = time.time() - t0
    ckpt_path = loop.checkpoint()
    if loop.interrupted:
        logger.finish({"status": "interrupted", "steps": int(model.num_timesteps)})
        print(f"interrupted at step {model.num_timesteps}; checkpoint {ckpt_path}\n"
              f"resume with: spikerl train --resume {run_dir}", file=sys.stderr)
        return run_dir
    final = loop.evals[-1] if loop.solved else loop.evaluate()
    model_path = save_model(model, kind, run_dir / ("model.zip" if kind == "sb3" else "model.spk"))
    summary = {
        "status": "solved" if loop.solved else "finished", "agent": agent_name, "env": env_file.id, "seed": int(seed),
        "steps": int(model.num_timesteps), "wall_time": wall,
        "steps_per_second": (model.num_timesteps - done_steps) / max(wall, 1e-9),
        "final_mean_return": final["mean_return"], "final_std_return": final["std_return"],
        "final_returns": final["returns"], "n_parameters": n_parameters(model, kind),
        **{k: final[k] for k in ("spikes_per_decision", "hidden_spikes_per_decision", "sops_per_decision",
                                 "macs_per_decision", "latency") if k in final},
        "first_solved_step": first_solved(loop.evals, env_file.solved_threshold, env_file.confirm_episodes),
        "best": loop.best,
        "solved_threshold": env_file.solved_threshold,
    }
    summary["sampled"] = sampled_evaluation(model, env_file, eval_episodes)  # every agent, both modes
    if media:
        summary["media"] = write_media(model, env_file, run_dir, logger)
    logger.finish(summary, model_path)
    if not quiet:
        print(f"{run_dir}: return {final['mean_return']:.1f} +- {final['std_return']:.1f} "
              f"after {model.num_timesteps} steps ({summary['steps_per_second']:.0f} steps/s)")
    return run_dir


def write_media(model, env_file, run_dir: Path, logger) -> dict:
    """Rasters, decision summaries and an episode video of the final policy in ``RUN_DIR/media``,
    logged to W&B; a failure to draw is reported, never fatal to a finished run."""
    from .show import show

    try:
        files = show(model, env_file.id, run_dir / "media", seed=10_000, make_kwargs=env_file.make_kwargs)
    except Exception as exc:  # noqa: BLE001 - the run is done; say why there is no media
        print(f"{run_dir}: no media ({type(exc).__name__}: {exc})", file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}"}
    logger.log_media(int(model.num_timesteps), files)
    return {k: str(Path(v).relative_to(run_dir)) for k, v in files.items()}


def sampled_evaluation(model, env_file, n_episodes: int) -> dict:
    """The final policy in its sampling mode (a spiking agent's stochastic first-to-spike
    decisions, the mode a chip runs; an ANN's sampled actions): return and energy figures over
    the evaluation episodes, the same protocol and seeds as the deterministic evaluation."""
    res = evaluate_model(model, env_file.id, n_episodes=n_episodes, seed=10_000, deterministic=False,
                         make_kwargs=env_file.make_kwargs)
    return {k: res[k] for k in ("mean_return", "std_return", "returns", "spikes_per_decision",
                                "hidden_spikes_per_decision", "sops_per_decision", "macs_per_decision", "latency")
            if k in res}


def first_solved(evals: list[dict], threshold, confirm_episodes: int | None = None) -> int | None:
    """First step whose evaluation reached ``threshold`` (over ``confirm_episodes`` episodes when set)."""
    if threshold is None:
        return None
    need = confirm_episodes or 0
    return next((e["step"] for e in evals if e["mean_return"] >= threshold and e.get("episodes", need) >= need), None)


def n_parameters(model, kind: str) -> int:
    if kind == "sb3":
        from .baselines import n_parameters as sb3_params

        return sb3_params(model)
    return int(model.policy.learnable.sum())  # input neurons' v and gamma are never used


__all__ = ["train", "install_signal_handlers", "STOP", "save_model", "plot_learning_curve"]
