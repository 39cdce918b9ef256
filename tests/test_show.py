"""spikerl show: the raster drawn is the kernel's spike array of that decision, t* is marked
where the decision was taken, and the command writes figures and a video."""
import json

import numpy as np
import pytest
from PIL import Image

from spikerl import SpikingAgent
from spikerl.cli import main
from spikerl.show import pick_decisions, plot_rasters, run_episode, show


def _drawn(fig, k=0):
    ax = fig.axes[k]
    (img,) = ax.images
    (tline,) = [ln for ln in ax.lines if ln.get_label() == "t* (decision)"]
    return np.asarray(img.get_array()), float(tline.get_xdata()[0])


@pytest.mark.parametrize("env_id", ["CartPole-v1", "spikerl/WindyGridWorld-v0"])
def test_raster_drawn_is_the_kernels_spike_array(tmp_path, env_id):
    agent = SpikingAgent(env_id, seed=3)
    agent.learn(2_000)
    agent.predict_rng = np.random.default_rng(11)
    ep = run_episode(agent, env_id, seed=5, video=False)
    assert len(ep.decisions) >= 4
    # the same decisions again, straight from the kernel, on the same random stream
    rng = np.random.default_rng(11)
    for d in ep.decisions:
        out = agent.policy.act(d.obs[None], rng, keep_raster=True, score=False)
        assert int(out.action[0]) == d.output
        np.testing.assert_array_equal(out.raster[0], d.raster)
        assert d.t_star == int(out.latency[0]) - 1 == d.latency - 1
        np.testing.assert_array_equal(out.spikes[0], d.spikes)
    # as the learning rule sees them (learn=True): the same decision, whose input and hidden
    # spikes the default output score continues to T (sampled on after t*) with the outputs
    # silent (the action is stored beside the raster)
    out0 = agent.policy.topo.n_in + agent.policy.topo.n_hid
    for d in ep.decisions[:1]:
        out = agent.policy.act(d.obs[None], np.random.default_rng(11), learn=True, keep_raster=True)
        assert int(out.action[0]) == d.output and d.t_star == int(out.latency[0]) - 1
        np.testing.assert_array_equal(out.raster[0][:out0, : d.t_star + 1], d.raster[:out0, : d.t_star + 1])
        assert not out.raster[0][out0:].any()
    idx = pick_decisions(ep, 3)
    fig = plot_rasters(agent, ep, tmp_path / "r.png", idx)
    for k, i in enumerate(idx):
        drawn, t_line = _drawn(fig, k)
        np.testing.assert_array_equal(drawn, ep.decisions[i].raster)
        assert t_line == ep.decisions[i].t_star
        # the decision step holds the winning output's first spike (first-to-spike), unless
        # no output spiked within T steps and the fallback chose
        out0 = agent.policy.topo.n_in + agent.policy.topo.n_hid
        d = ep.decisions[i]
        assert drawn[out0 + d.output, d.t_star] == (0 if d.no_spike else 1)
        assert d.no_spike == (drawn[out0:].sum() == 0)


def test_vote_mode_shows_the_first_sample_with_its_own_decision_step(tmp_path):
    agent = SpikingAgent("CartPole-v1", seed=4, deterministic_outputs="vote")
    K = agent.config.vote_samples
    agent.predict_rng = np.random.default_rng(2)
    ep = run_episode(agent, "CartPole-v1", seed=0, deterministic=True, video=False)
    assert ep.mode == "vote"
    rng = np.random.default_rng(2)
    for d in ep.decisions[:20]:
        out = agent.policy.act(np.repeat(d.obs[None], K, axis=0), rng, keep_raster=True, score=False)
        np.testing.assert_array_equal(out.raster[0], d.raster)
        assert d.t_star == int(out.latency[0]) - 1
        assert d.latency == int(out.latency.max())
        assert d.output == np.bincount(out.action, minlength=2).argmax()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "spikerl/WindyGridWorld-v0"])
def test_show_command_writes_figures_and_video(tmp_path, env_id):
    agent = SpikingAgent(env_id, seed=0)
    model = tmp_path / "agent.spk"
    agent.save(model)
    out = tmp_path / "show"
    assert main(["show", str(model), "--out", str(out), "--episodes", "2", "--max-frames", "40"]) == 0
    summary = json.loads((out / "show.json").read_text())
    assert summary["env"] == env_id and len(summary["episodes"]) == 2
    n = summary["episodes"][0]["decisions"]
    for name in ("raster.png", "decisions.png"):
        with Image.open(out / name) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    with Image.open(out / "episode.gif") as gif:
        assert gif.n_frames == min(n, 40)  # one frame per decision, captioned
        assert gif.size[0] == 320
    assert summary["episodes"][0]["mean_latency"] >= 1


def test_show_an_sb3_model_gives_its_video_only(tmp_path):
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    files = show(model, "CartPole-v1", tmp_path, max_frames=10)
    assert set(files) == {"video", "summary"}
    with Image.open(files["video"]) as gif:
        assert gif.n_frames == min(10, json.loads(files["summary"].read_text())["episodes"][0]["decisions"])


def test_show_rejects_bad_counts(tmp_path):
    agent = SpikingAgent("CartPole-v1", seed=0)
    with pytest.raises(ValueError, match="episodes"):
        show(agent, "CartPole-v1", tmp_path, episodes=0)
    with pytest.raises(ValueError, match="n_rasters"):
        show(agent, "CartPole-v1", tmp_path, n_rasters=0)


def test_show_without_a_renderer_warns_and_keeps_the_figures(tmp_path, monkeypatch):
    import gymnasium as gym

    import spikerl.show as show_mod

    real = show_mod.make_env

    def no_pygame(env_id, make_kwargs=None, render_mode=None):
        if render_mode is not None:
            raise gym.error.DependencyNotInstalled("pygame is not installed")
        return real(env_id, make_kwargs)

    monkeypatch.setattr(show_mod, "make_env", no_pygame)
    with pytest.warns(UserWarning, match="no video.*pygame"):
        files = show(SpikingAgent("CartPole-v1", seed=0), "CartPole-v1", tmp_path)
    assert set(files) == {"raster", "decisions", "summary"}
