"""An SB3 user's own objects work with a spiking agent: their VecEnv trains it exactly as the
same Gymnasium vector env would, and their callbacks run in its loop."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from spikerl import SpikingAgent

pytest.importorskip("stable_baselines3")


def _cartpole():
    return gym.make("CartPole-v1", max_episode_steps=20)  # episodes both terminate and truncate


def test_an_sb3_vec_env_trains_as_the_same_gymnasium_vector_env():
    """Same envs, same seed: a DummyVecEnv and a same-step-autoreset SyncVectorEnv give the same
    parameters, critic and episode returns (terminations, truncations and their last
    observations read from SB3's infos); get_env returns the user's VecEnv."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    ref = SpikingAgent(gym.vector.SyncVectorEnv([_cartpole] * 4, autoreset_mode=AutoresetMode.SAME_STEP), seed=3)
    ref.learn(1500)
    venv = DummyVecEnv([_cartpole] * 4)
    agent = SpikingAgent(venv, seed=3).learn(1500)
    assert agent.get_env() is venv
    lengths = [e["l"] for e in ref.ep_info_buffer]
    assert 20 in lengths and min(lengths) < 20  # both kinds of episode end happened
    np.testing.assert_array_equal(agent.policy.theta, ref.policy.theta)
    np.testing.assert_array_equal(agent.critic.c, ref.critic.c)
    assert [e["r"] for e in agent.ep_info_buffer] == [e["r"] for e in ref.ep_info_buffer]


def test_an_sb3_vec_normalize_is_found_for_sb3_callbacks():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    vn = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=1))
    assert SpikingAgent(vn, seed=1).get_vec_normalize_env() is vn
    assert SpikingAgent(make_vec_env("CartPole-v1", n_envs=2, seed=1), seed=1).get_vec_normalize_env() is None


def test_sb3_callbacks_run_in_the_loop(tmp_path):
    """SB3's CheckpointCallback saves loadable agents at its steps, EvalCallback logs through
    model.logger and saves the best model, and a user's BaseCallback sees SB3's rollout locals
    at every vector step and stops training by returning False."""
    from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
    from stable_baselines3.common.env_util import make_vec_env

    class Watch(BaseCallback):
        def _on_training_start(self):
            self.total = self.locals["total_timesteps"]
            self.seen = []

        def _on_step(self):
            loc = self.locals
            assert loc["new_obs"].shape == (4, 4) and loc["actions"].shape == (4,) and len(loc["infos"]) == 4
            self.seen.append((self.num_timesteps, int(np.sum(loc["dones"])), float(np.sum(loc["rewards"]))))
            return self.num_timesteps < 400

    agent = SpikingAgent(make_vec_env("CartPole-v1", n_envs=4, seed=0), seed=0)
    watch = Watch()
    ev = EvalCallback(make_vec_env("CartPole-v1", n_envs=1, seed=5), eval_freq=25, n_eval_episodes=2,
                      best_model_save_path=str(tmp_path / "best"), verbose=0)
    agent.learn(1000, callback=[CheckpointCallback(50, str(tmp_path)), ev, watch])
    assert agent.num_timesteps == 400 and watch.total == 1000  # stopped by Watch at its 100th step
    assert [t for t, _, _ in watch.seen] == list(range(4, 401, 4)) and sum(r for _, _, r in watch.seen) == 400
    assert sum(d for _, d, _ in watch.seen) == agent.n_episodes > 0
    saved = sorted(p.name for p in tmp_path.glob("rl_model_*_steps.zip"))
    assert saved == ["rl_model_200_steps.zip", "rl_model_400_steps.zip"]
    assert SpikingAgent.load(tmp_path / "rl_model_200_steps.zip").num_timesteps == 200
    evals = [(step, row) for step, row in agent.logger.history if "eval/mean_reward" in row]
    assert [step for step, _ in evals] == [100, 200, 300, 400]
    assert (tmp_path / "best" / "best_model").is_file()
    assert ev.best_mean_reward == max(row["eval/mean_reward"] for _, row in evals)


@pytest.mark.parametrize("normalize", [False, True])
def test_a_run_on_an_sb3_vec_env_resumes_exactly(tmp_path, normalize):
    """Saved mid-episode and loaded with a fresh VecEnv of the same kind, training continues
    as if never interrupted: environments, Monitor and TimeLimit counters and (VecNormalize)
    the running statistics come back with the agent."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    def venv():
        v = make_vec_env("CartPole-v1", n_envs=4, seed=0)
        return VecNormalize(v) if normalize else v

    full = SpikingAgent(venv(), seed=3).learn(2400)
    part = SpikingAgent(venv(), seed=3)
    part.learn(2400, callback=lambda a: a.num_timesteps < 1300)
    part.save(tmp_path / "ckpt.spk")
    resumed = SpikingAgent.load(tmp_path / "ckpt.spk", env=venv())
    resumed.learn(2400 - resumed.num_timesteps, reset_num_timesteps=False)
    assert resumed.num_timesteps == full.num_timesteps == 2400
    np.testing.assert_array_equal(resumed.policy.theta, full.policy.theta)
    np.testing.assert_array_equal(resumed.critic.c, full.critic.c)
    if normalize:
        np.testing.assert_array_equal(resumed.get_env().obs_rms.mean, full.get_env().obs_rms.mean)


def test_a_subprocess_vec_env_saves_and_restarts_its_episodes(tmp_path):
    """Environments in other processes cannot be captured: the save holds the agent without
    them, and a loaded agent resets its envs and trains on."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        agent = SpikingAgent(venv, seed=0).learn(300)
        agent.save(tmp_path / "a.spk")
    finally:
        venv.close()
    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        resumed = SpikingAgent.load(tmp_path / "a.spk", env=venv)
        np.testing.assert_array_equal(resumed.policy.theta, agent.policy.theta)
        resumed.learn(200, reset_num_timesteps=False)
        assert resumed.num_timesteps == 500
    finally:
        venv.close()
