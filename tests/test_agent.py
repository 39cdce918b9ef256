"""SpikingAgent: the SB3 surface, reproducibility and learning."""
import copy
import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from spikerl import SpikingAgent, SpikingConfig
from spikerl.callbacks import CheckpointCallback, EvalCallback, evaluate

CARTPOLE = dict(obs_low=[-2.4, -3.0, -0.21, -3.5], obs_high=[2.4, 3.0, 0.21, 3.5])
HIDDEN = dict(n_hidden=32, n_projections=0)
"""A network with hidden neurons on the dimensions' fields alone, for the tests of hidden credit."""


def test_evaluate_policy_scores_a_spiking_agent():
    from stable_baselines3.common.evaluation import evaluate_policy

    agent = SpikingAgent("CartPole-v1", seed=0, **CARTPOLE)
    mean, std = evaluate_policy(agent, gym.make("CartPole-v1"), n_eval_episodes=3, deterministic=True)
    assert np.isfinite(mean) and mean >= 8  # CartPole's shortest episodes last ~8 steps


def test_predict_single_and_batched_observations():
    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, **CARTPOLE)
    obs = np.zeros(4, np.float32)
    action, state = agent.predict(obs, deterministic=True)
    assert np.ndim(action) == 0 and agent.action_space.contains(int(action)) and state is None
    actions, _ = agent.predict(np.zeros((5, 4), np.float32))
    assert actions.shape == (5,)
    with pytest.raises(ValueError, match="shape"):
        agent.predict(np.zeros(3))
    with pytest.raises(ValueError, match="dimension 2"):
        agent.predict(np.array([0.0, 0.0, np.nan, 0.0]))


def test_save_load_gives_identical_deterministic_actions(tmp_path):
    agent = SpikingAgent("CartPole-v1", seed=3, **CARTPOLE).learn(3000)
    agent.save(tmp_path / "m.spk")
    loaded = SpikingAgent.load(tmp_path / "m.spk")
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, (64, 4)).astype(np.float32)
    a1, _ = agent.predict(obs, deterministic=True)
    a2, _ = loaded.predict(obs, deterministic=True)
    assert np.array_equal(a1, a2)
    assert np.array_equal(agent.policy.theta, loaded.policy.theta)
    assert loaded.num_timesteps == agent.num_timesteps


@pytest.mark.parametrize("reward_factor", ["proximal", "mc", "td"])
def test_same_seed_same_parameters_different_seed_differs(reward_factor):
    def train(seed):
        return SpikingAgent("CartPole-v1", seed=seed, reward_factor=reward_factor, batch_size=128, **CARTPOLE).learn(2000)

    a, b, c = train(1), train(1), train(2)
    assert np.array_equal(a.policy.theta, b.policy.theta)
    assert not np.allclose(a.policy.theta, c.policy.theta)
    assert a.n_updates > 0


@pytest.mark.parametrize("kind", ["env", "vector", "id"])
def test_accepts_env_vector_env_and_id(kind):
    env = {"env": lambda: gym.make("CartPole-v1"),
           "vector": lambda: gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync"),
           "id": lambda: "CartPole-v1"}[kind]()
    agent = SpikingAgent(env, seed=0, batch_size=64, **CARTPOLE).learn(500)
    assert agent.num_timesteps >= 500


def test_box_action_space_needs_action_bins():
    with pytest.raises(ValueError, match="Box action space.*needs action_bins"):
        SpikingAgent("Pendulum-v1")
    agent = SpikingAgent("Pendulum-v1", action_bins=5, n_envs=2)
    assert agent.policy.topo.n_out == 5
    action, _ = agent.predict(np.zeros(3, np.float32))
    assert agent.action_space.contains(action)


@pytest.mark.parametrize("bad", [dict(learning_rate=-1.0), dict(T=0), dict(features="fourier"), dict(reward_factor="q")])
def test_invalid_hyperparameters_are_named(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name if name != "features" else "fourier"):
        SpikingAgent("CartPole-v1", **bad)


def test_mlp_critic_refuses_what_it_cannot_serve():
    """critic='mlp' names itself with the online td rule (a trace rule needs the linear critic)
    and with observations it cannot read back (one-hot features of a Discrete space)."""
    with pytest.raises(ValueError, match="critic='mlp'.*td rule"):
        SpikingAgent("CartPole-v1", critic="mlp", reward_factor="td")
    with pytest.raises(ValueError, match="critic='mlp'.*onehot features of observation space Discrete"):
        SpikingAgent("FrozenLake-v1", critic="mlp")
    with pytest.raises(ValueError, match="critic='neural'"):
        SpikingAgent("CartPole-v1", critic="neural")
    with pytest.raises(ValueError, match="critic='features\\+mlp'.*td rule"):
        SpikingAgent("CartPole-v1", critic="features+mlp", reward_factor="td")
    with pytest.raises(ValueError, match="critic='features\\+mlp'.*onehot features of observation space Discrete"):
        SpikingAgent("FrozenLake-v1", critic="features+mlp")


@pytest.mark.parametrize("critic", ["features", "mlp", "features+mlp", "mix"])
def test_critic_initialisation_follows_the_seed(critic):
    """The same seed builds the same critic (a run reproduces from its command); another seed another."""
    same = [SpikingAgent("CartPole-v1", seed=5, critic=critic).critic.c for _ in range(2)]
    np.testing.assert_array_equal(*same)
    assert not np.array_equal(same[0], SpikingAgent("CartPole-v1", seed=6, critic=critic).critic.c) or critic == "features"


def test_auto_critic_is_the_mlp_where_it_applies_and_linear_elsewhere():
    """critic='auto': the perceptron for a batched rule on features that decode to the
    observation; the linear critic for the td rule and for one-hot features (tabular, exact)."""
    from spikerl.rules import Critic, MLPCritic

    assert isinstance(SpikingAgent("CartPole-v1", critic="auto").critic, MLPCritic)
    assert isinstance(SpikingAgent("CartPole-v1", critic="auto", reward_factor="mc").critic, MLPCritic)
    assert isinstance(SpikingAgent("CartPole-v1", critic="auto", reward_factor="td").critic, Critic)
    tabular = SpikingAgent("FrozenLake-v1", critic="auto").critic
    assert isinstance(tabular, Critic) and tabular.W.shape[0] == 0  # no random features on a one-hot basis


def test_mix_critic_is_the_linear_one_where_the_perceptron_cannot_serve():
    """critic='mix': both critics weighed for a batched rule on features that decode; where
    the perceptron cannot serve (the td rule's trace-learnt critic, one-hot features) the mix
    is the linear critic alone, the same parameters as critic='features' (not a refusal: mix
    must serve every task and rule)."""
    from spikerl.rules import Critic, MixCritic

    assert isinstance(SpikingAgent("CartPole-v1", critic="mix").critic, MixCritic)
    assert isinstance(SpikingAgent("CartPole-v1", critic="mix", reward_factor="mc").critic, MixCritic)
    for env, kw in (("CartPole-v1", {"reward_factor": "td"}), ("FrozenLake-v1", {})):
        mix, linear = (SpikingAgent(env, seed=2, critic=k, **kw).critic for k in ("mix", "features"))
        assert type(mix) is Critic
        np.testing.assert_array_equal(mix.W, linear.W)
        np.testing.assert_array_equal(mix.c, linear.c)


@pytest.mark.parametrize("reward_factor", ["proximal", "mc"])
def test_mix_critic_is_weighed_by_what_the_rule_observes(reward_factor):
    """critic='mix' under a batched rule: every round's returns reach the critic's running
    errors before it is fitted to them, so after training both errors are measured and the
    weights are no longer the initial halves."""
    agent = SpikingAgent("CartPole-v1", seed=0, critic="mix", reward_factor=reward_factor, n_hidden=0, n_steps=16,
                         batch_size=32).learn(800)
    assert (agent.critic.err > 0).all()
    assert not np.allclose(agent.critic.weights, 0.5)


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match="learning_rat"):
        SpikingAgent("CartPole-v1", learning_rat=0.1)


def test_cartpole_learns_with_fixed_seed():
    """REINFORCE through the three-factor rule: 60k steps lift CartPole from ~20 to >= 150."""
    agent = SpikingAgent("CartPole-v1", seed=0, **CARTPOLE)
    before = evaluate(agent, gym.make("CartPole-v1"), 10, deterministic=False, seed=0)["mean_return"]
    agent.learn(60_000)
    after = evaluate(agent, gym.make("CartPole-v1"), 10, deterministic=False, seed=0)["mean_return"]
    assert before < 60
    assert after >= 150, after


def test_online_actor_critic_learns_with_fixed_seed():
    agent = SpikingAgent("CartPole-v1", seed=0, reward_factor="td", **CARTPOLE)
    agent.learn(60_000)
    after = evaluate(agent, gym.make("CartPole-v1"), 10, deterministic=False, seed=0)["mean_return"]
    assert after >= 100, after


def test_eval_callback_stops_at_threshold_and_checkpoint_written(tmp_path):
    agent = SpikingAgent("CartPole-v1", seed=0, **CARTPOLE)
    ev = EvalCallback(gym.make("CartPole-v1"), eval_freq=2000, n_eval_episodes=3, reward_threshold=5.0)
    ck = CheckpointCallback(tmp_path / "ckpt.spk", save_freq=1000)
    agent.learn(50_000, callback=[ev, ck])
    assert agent.num_timesteps < 5000  # stopped at the first evaluation
    assert len(ev.evaluations) == 1 and ev.evaluations[0][1]["mean_return"] >= 5.0
    assert SpikingAgent.load(tmp_path / "ckpt.spk").num_timesteps == agent.num_timesteps


def test_episode_statistics_carry_energy_figures():
    agent = SpikingAgent("CartPole-v1", seed=0, **CARTPOLE).learn(2000)
    info = agent.ep_info_buffer[-1]
    assert {"r", "l", "spikes_per_decision", "sops_per_decision", "latency"} <= set(info)
    assert 1 <= info["latency"] <= agent.config.T
    assert info["sops_per_decision"] > 0


def test_pg_mlp_score_is_gradient_of_log_pi():
    from spikerl.pg_mlp import PGMLPAgent

    agent = PGMLPAgent("CartPole-v1", seed=0, mlp_hidden=5, **CARTPOLE)
    pol = agent.policy
    f = np.random.default_rng(0).random((3, pol.encoder.n_inputs))
    out = pol.act(None, np.random.default_rng(1), learn=True, features=f)
    theta0 = pol.theta.copy()
    eps = 1e-6
    for p in range(0, pol.n_params, 7):
        t = theta0.copy()
        t[p] += eps
        pol.set_theta(t)
        lp_plus = np.log(pol.forward(f)[2][np.arange(3), out.action])
        t[p] -= 2 * eps
        pol.set_theta(t)
        lp_minus = np.log(pol.forward(f)[2][np.arange(3), out.action])
        np.testing.assert_allclose(out.elig[:, p], (lp_plus - lp_minus) / (2 * eps), atol=1e-6)
    pol.set_theta(theta0)


def test_pg_mlp_learns_cartpole_with_the_same_rule():
    from spikerl.pg_mlp import PGMLPAgent

    agent = PGMLPAgent("CartPole-v1", seed=0, **CARTPOLE).learn(60_000)
    assert evaluate(agent, gym.make("CartPole-v1"), 10, deterministic=True, seed=0)["mean_return"] >= 150


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_from_config_is_the_default_agent(env_id):
    """One default: the shipped fts-snn config adds nothing to SpikingAgent(env) on any task."""
    agent = SpikingAgent.from_config(env_id, seed=0, n_envs=2)
    assert dataclasses.asdict(agent.config) == dataclasses.asdict(SpikingConfig(n_envs=2))
    assert agent.env.num_envs == 2 and agent.encoder.features == "population"


def test_median_deterministic_outputs():
    agent = SpikingAgent("CartPole-v1", seed=0, deterministic_outputs="median", bias_out=-4.0, **CARTPOLE, **HIDDEN)
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32) * 0.05
    a1, _ = agent.predict(obs, deterministic=True)
    a2, _ = agent.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)  # no randomness in the median mode
    agent.predict_stats[:] = 0
    agent.predict(obs, deterministic=True)
    median_latency = agent.predict_stats[5] / agent.predict_stats[0]
    agent.config.deterministic_outputs = "threshold"
    agent.predict_stats[:] = 0
    agent.predict(obs, deterministic=True)
    threshold_latency = agent.predict_stats[5] / agent.predict_stats[0]
    # at initialisation outputs sit far below 0: the threshold network waits for T, the median one fires earlier
    assert median_latency < threshold_latency == agent.config.T
    with pytest.raises(ValueError, match="deterministic_outputs"):
        SpikingAgent("CartPole-v1", deterministic_outputs="mode")


def test_old_hidden_rule_name_is_deprecated_and_mapped():
    with pytest.warns(DeprecationWarning, match="learning_signal"):
        agent = SpikingAgent("CartPole-v1", hidden_rule="seed", n_envs=2)
    assert agent.config.hidden_rule == "learning_signal" and agent.policy.estimator is not None


@pytest.mark.parametrize("ratio", ["joint", "output", "neuron"])
def test_proximal_rule_updates_every_learnable_neuron(ratio):
    agent = SpikingAgent(gym.make("CartPole-v1"), seed=0, ratio=ratio, n_steps=32, n_epochs=2, batch_size=16, **HIDDEN)
    before = agent.policy.theta.copy()
    agent.learn(32)  # exactly one rollout: 2 epochs of 2 minibatches
    moved = agent.policy.theta != before
    assert agent.n_updates == 4
    assert moved[agent.policy.hidden_mask & agent.policy.learnable].any()
    assert moved[~agent.policy.hidden_mask & agent.policy.learnable].any()
    assert not moved[~agent.policy.learnable].any()
    if ratio == "neuron":  # every neuron that owns a parameter is gated by its own ratio, none left out
        pol = agent.policy
        for unit in np.unique(pol.param_neuron[pol.learnable]):
            assert moved[(pol.param_neuron == unit) & pol.learnable].any(), unit


def test_each_training_round_is_logged_under_sb3_names_and_a_kl_stop_shows():
    """After each rollout's training the agent records SB3's ``train/...`` figures and dumps
    them at that step (as SB3 does once an iteration); the KL early stop cuts a round short."""
    agent = SpikingAgent(gym.make("CartPole-v1"), seed=0, n_steps=32, n_epochs=2, batch_size=16)
    agent.learn(96)  # three rollouts of 2 epochs x 2 minibatches
    rows = [(step, row) for step, row in agent.logger.history if "train/approx_kl" in row]
    assert [step for step, _ in rows] == [32, 64, 96]
    assert [row["train/n_updates"] for _, row in rows] == [4, 8, 12]
    for _, row in rows:
        assert row["train/n_epochs"] == 2 and row["train/approx_kl"] > 0 and 0 <= row["train/clip_fraction"] <= 1
        assert np.isfinite(row["train/explained_variance"]) and row["train/value_loss"] > 0
    lrs = [row["train/learning_rate"] for _, row in rows]
    assert lrs[0] > lrs[1] > lrs[2] >= 0  # the linear decay, at the step of each round
    # the first minibatch of a round has ratio 1 (KL 0); after it any change exceeds the target
    stopped = SpikingAgent(gym.make("CartPole-v1"), seed=0, n_steps=32, n_epochs=2, batch_size=16, target_kl=1e-12)
    stopped.learn(32)
    ((_, row),) = [(step, row) for step, row in stopped.logger.history if "train/n_epochs" in row]
    assert row["train/n_epochs"] == 1 and row["train/n_updates"] == stopped.n_updates == 1


def test_replayed_decision_reproduces_acting():
    """A stored decision replayed under the same parameters gives the same log-probability
    and eligibility, bit for bit (so every first ratio of a rollout is exactly 1)."""
    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, **HIDDEN)
    pol = agent.policy
    obs = np.random.default_rng(0).normal(size=(64, 4)) * 0.1
    agent.encoder.update(obs)
    out = pol.act(obs, np.random.default_rng(1), learn=True)
    rec = pol.record(out, agent.encoder.features_of(obs))
    assert rec["raster"].dtype == np.uint8 and rec["raster"].shape[-1] == -(-agent.config.T // 8)  # bits
    r = pol.replay_record(rec)
    np.testing.assert_array_equal(r.log_prob, out.log_prob)
    np.testing.assert_array_equal(r.ll_neuron, out.ll_neuron)
    np.testing.assert_array_equal(r.elig, out.elig)
    assert np.all(out.log_prob < out.ll_out)  # hidden spikes are part of the trajectory


def test_unpack_bits_is_numpys_unpackbits():
    from spikerl.policy import unpack_bits

    rng = np.random.default_rng(0)
    for T in (1, 5, 8, 9, 16, 20):
        packed = np.packbits(rng.integers(0, 2, (7, 5, T)).astype(np.uint8), axis=-1)
        got = unpack_bits(packed, T)
        np.testing.assert_array_equal(got, np.unpackbits(packed, axis=-1, count=T))
        assert got.dtype == np.uint8 and got.flags["C_CONTIGUOUS"]



def test_pack_bits_is_numpys_packbits():
    """The record's bits are numpy's ``packbits`` of the raster's spikes along time (big-endian,
    the last byte padded with 0), whatever the length, dtype and memory layout."""
    from spikerl.policy import pack_bits, unpack_bits

    rng = np.random.default_rng(0)
    for T in (1, 7, 8, 9, 16, 20):
        for dtype in (np.uint8, np.int8, bool, np.float64):
            spikes = (rng.random((6, 5, T)) < 0.4).astype(dtype)
            got = pack_bits(spikes)
            want = np.packbits(spikes.astype(bool), axis=-1)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(unpack_bits(got, T), spikes.astype(bool))
    time_major = (rng.random((4, 11, 9)) < 0.4).astype(np.uint8)  # a (B, N, T) view of (B, T, N)
    np.testing.assert_array_equal(pack_bits(time_major.transpose(0, 2, 1)),
                                  np.packbits(time_major.transpose(0, 2, 1).astype(bool), axis=-1))

def test_replayed_gradient_is_the_gated_eligibilities_bit_for_bit():
    """``replay_gradient`` gates the kernel's eligibility arrays without forming them: the
    same gradient as ``modulated_gradient`` of ``replay_record``'s eligibilities, bit for bit,
    with one modulator per neuron, one for every parameter, and each hidden-neuron estimator;
    the modulator sees the replay's log-probabilities and no eligibilities."""
    from spikerl.rules import modulated_gradient

    obs = np.random.default_rng(0).normal(size=(64, 4)) * 0.1
    for kw in ({"hidden_rule": "joint"}, {"hidden_rule": "learning_signal"}, {"hidden_rule": "posterior"},
               {"hidden_rule": "posterior", "output_score": "action"}, {"hidden_rule": "joint", "output_score": "action"},
               {"hidden_rule": "posterior", "output_score": "marginal"},
               {"hidden_rule": "joint", "output_score": "marginal"}):
        agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, **kw, **HIDDEN)
        pol = agent.policy
        agent.encoder.update(obs)
        rec = pol.record(pol.act(obs, np.random.default_rng(1), learn=True), agent.encoder.features_of(obs))
        pol.set_theta(pol.theta + np.random.default_rng(2).normal(0.0, 0.3, pol.n_params))  # ratios != 1
        estimator = copy.deepcopy(pol.estimator)  # its running baseline follows every replay
        full = pol.replay_record(rec)
        for cols in (pol.topo.n_neurons, 1):
            M = np.random.default_rng(3).normal(size=(64, cols))
            seen = []
            pol.estimator = copy.deepcopy(estimator)

            def modulator(r, M=M):
                seen.append(r)
                return M

            grad, _ = pol.replay_gradient(rec, modulator)
            np.testing.assert_array_equal(grad, modulated_gradient(M, full.elig, pol.param_neuron))
            np.testing.assert_array_equal(seen[0].ll_neuron, full.ll_neuron)
            np.testing.assert_array_equal(seen[0].log_prob, full.log_prob)


def test_acting_without_eligibilities_scores_as_learning():
    """The proximal rule acts without eligibilities (it replays its decisions for them): the
    decisions, log-probabilities and rasters are those of acting with them, bit for bit, for
    the spiking and the ANN policy; and a rollout trains to the same parameters either way."""
    from spikerl.pg_mlp import PGMLPAgent

    obs = np.random.default_rng(0).normal(size=(64, 4)) * 0.1
    for agent in (SpikingAgent("CartPole-v1", seed=0, n_envs=2), PGMLPAgent("CartPole-v1", seed=0, n_envs=2),
                  SpikingAgent("CartPole-v1", seed=0, n_envs=2, output_score="action"),
                  SpikingAgent("CartPole-v1", seed=0, n_envs=2, output_score="marginal")):
        pol = agent.policy
        agent.encoder.update(obs)
        assert pol.scores_without_learning
        full = pol.act(obs, np.random.default_rng(1), learn=True)
        lean = pol.act(obs, np.random.default_rng(1), learn=False, keep_raster=True)
        assert lean.elig is None
        for name in ("action", "log_prob", "ll_neuron", "raster"):
            a, b = getattr(full, name), getattr(lean, name)
            assert (a is None) == (b is None), name
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=name)
    thetas = []
    for lean in (True, False):
        agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2, n_steps=16, n_epochs=2, batch_size=8)
        agent.policy.scores_without_learning = lean
        start = agent.policy.theta.copy()
        thetas.append(agent.learn(64).policy.theta.copy())
        assert agent.n_updates > 0 and not np.array_equal(thetas[-1], start)
    np.testing.assert_array_equal(thetas[0], thetas[1])


def test_vote_mode_estimates_the_policys_mode():
    agent = SpikingAgent("CartPole-v1", seed=0, deterministic_outputs="vote", vote_samples=101, n_envs=2, **CARTPOLE)
    agent.learn(3000)
    obs = np.random.default_rng(0).normal(size=(30, 4)) * 0.2
    samples = agent.policy.act(np.repeat(obs, 4000, axis=0), np.random.default_rng(1)).action.reshape(30, 4000)
    p_right = samples.mean(1)
    clear = np.abs(p_right - 0.5) > 0.15
    assert clear.sum() >= 5
    agent.predict_stats[:] = 0
    votes, _ = agent.predict(obs, deterministic=True)
    np.testing.assert_array_equal(votes[clear], (p_right[clear] > 0.5).astype(int))
    # a voted decision costs its samples: ~101 decisions' spikes, latency of the slowest sample
    one = agent.policy.act(obs, np.random.default_rng(2))
    assert agent.predict_stats[1:4].sum() / 30 > 50 * one.spikes.sum(1).mean()
    assert agent.predict_stats[5] / 30 <= agent.config.T


def test_old_bias_names_are_deprecated_and_mapped(tmp_path):
    """gamma is the discount factor only; the neuron bias is `bias` (old names: one release, warned)."""
    with pytest.warns(DeprecationWarning, match="'gamma_out' is now 'bias_out'"):
        agent = SpikingAgent("CartPole-v1", gamma_out=-4.0, n_envs=2)
    out0 = agent.policy.topo.n_in + agent.policy.topo.n_hid
    assert agent.config.bias_out == -4.0 and np.all(agent.policy.params.bias[out0:] == -4.0)
    with pytest.raises(ValueError, match="both 'gamma_hidden' and its new name 'bias_hidden'"):
        SpikingAgent("CartPole-v1", gamma_hidden=-1.0, bias_hidden=-2.0)
    # in agent YAML and --set too
    from spikerl.config import AgentFile, load_env_file, resolve_hyperparameters

    with pytest.warns(DeprecationWarning, match="gamma_hidden"):
        hp = resolve_hyperparameters(AgentFile(kind="spiking", hyperparameters={"gamma_hidden": -0.5}),
                                     load_env_file("CartPole-v1")[0], {})
    assert hp["bias_hidden"] == -0.5 and "gamma_hidden" not in hp
    with pytest.warns(DeprecationWarning, match="GLMParams.bias"):
        assert agent.policy.params.gamma is agent.policy.params.bias
    # a file saved before the rename (results/show: config with gamma_hidden/gamma_out) loads silently
    import warnings
    from pathlib import Path

    old = Path(__file__).resolve().parents[1] / "results" / "show" / "cartpole-fts-snn-s100.spk"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        loaded = SpikingAgent.load(old)
    assert loaded.config.bias_hidden == -1.0 and loaded.config.bias_out == -2.0


def test_learn_keeps_openblas_to_one_thread_and_restores_it():
    """While an agent trains, numpy's OpenBLAS runs on one thread (its spinning threads would
    take the cores numba's threads use); its own count is back afterwards, also after an error."""
    import sys

    from spikerl._blas import openblas_controls
    from spikerl.callbacks import BaseCallback

    controls = openblas_controls()
    if sys.platform == "linux":
        assert controls  # numpy's wheels bundle OpenBLAS
    for setter, _ in controls:
        setter(2)
    before = [getter() for _, getter in controls]
    seen = []

    class Spy(BaseCallback):
        def on_step(self):
            seen.append([getter() for _, getter in controls])
            if len(seen) == 3:
                raise RuntimeError("stop")
            return True

    agent = SpikingAgent("CartPole-v1", seed=0, n_envs=2)
    with pytest.raises(RuntimeError, match="stop"):
        agent.learn(100, callback=Spy())
    assert seen and all(counts == [1] * len(controls) for counts in seen)
    assert [getter() for _, getter in controls] == before
    agent.learn(10)
    assert [getter() for _, getter in controls] == before


def test_a_file_written_before_a_field_existed_loads_with_what_it_meant():
    """A field added since a file was written takes the value that file meant (the behaviour of
    the version that wrote it: ``hyperparams.ADDED``), not today's default: results/show's
    CartPole model predates ``n_projections`` and ``critic`` and loads as the agent it is."""
    from pathlib import Path

    from spikerl.hyperparams import ADDED
    from spikerl.serialization import read_arrays

    old = Path(__file__).resolve().parents[1] / "results" / "show" / "cartpole-fts-snn-s100.spk"
    meta, _ = read_arrays(old)
    assert "n_projections" not in meta["config"] and "critic" not in meta["config"]
    assert ADDED["n_projections"] == 0 and ADDED["critic"] == "features"
    loaded = SpikingAgent.load(old)
    assert loaded.config.n_projections == 0 and loaded.encoder.n_inputs == loaded.policy.topo.n_in == 32
    assert loaded.config.critic == "features" and loaded.critic.c.shape == (289,)
    assert meta["config"]["n_hidden"] == loaded.policy.topo.n_hid


def test_acting_outputs_are_not_overwritten_by_the_next_call():
    """``act`` returns arrays of its own: the workspace buffers a decision (or its continuation
    to ``T``) is computed in are copied out, and a continuation's own new arrays are handed over,
    so a second call changes nothing the first returned (deterministic and sampled decisions,
    without hidden neurons and with them: the compiled and the kernel continuation)."""
    for kw in ({}, {"n_hidden": 8}):
        pol = SpikingAgent("CartPole-v1", seed=0, **kw).policy
        rng = np.random.default_rng(0)
        for deterministic in (True, False):
            first = pol.act(rng.normal(size=(6, 4)), rng, deterministic=deterministic, keep_raster=True)
            kept = [None if x is None else np.copy(x) for x in first]
            pol.act(rng.normal(size=(6, 4)) * 3.0, rng, deterministic=deterministic, keep_raster=True)
            for got, want in zip(first, kept):
                if want is not None:
                    np.testing.assert_array_equal(got, want)
