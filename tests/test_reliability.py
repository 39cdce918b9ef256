"""Reliability: safe model files, atomic checkpoints, interruption and exact resumption,
input validation (property-based)."""
import os
import signal
import subprocess
import sys
import time
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikerl import SpikingAgent, load_model
from spikerl.coding import Encoder
from spikerl.serialization import ModelFileError, read_arrays, write_arrays

CARTPOLE = dict(obs_low=[-2.4, -3.0, -0.21, -3.5], obs_high=[2.4, 3.0, 0.21, 3.5])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "agent.spk"
    SpikingAgent("CartPole-v1", seed=0, batch_size=64, **CARTPOLE).learn(500).save(path)
    return path


def test_truncated_file_is_a_clear_error(model_file, tmp_path):
    data = model_file.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 20):
        bad = tmp_path / f"cut{cut}.spk"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated or corrupted|not a spikerl model file"):
            load_model(bad)


def test_corrupted_file_is_a_clear_error(model_file, tmp_path):
    data = bytearray(model_file.read_bytes())
    rng = np.random.default_rng(0)
    for trial in range(5):
        bad_data = bytearray(data)
        for i in rng.integers(100, len(data) - 100, size=20):
            bad_data[i] ^= 0xFF
        bad = tmp_path / f"bad{trial}.spk"
        bad.write_bytes(bytes(bad_data))
        with pytest.raises(ModelFileError):
            load_model(bad)
    at = data.index(b"{'descr'")  # an array's header, which numpy parses as a Python literal
    for byte in (b"(", b"["):  # unbalanced: tokenize.TokenError, SyntaxError
        bad = bytearray(data)
        bad[at : at + 1] = byte
        (tmp_path / "header.spk").write_bytes(bytes(bad))
        with pytest.raises(ModelFileError, match="truncated or corrupted"):
            load_model(tmp_path / "header.spk")
    (tmp_path / "text.spk").write_text("not a model")
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        load_model(tmp_path / "text.spk")
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path / "missing.spk")


def test_wrong_version_and_foreign_files(model_file, tmp_path):
    meta, arrays = read_arrays(model_file)
    write_arrays(tmp_path / "v99.spk", arrays, {**meta, "format_version": 99})
    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        load_model(tmp_path / "v99.spk")
    write_arrays(tmp_path / "other.spk", arrays, {**meta, "format": "something-else"})
    with pytest.raises(ModelFileError, match="not a spikerl model file"):
        load_model(tmp_path / "other.spk")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ModelFileError, match="no __meta__"):
        load_model(tmp_path / "plain.npz")
    arrays = dict(arrays)
    arrays["theta"] = arrays["theta"][:-3]
    write_arrays(tmp_path / "short.spk", arrays, meta)
    with pytest.raises(ModelFileError, match="theta"):
        load_model(tmp_path / "short.spk")


def test_pickled_payload_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.spk", "w") as z:
        import io

        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        z.writestr("__meta__.npy", buf.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):  # the payload really needs pickle to load
        np.load(io.BytesIO(buf.getvalue()), allow_pickle=False)
    with pytest.raises(ModelFileError, match="allow_pickle"):  # refused for that reason, not another
        load_model(tmp_path / "evil.spk")


def test_mismatched_env_is_named(model_file):
    with pytest.raises(ValueError, match="observation space"):
        SpikingAgent.load(model_file, env="Acrobot-v1")


def test_kill_during_checkpoint_write_leaves_a_loadable_file(tmp_path):
    """SIGKILL a process that rewrites its checkpoint in a loop; the file always loads."""
    path = tmp_path / "ckpt.spk"
    code = (
        "import sys; from spikerl import SpikingAgent\n"
        f"a = SpikingAgent('CartPole-v1', seed=0, n_hidden=256, batch_size=64, obs_low={CARTPOLE['obs_low']}, obs_high={CARTPOLE['obs_high']})\n"
        "a.learn(200)\n"
        f"a.save(r'{path}'); print('ready', flush=True)\n"
        f"while True: a.save(r'{path}')\n"
    )
    for delay in (0.05, 0.13, 0.31):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        agent = load_model(path)
        assert agent.policy.n_params > 0
    # a kill can leave a temp file behind (harmless, never read); nothing else is written
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".tmp-")} == {"ckpt.spk"}


@pytest.mark.parametrize("reward_factor,hidden_rule,critic,n_hidden,n_projections", [
    ("proximal", "joint", "features", 32, 0), ("mc", "joint", "features", 32, 0), ("td", "joint", "features", 32, 0),
    ("proximal", "posterior", "features", 32, 0), ("proximal", "posterior", "mlp", 32, 0), ("mc", "joint", "mlp", 32, 0),
    ("proximal", "posterior", "features+mlp", 32, 0),
    ("proximal", "posterior", "auto", 0, 24),  # inputs to outputs only, random directions, the perceptron critic
    ("mc", "joint", "mix", 0, 24),  # the two critics weighed by their running errors (observed by both rules)
])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, reward_factor, hidden_rule, critic, n_hidden,
                                                      n_projections):
    kw = dict(seed=3, batch_size=128, reward_factor=reward_factor, hidden_rule=hidden_rule, critic=critic,
              n_hidden=n_hidden, n_projections=n_projections, **CARTPOLE)
    full = SpikingAgent("CartPole-v1", **kw).learn(4000)

    stop_at = 1730  # mid-episode, mid-batch
    part = SpikingAgent("CartPole-v1", **kw)
    part.learn(4000, callback=lambda a: a.num_timesteps < stop_at)
    part.save(tmp_path / "ckpt.spk")
    resumed = SpikingAgent.load(tmp_path / "ckpt.spk", env="CartPole-v1")
    resumed.learn(4000 - resumed.num_timesteps, reset_num_timesteps=False)
    assert resumed.num_timesteps == full.num_timesteps
    np.testing.assert_array_equal(resumed.policy.theta, full.policy.theta)
    np.testing.assert_array_equal(resumed.critic.c, full.critic.c)


def test_sigterm_during_train_then_resume_matches_uninterrupted(tmp_path):
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=os.getcwd())
    common = ["--agent", "fts-snn", "--env", "CartPole-v1", "--steps", "30000", "--seed", "2", "--no-wandb",
              "--no-progress", "--set", "batch_size=128"]
    subprocess.run([sys.executable, "-m", "spikerl.cli", "train", *common, "--out", str(tmp_path / "full")],
                   check=True, env=env, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "spikerl.cli", "train", *common, "--out", str(tmp_path / "cut")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline:  # wait until it is training (episodes are being logged)
        runs = list((tmp_path / "cut").glob("*/metrics.jsonl"))
        if runs and runs[0].stat().st_size > 2000:
            metrics = runs[0]
            break
        time.sleep(0.05)
    assert metrics is not None
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "resume with: spikerl train --resume" in err
    run = metrics.parent
    assert (run / "checkpoints" / "last.spk").is_file() and not (run / "model.spk").exists()
    subprocess.run([sys.executable, "-m", "spikerl.cli", "train", "--resume", str(run), "--no-wandb", "--no-progress"],
                   check=True, env=env, capture_output=True)
    (full_run,) = list((tmp_path / "full").glob("*"))
    a = load_model(full_run / "model.spk")
    b = load_model(run / "model.spk")
    assert a.num_timesteps == b.num_timesteps
    np.testing.assert_array_equal(a.policy.theta, b.policy.theta)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e300, max_value=1e300)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=3, max_size=3), st.sampled_from(["normalized", "population"]),
       st.sampled_from(["rate", "time", "regular"]))
def test_encoders_accept_any_finite_observation(values, features, code):
    space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float64)
    enc = Encoder(space, features=features, code=code, T=5)
    p = enc(np.array(values))
    assert p.shape == (1, enc.n_inputs, 5)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))


@settings(max_examples=30, deadline=None)
@given(st.lists(finite, min_size=3, max_size=3), st.integers(0, 2), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_encoders_reject_non_finite_observations(values, dim, bad):
    enc = Encoder(gym.spaces.Box(-np.inf, np.inf, shape=(3,)), features="population", T=4)
    obs = np.array(values)
    obs[dim] = bad
    with pytest.raises(ValueError, match=f"dimension {dim}"):
        enc(obs)


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=4, max_size=4), st.booleans())
def test_decisions_are_valid_actions_for_any_finite_observation(values, deterministic):
    agent = _AGENT
    action, _ = agent.predict(np.array(values), deterministic=deterministic)
    assert agent.action_space.contains(int(action))


_AGENT = SpikingAgent("CartPole-v1", seed=0, **CARTPOLE)


def test_nan_reward_is_named():
    class NaNReward(gym.Wrapper):
        def step(self, action):
            obs, r, term, trunc, info = self.env.step(action)
            return obs, float("nan"), term, trunc, info

    agent = SpikingAgent(NaNReward(gym.make("CartPole-v1")), seed=0, **CARTPOLE)
    with pytest.raises(ValueError, match="reward has a non-finite value"):
        agent.learn(10)


def test_long_run_stays_finite():
    """Saturating settings (huge learning rate) must not produce NaN or overflow."""
    agent = SpikingAgent("CartPole-v1", seed=0, learning_rate=5.0, w_clip=50.0, batch_size=64, **CARTPOLE)
    with np.errstate(over="raise", invalid="raise"):
        agent.learn(20_000)
    assert np.all(np.isfinite(agent.policy.theta)) and np.all(np.isfinite(agent.critic.c))
