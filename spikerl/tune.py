"""``spikerl tune``: the same hyperparameter search budget for every agent (Optuna).

    spikerl tune --agent fts-snn --env CartPole-v1 --trials 20 --steps 50000 --seeds 0,1 \\
        --storage sqlite:///runs/tune.db [--out agents/tuned]

A trial samples hyperparameters from the agent's search space (``spaces/AGENT.yaml``: per
name a ``float``/``int`` range, optionally ``log``, or ``categorical`` choices), trains the
agent ``steps`` steps on each tuning seed in turn and scores its **final** policy over
``eval_episodes`` episodes (evaluation seeds 20,000+, disjoint from the report's 50,000+) in
both modes; the trial's value is the mean over seeds and modes. After each seed the running
mean goes to the pruner (Optuna's median pruner) so a poor trial stops early; the sampler is
TPE. The study lives in ``storage`` (SQLite by default), so several processes, or a Ray
cluster's workers, running the same command share one study and its budget: ``--trials`` is
the study's number of trials, however many processes run them. Tuning seeds must be below 100:
seeds 100 and up are reporting seeds and never tune.

The best trial's hyperparameters are written as an agent YAML
(``OUT/AGENT-ENV.yaml``: the agent's own file with those values for the env), usable as
``--agent OUT/AGENT-ENV.yaml`` everywhere; every trial and the best one are logged to W&B
(offline unless a key is configured) and to ``OUT/AGENT-ENV.trials.jsonl``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .config import ConfigError, _read_yaml, config_dirs, load_agent_file, load_env_file, resolve_hyperparameters

TUNE_EVAL_SEED = 20_000
BUDGET_SPENT = "budget_spent"
"""User attribute of a trial started after the study's budget was reached (not run, not counted)."""
REPORT_SEEDS_FROM = 100


def load_space(agent: str, path: str | os.PathLike | None = None) -> dict:
    """The search space of ``agent`` (``spaces/AGENT.yaml``), validated."""
    if path is None:
        path = next((d / f"{agent}.yaml" for d in config_dirs("spaces") if (d / f"{agent}.yaml").is_file()), None)
        if path is None:
            raise ConfigError(f"no search space for agent {agent!r}: write spaces/{agent}.yaml (or pass --space)")
    path = Path(path)
    space = _read_yaml(path)
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: a search space is a mapping of hyperparameter -> range")
    for name, spec in space.items():
        if not isinstance(spec, dict) or spec.get("type") not in ("float", "int", "categorical"):
            raise ConfigError(f"{path}: {name}: needs type float, int or categorical")
        if spec["type"] == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise ConfigError(f"{path}: {name}: categorical needs a non-empty list 'choices'")
        elif not ("low" in spec and "high" in spec and spec["low"] < spec["high"]):
            raise ConfigError(f"{path}: {name}: needs low < high")
    return space


def sample(trial, space: dict) -> dict:
    out = {}
    for name, spec in space.items():
        if spec["type"] == "float":
            out[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        elif spec["type"] == "int":
            out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            out[name] = trial.suggest_categorical(name, spec["choices"])
    return out


def score(model, env_file, episodes: int) -> float:
    """Mean final return over both modes (the same protocol for every agent)."""
    from .evaluation import evaluate_model

    return sum(evaluate_model(model, env_file.id, n_episodes=episodes, seed=TUNE_EVAL_SEED, deterministic=det,
                              make_kwargs=env_file.make_kwargs)["mean_return"] for det in (False, True)) / 2


def open_study(study_name: str, storage: str, sampler_seed: int = 0, attempts: int = 8):
    """Create or load the study; processes started together on a fresh SQLite file all get it.

    Two processes opening a new SQLite storage at the same moment both try to create its tables
    and one fails with ``table ... already exists`` or a duplicate schema-version row (found
    starting two ``spikerl tune`` commands together); the loser retries, by then the tables
    exist and it loads them.
    """
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(attempts):
        try:
            return optuna.create_study(
                study_name=study_name, storage=storage, load_if_exists=True, direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0))
        except (OperationalError, IntegrityError):  # tables, or the schema version row, made by another
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def tune(agent: str, env_id: str, *, trials: int, steps: int, seeds=(0, 1), storage: str | None = None,
         study_name: str | None = None, space: str | None = None, out: str | os.PathLike = "agents/tuned",
         eval_episodes: int = 20, use_wandb: bool = True, sampler_seed: int = 0) -> dict:
    """Run (or continue) the study; returns ``{"best_value", "best_params", "yaml", "trials"}``."""
    import optuna
    from optuna.trial import TrialState

    seeds = [int(s) for s in seeds]
    if not seeds or any(s >= REPORT_SEEDS_FROM or s < 0 for s in seeds):
        raise ConfigError(f"tuning seeds must be in 0..{REPORT_SEEDS_FROM - 1} (reporting seeds never tune), got {seeds}")
    if trials < 1 or steps < 1:
        raise ConfigError(f"--trials and --steps must be >= 1, got {trials} and {steps}")
    agent_name, agent_file, agent_path = load_agent_file(agent)
    env_file, _ = load_env_file(env_id)
    space_def = load_space(agent_name, space)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    slug = f"{agent_name}-{env_file.id.replace('/', '-')}"
    storage = storage or f"sqlite:///{out / 'tune.db'}"
    study_name = study_name or f"{slug}-{steps}x{len(seeds)}"
    study = open_study(study_name, storage, sampler_seed)
    log = open(out / f"{slug}.trials.jsonl", "a", buffering=1)
    run = None
    if use_wandb:
        import wandb

        from .runs import PROJECT, wandb_mode

        run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), group=env_file.id, job_type="tune",
                         name=study_name, dir=str(out), mode=wandb_mode(), reinit="finish_previous",
                         config={"agent": agent_name, "env": env_file.id, "trials": trials, "steps": steps,
                                 "seeds": seeds, "space": space_def, "storage": storage})

    def objective(trial):
        from .train import build_model

        # The budget is the study's, not the process's: with several processes on one study, a
        # trial that finds ``trials`` others numbered before it (finished or running; failed
        # ones, e.g. of a killed process, do not count) is not run.
        before = [t for t in trial.study.get_trials(deepcopy=False)
                  if t.number < trial.number and not t.user_attrs.get(BUDGET_SPENT) and t.state != TrialState.FAIL]
        if len(before) >= trials:
            trial.set_user_attr(BUDGET_SPENT, True)
            trial.study.stop()
            raise optuna.TrialPruned("the study's trial budget is spent")
        if not state["sampled"]:
            state["sampled"] = True
            if trial.number > 0:
                # the study has trials already, of another process or of an earlier run, whose
                # sampler had this seed: the same seed would draw their parameters again, so this
                # process samples from its own stream (a fresh study's first process keeps its seed)
                trial.study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + trial.number)
        params = sample(trial, space_def)
        values = []
        for i, seed in enumerate(seeds):
            hp = resolve_hyperparameters(agent_file, env_file, params, where=f"search space of {agent_name}")
            model = build_model(agent_file.kind, agent_file, env_file, hp, seed)
            model.learn(steps)
            values.append(score(model, env_file, eval_episodes))
            trial.report(sum(values) / len(values), i)
            if trial.should_prune():
                _record(trial.number, params, values, "pruned")
                raise optuna.TrialPruned()
        _record(trial.number, params, values, "complete")
        return sum(values) / len(values)

    def _record(number, params, values, state):
        row = {"trial": number, "state": state, "params": params, "values": values,
               "value": sum(values) / len(values)}
        log.write(json.dumps(row) + "\n")
        if run is not None:
            run.log({"trial": number, "value": row["value"], "pruned": state == "pruned",
                     **{f"params/{k}": v for k, v in params.items()}})

    done = len([t for t in study.trials if t.state.is_finished() and not t.user_attrs.get(BUDGET_SPENT)])
    state = {"sampled": False}
    try:
        study.optimize(objective, n_trials=max(trials - done, 0))
    finally:
        log.close()
    counted = [t for t in study.trials if not t.user_attrs.get(BUDGET_SPENT) and t.state != TrialState.FAIL]
    best = study.best_trial
    data = _read_yaml(agent_path)
    data.setdefault("envs", {}).setdefault(env_file.id, {}).update(best.params)
    data["description"] = f"{data.get('description', agent_name)}; tuned for {env_file.id} by spikerl tune"
    data["hyperparameter_source"] = (f"spikerl tune: study {study_name} ({storage}), {trials} trials x {steps} steps x "
                                     f"seeds {seeds}, TPE + median pruner; best trial {best.number}, value "
                                     f"{best.value:.2f} (mean final return, both modes, {eval_episodes} episodes)")
    import yaml

    yaml_path = out / f"{slug}.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = {"best_value": best.value, "best_params": best.params, "yaml": str(yaml_path),
              "trials": len(counted), "study": study_name, "storage": storage}
    if run is not None:
        for k, v in best.params.items():
            run.summary[f"best/{k}"] = v
        run.summary["best_value"] = best.value
        run.finish()
    return result


__all__ = ["tune", "open_study", "load_space", "sample", "score", "TUNE_EVAL_SEED"]
