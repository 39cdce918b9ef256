"""The spikerl command: train/eval/list on tiny budgets, config errors, run folders, W&B."""
import json
import subprocess
import sys

import pytest

from spikerl.cli import main
from spikerl.config import ConfigError, load_agent_file
from wandb_reader import history


def _train(tmp_path, agent, steps=600, extra=()):
    rc = main(["train", "--agent", agent, "--env", "CartPole-v1", "--steps", str(steps), "--seed", "1",
               "--out", str(tmp_path), "--no-progress", "--set", "batch_size=64" if agent.endswith("snn") else "n_envs=2",
               *extra])
    assert rc == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and f"__{agent}__" in p.name]
    return run


@pytest.mark.parametrize("agent,model", [("fts-snn", "model.spk"), ("ppo", "model.zip")])
def test_train_writes_a_complete_run_folder(tmp_path, agent, model, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = _train(tmp_path, agent)
    assert run.name.startswith(f"CartPole-v1__{agent}__s1__")
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "learning_curve.png", model):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / model.replace("model", "last")).is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in rows if r["type"] == "episode"]
    evals = [r for r in rows if r["type"] == "eval"]
    assert episodes and evals
    assert {"step", "return", "length", "wall_time"} <= set(episodes[0])
    assert {"step", "mean_return", "std_return", "latency"} <= set(evals[-1])
    # the training rounds' figures, under SB3's names for both agents
    trains = [r for r in rows if r["type"] == "train"]
    assert trains and {"approx_kl", "clip_fraction", "value_loss", "explained_variance", "learning_rate",
                       "n_updates"} <= set(trains[-1])
    assert all(a["step"] < b["step"] and a["n_updates"] < b["n_updates"] for a, b in zip(trains, trains[1:]))
    if agent == "fts-snn":
        assert {"spikes_per_decision", "sops_per_decision", "latency"} <= set(episodes[0])
        assert evals[-1]["sops_per_decision"] > 0
    else:
        assert evals[-1]["macs_per_decision"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] >= 600 and summary["status"] == "finished"
    # the best evaluation's model is kept beside the final one
    assert (run / model.replace("model", "best_model")).is_file()
    best = json.loads((run / "best_model.json").read_text())
    assert best == summary["best"]
    assert best["mean_return"] == max(e["mean_return"] for e in evals)
    assert best["step"] in [e["step"] for e in evals]

    # the offline W&B run, read back from disk
    hist, config = history(run)
    returns = [h["episode/return"] for h in hist if "episode/return" in h]
    assert len(returns) == len(episodes)
    assert returns == pytest.approx([e["return"] for e in episodes])
    assert any("eval/mean_return" in h for h in hist)
    assert [h["train/approx_kl"] for h in hist if "train/approx_kl" in h] == pytest.approx(
        [r["approx_kl"] for r in trains])
    assert config["agent"] == agent and config["env"] == "CartPole-v1"
    if agent == "ppo":  # W&B's SB3 integration recorded the algorithm's own hyperparameters
        assert config.get("algo") == "PPO" and "n_steps" in config

    # media of the final policy: an episode video for both, rasters for the spiking agent, in W&B too
    media = {k: v for h in hist for k, v in h.items() if k.startswith("media/")}
    assert media["media/video/_type"] == "video-file"
    assert (run / "media" / "episode.gif").is_file()
    spiking = agent == "fts-snn"
    assert ("media/raster/_type" in media) == spiking and (run / "media" / "raster.png").is_file() == spiking
    if spiking:
        assert media["media/raster/_type"] == media["media/decisions/_type"] == "image-file"
    for key in [k for k in media if k.endswith("/path")]:  # the files W&B will upload
        assert list(run.glob(f"wandb/*/files/{media[key]}")), media[key]
    assert summary["media"]["video"] == "media/episode.gif"


def test_eval_and_list_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = _train(tmp_path, "fts-snn", extra=["--no-wandb"])
    capsys.readouterr()
    from spikerl.evaluation import evaluate_model
    from spikerl.serialization import load_model

    def expected(model_file, n, deterministic=True):  # the one protocol, on a fresh load
        res = evaluate_model(load_model(run / model_file), "CartPole-v1", n_episodes=n, deterministic=deterministic)
        return round(res["mean_return"], 3), round(res["latency"], 3)

    assert main(["eval", str(run), "--episodes", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["env"] == "CartPole-v1" and (out["mean_return"], out["latency"]) == expected("model.spk", 2)
    assert main(["eval", str(run / "model.spk"), "--episodes", "3", "--no-deterministic"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["mean_return"], out["latency"]) == expected("model.spk", 3, deterministic=False)
    assert main(["eval", str(run), "--best", "--episodes", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_return"] == expected("best_model.spk", 2)[0]
    assert main(["eval", str(run / "model.spk"), "--best"]) == 2
    assert "--best needs a run folder" in capsys.readouterr().err
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    for name in ("fts-snn", "rate-snn", "ppo", "a2c", "dqn", "pg-mlp", "CartPole-v1", "spikerl/WindyGridWorld-v0"):
        assert name in listing


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "spikerl.cli", "list"], capture_output=True, text=True)
    assert out.returncode == 0 and "fts-snn" in out.stdout


def test_config_errors_name_file_key_and_type(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: spiking\nhyperparameters:\n  learning_rate: fast\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*learning_rate.*float"):
        load_agent_file(bad)
    bad.write_text("kind: spiking\nhyperparameters:\n  learnin_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown key 'learnin_rate'"):
        load_agent_file(bad)
    bad.write_text("kind: quantum\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*kind"):
        load_agent_file(bad)
    assert main(["train", "--agent", "fts-snn", "--env", "CartPole-v1", "--steps", "10", "--set", "T=many",
                 "--out", str(tmp_path), "--no-wandb"]) == 2
    assert "'T' must be of type int" in capsys.readouterr().err
    assert main(["train", "--agent", "nope", "--env", "CartPole-v1"]) == 2
    assert "unknown agent 'nope'" in capsys.readouterr().err
    assert main(["train", "--agent", "fts-snn", "--env", "NoSuchEnv-v9"]) == 2
    assert "unknown env 'NoSuchEnv-v9'" in capsys.readouterr().err


def test_shipped_configs_all_validate():
    from spikerl.config import list_agents, list_envs, load_env_file

    for name in list_agents():
        load_agent_file(name)
    for env_id in list_envs():
        load_env_file(env_id)
