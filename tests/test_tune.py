"""spikerl tune: one Optuna study per agent and env, equal budgets, the best as agent YAML."""
import json

import pytest

from spikerl.cli import main
from spikerl.config import ConfigError, load_agent_file, resolve_hyperparameters, load_env_file
from spikerl.tune import load_space, sample, tune
from wandb_reader import history


@pytest.mark.parametrize("agent", ["fts-snn", "ppo", "a2c", "dqn"])
def test_tune_writes_the_best_trial_as_an_agent_file(agent, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    res = tune(agent, "CartPole-v1", trials=2, steps=600, seeds=[0], out=tmp_path, eval_episodes=2,
               use_wandb=agent == "fts-snn")
    rows = [json.loads(line) for line in (tmp_path / f"{agent}-CartPole-v1.trials.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and res["trials"] == 2
    best = max(rows, key=lambda r: r["value"])
    assert res["best_value"] == best["value"] and res["best_params"] == best["params"]
    space = load_space(agent)
    assert set(best["params"]) == set(space)
    for name, v in best["params"].items():  # sampled inside the space
        spec = space[name]
        assert v in spec["choices"] if spec["type"] == "categorical" else spec["low"] <= v <= spec["high"]
    name, af, _ = load_agent_file(res["yaml"])  # usable as --agent PATH
    hp = resolve_hyperparameters(af, load_env_file("CartPole-v1")[0], {})
    assert all(hp[k] == v for k, v in best["params"].items())
    assert "spikerl tune" in af.hyperparameter_source
    if agent == "fts-snn":
        hist, config = history(tmp_path)
        assert sorted(h["trial"] for h in hist if "trial" in h) == [0, 1] and config["steps"] == 600
    # the same storage continues the study: more trials, not a new study
    assert tune(agent, "CartPole-v1", trials=3, steps=600, seeds=[0], out=tmp_path, eval_episodes=2,
                use_wandb=False)["trials"] == 3


def test_tune_refuses_reporting_seeds_and_bad_spaces(tmp_path, capsys):
    with pytest.raises(ConfigError, match="reporting seeds never tune"):
        tune("fts-snn", "CartPole-v1", trials=1, steps=10, seeds=[0, 100], out=tmp_path, use_wandb=False)
    bad = tmp_path / "space.yaml"
    bad.write_text("learning_rate: {type: float, low: 0.1, high: 0.01}\n")
    with pytest.raises(ConfigError, match="learning_rate.*low < high"):
        load_space("fts-snn", bad)
    assert main(["tune", "--agent", "fts-snn", "--env", "CartPole-v1", "--steps", "10", "--seeds", "101",
                 "--out", str(tmp_path), "--no-wandb"]) == 2
    assert "reporting seeds" in capsys.readouterr().err


def _open_together(storage, barrier, q):
    from spikerl.tune import open_study

    barrier.wait()
    try:
        q.put(open_study("shared", storage).study_name)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        q.put(f"{type(exc).__name__}: {exc}")


def test_processes_started_together_share_one_fresh_study(tmp_path):
    """Several `spikerl tune` processes on one new SQLite file: none dies creating the tables."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    n = 4
    barrier, q = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_together, args=(storage, barrier, q)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert got == ["shared"] * n


def test_every_benchmark_agent_has_a_search_space_of_the_same_size():
    """Equal tuning budgets: every agent of the benchmark can be tuned, over as many dimensions."""
    sizes = {agent: len(load_space(agent)) for agent in ("fts-snn", "fts-snn-td", "ppo", "a2c", "dqn")}
    assert len(set(sizes.values())) == 1, sizes


def test_the_trial_budget_is_the_studys_whatever_the_number_of_processes(tmp_path):
    """Another process already running a trial of the study: this one runs only what is left
    of --trials (without the guard each process would run --trials of its own)."""
    import optuna

    from spikerl.tune import open_study

    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    other = open_study("shared", storage)  # the other process, same sampler seed
    running = other.ask()  # its trial, still running
    theirs = sample(running, load_space("ppo"))
    killed = other.ask()  # and one of a process that was killed: failed, not counted
    other._storage.set_trial_state_values(killed._trial_id, optuna.trial.TrialState.FAIL)
    res = tune("ppo", "CartPole-v1", trials=2, steps=300, seeds=[0], out=tmp_path, eval_episodes=2,
               use_wandb=False, storage=storage, study_name="shared")
    rows = [json.loads(r) for r in (tmp_path / "ppo-CartPole-v1.trials.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and res["trials"] == 2
    states = [t.state for t in optuna.load_study(study_name="shared", storage=storage).trials]
    TS = optuna.trial.TrialState
    assert states[:3] == [TS.RUNNING, TS.FAIL, TS.COMPLETE] and running.number == 0
    # the same seed would have drawn the other process's parameters again: this one draws its own
    assert rows[0]["params"] != theirs
