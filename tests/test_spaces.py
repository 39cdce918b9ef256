"""Any Gymnasium task: Discrete / MultiDiscrete / Tuple-of-Discrete observations (one-hot
groups), Discrete actions with a start, Box actions through ``action_bins``."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from spikerl import SpikingAgent
from spikerl.agent import action_values
from spikerl.callbacks import evaluate
from spikerl.coding import Encoder
from spikerl.evaluation import evaluate_model


def test_auto_features_follow_the_observation_space():
    assert Encoder(spaces.Box(-1.0, 1.0, (3,)), features="auto").features == "population"
    enc = Encoder(spaces.Discrete(4, start=3), features="auto")
    assert enc.features == "onehot" and enc.n_inputs == 4
    np.testing.assert_array_equal(enc.features_of(np.array([3, 6])), np.eye(4)[[0, 3]])
    for space, obs in ((spaces.MultiDiscrete([3, 2], start=[0, 1]), np.array([[2, 1], [0, 2]])),
                       (spaces.Tuple((spaces.Discrete(3), spaces.Discrete(2, start=1))), (np.array([2, 0]), np.array([1, 2])))):
        enc = Encoder(space, features="auto")
        assert enc.features == "onehot" and enc.n_inputs == 5
        np.testing.assert_array_equal(enc.features_of(obs), [[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]])
        single = (2, 1) if isinstance(space, spaces.Tuple) else np.array([2, 1])
        np.testing.assert_array_equal(enc.features_of(single), [[0, 0, 1, 1, 0]])


@pytest.mark.parametrize("space", [spaces.MultiDiscrete([3, 2]), spaces.Tuple((spaces.Discrete(3), spaces.Discrete(2)))])
def test_out_of_space_observation_names_the_dimension(space):
    enc = Encoder(space, features="onehot")
    with pytest.raises(ValueError, match="dimension 1"):
        enc.features_of(np.array([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        enc.features_of(np.array([1, 0, 0]))


def test_action_values_of_discrete_and_box_spaces():
    np.testing.assert_array_equal(action_values(spaces.Discrete(3, start=2), None), [2, 3, 4])
    grid = action_values(spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 2.0])), 3)
    assert grid.shape == (9, 2) and grid.dtype == np.float32
    np.testing.assert_allclose(grid[[0, 1, 8]], [[-1, 0], [-1, 1], [1, 2]])
    with pytest.raises(ValueError, match="action_bins=N"):
        action_values(spaces.Box(-1.0, 1.0, (1,)), None)
    with pytest.raises(ValueError, match="unbounded in dimension 1"):
        action_values(spaces.Box(np.array([-1.0, -np.inf]), np.array([1.0, np.inf])), 3)
    with pytest.raises(ValueError, match="at most 256"):
        action_values(spaces.Box(-1.0, 1.0, (3,)), 7)
    with pytest.raises(ValueError, match="MultiBinary"):
        action_values(spaces.MultiBinary(2), None)
    with pytest.raises(ValueError, match="action_bins"):
        SpikingAgent("Pendulum-v1", action_bins=1)


class Match(gym.Env):
    """One step: observe s in {-1, +1}, act a in [-1, 1], reward -|a - s|."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = float(self.np_random.choice([-1.0, 1.0]))
        return np.array([self.s], np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        return np.array([self.s], np.float32), -abs(float(action[0]) - self.s), True, False, {}


def test_box_actions_learn_through_action_bins(tmp_path):
    agent = SpikingAgent(Match(), seed=0, action_bins=3, n_hidden=0, reward_factor="td", learning_rate=0.03)
    assert agent.policy.topo.n_out == 3
    before = evaluate(agent, Match(), 50, deterministic=False, seed=0)["mean_return"]
    agent.learn(8_000)
    after = evaluate(agent, Match(), 50, deterministic=False, seed=0)["mean_return"]
    assert before < -0.5 and after >= -0.2, (before, after)
    action, _ = agent.predict(np.array([1.0], np.float32), deterministic=True)
    assert action.shape == (1,) and action[0] == 1.0
    agent.save(tmp_path / "m.spk")
    loaded = SpikingAgent.load(tmp_path / "m.spk")
    obs = np.array([[-1.0], [1.0]], np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])


def test_discrete_observations_learn_frozen_lake():
    env = gym.make_vec("FrozenLake-v1", num_envs=8, vectorization_mode="sync", is_slippery=False,
                       vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    agent = SpikingAgent(env, seed=0, n_hidden=0, reward_factor="td", learning_rate=0.03, critic_lr=0.1,
                         lr_schedule="constant")
    assert agent.encoder.features == "onehot" and agent.encoder.n_inputs == 16
    agent.learn(10_000)
    res = evaluate(agent, gym.make("FrozenLake-v1", is_slippery=False), 20, deterministic=False, seed=0)
    assert res["mean_return"] >= 0.8, res["mean_return"]


def test_tuple_observations_train_save_and_evaluate(tmp_path):
    agent = SpikingAgent("Blackjack-v1", seed=0, n_envs=4, n_hidden=8).learn(600)
    assert agent.encoder.n_inputs == 32 + 11 + 2 and agent.num_timesteps >= 600
    agent.save(tmp_path / "bj.spk")
    loaded = SpikingAgent.load(tmp_path / "bj.spk")
    obs = (np.array([14, 20]), np.array([3, 10]), np.array([0, 1]))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])
    # SB3's evaluate_policy hands tuples over: its returns are those of a plain loop that feeds
    # the same seeded env (reset seed 10_000, then unseeded) to the same agent state
    loaded.predict_rng = np.random.default_rng(4)
    res = evaluate_model(loaded, "Blackjack-v1", n_episodes=30)
    loaded.predict_rng = np.random.default_rng(4)
    env, mine = gym.make("Blackjack-v1"), []
    for ep in range(30):
        o, _ = env.reset(seed=10_000 if ep == 0 else None)
        done, ret = False, 0.0
        while not done:
            o, r, term, trunc, _ = env.step(loaded.predict(o, deterministic=True)[0])
            ret, done = ret + r, term or trunc
        mine.append(ret)
    assert res["returns"] == mine and len(set(mine)) > 1 and res["spikes_per_decision"] > 0


def test_one_encoder_class_per_feature_map_composed_with_the_temporal_code():
    from spikerl.coding import (ComponentOneHotFeatures, NormalizedFeatures, OneHotFeatures, PopulationFeatures,
                                RateCode, RegularCode, TileFeatures, TimeCode)

    box = spaces.Box(-1.0, 1.0, (2,))
    cases = [(box, dict(features="normalized"), NormalizedFeatures), (box, dict(features="population"), PopulationFeatures),
             (spaces.Discrete(6), dict(features="onehot"), OneHotFeatures),
             (spaces.Discrete(6), dict(features="tile", grid_shape=(2, 3), tile=(1, 2)), TileFeatures),
             (spaces.MultiDiscrete([2, 3]), dict(features="onehot"), ComponentOneHotFeatures)]
    for space, kw, cls in cases:
        for code, code_cls in (("rate", RateCode), ("time", TimeCode), ("regular", RegularCode)):
            enc = Encoder(space, code=code, T=4, **kw)
            assert type(enc.feature_map) is cls and type(enc.temporal_code) is code_cls
            space.seed(0)
            obs = np.stack([np.asarray(space.sample()) for _ in range(5)])
            p = enc(obs)
            assert np.array_equal(p, enc.temporal_code(enc.feature_map(obs))) and p.shape == (5, enc.n_inputs, 4)
    # tile: cells (0,0),(0,1) share a tile, (0,2) has its own; the second row is another tile row
    tile = Encoder(spaces.Discrete(6), features="tile", grid_shape=(2, 3), tile=(1, 2))
    assert tile.n_inputs == 4 and tile.features_of(np.arange(6)).argmax(1).tolist() == [0, 0, 1, 2, 2, 3]


def test_regular_code_fires_at_the_rate_without_noise():
    """The regular code spikes at the rate code's rate, deterministically: floor(1/2 + T r)
    spikes in T steps, evenly spaced; the kernel's threshold mode turns rate-code inputs into
    the same spikes (its inputs are a phase that starts at 1/2)."""
    from spikerl.coding import RateCode, RegularCode
    from spikerl.engine import decide
    from spikerl.kernels import exponential_bank
    from spikerl.network import init_params, layered

    T, p_max = 16, 0.9
    f = np.random.default_rng(0).uniform(0, 1, size=(64, 5))
    p = RegularCode(T, p_max)(f)
    assert set(np.unique(p)) <= {0.0, 1.0}
    np.testing.assert_array_equal(p.sum(2), np.floor(0.5 + T * p_max * f))
    gaps = [np.diff(np.flatnonzero(row)) for row in p.reshape(-1, T) if row.sum() > 1]
    assert all(g.max() - g.min() <= 1 for g in gaps)  # evenly spaced
    topo = layered(5, 0, 2, skip=True)
    a = exponential_bank(2.0, T)
    params = init_params(topo, 1, 1, rng=np.random.default_rng(1))
    thr = decide(topo, params, a, a, RateCode(T, p_max)(f), rng=np.random.default_rng(2), deterministic=True,
                 decoder="rate")
    np.testing.assert_array_equal(thr.raster[:, :5, :], p.astype(np.uint8))


def test_box_features_decode_to_the_normalized_observation():
    """Encoder.decode reads the normalized observation back: the normalized features are it;
    the population vector of the Gaussian fields is increasing in it and near it inside the range
    (what the mlp critic reads)."""
    space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
    x = np.stack([np.linspace(-2, 2, 401), np.linspace(2, -2, 401)], 1).astype(np.float32)
    z = (x + 2) / 4
    norm = Encoder(space, features="normalized", code="regular")
    np.testing.assert_allclose(norm.decode(norm.features_of(x)), z, atol=1e-6)
    pop = Encoder(space, features="population", code="regular", n_fields=8)
    d = pop.decode(pop.features_of(x))
    assert d.shape == (401, 2)
    assert np.all(np.diff(d[:, 0]) > 0) and np.all(np.diff(d[:, 1]) < 0)
    inside = (z[:, 0] > 0.25) & (z[:, 0] < 0.75)
    np.testing.assert_allclose(d[inside], z[inside], atol=0.01)
    with pytest.raises(ValueError, match="onehot features of a Discrete observation space cannot be decoded"):
        Encoder(gym.spaces.Discrete(4), features="onehot", code="regular").decode(np.eye(4))


def test_random_projections_add_population_codes_of_fixed_directions():
    """``n_projections``: after the dimensions' fields, each fixed random direction ``w`` of the
    centred normalized observation ``2 z - 1`` is population-coded as a dimension is (its value
    clipped to [-1, 1], coded as ``(y + 1) / 2``); the dimensions' fields and the decoded
    observation are unchanged; the directions are a design constant; the other feature maps
    have none; a bad count is refused by name."""
    from spikerl.coding import PROJECTION_SEED

    space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
    x = np.random.default_rng(0).uniform(-2.5, 2.5, (50, 3))
    plain = Encoder(space, features="population", code="regular", n_fields=5)
    enc = Encoder(space, features="population", code="regular", n_fields=5, n_projections=4)
    f = enc.features_of(x)
    assert f.shape == (50, (3 + 4) * 5) and enc.n_inputs == 35
    np.testing.assert_array_equal(f[:, :15], plain.features_of(x))
    np.testing.assert_array_equal(enc.decode(f), plain.decode(plain.features_of(x)))
    w = np.random.default_rng(PROJECTION_SEED).standard_normal((4, 3)) / np.sqrt(3)
    z = (np.clip(x, -2, 2) + 2) / 4
    y = np.clip((2 * z - 1) @ w.T, -1, 1)  # (50, 4)
    centres = np.linspace(0, 1, 5)
    want = np.exp(-0.5 * (((y[:, :, None] + 1) / 2 - centres) * 4) ** 2).reshape(50, 20)
    np.testing.assert_allclose(f[:, 15:], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(Encoder(space, features="population", code="regular", n_fields=5,
                                          n_projections=4).feature_map.proj, enc.feature_map.proj)
    assert enc.input_groups()[-1] == ("proj[3]", 30, 35) and enc.input_groups()[2] == ("obs[2]", 10, 15)
    assert Encoder(gym.spaces.Discrete(6), features="auto", code="regular", n_projections=4).n_inputs == 6
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n_projections"):
            Encoder(space, features="population", code="regular", n_projections=bad)
    with pytest.raises(ValueError, match="invalid hyperparameter n_projections"):
        SpikingAgent("CartPole-v1", n_projections=-2)


def test_an_agent_with_projections_saves_loads_and_resumes_its_inputs(tmp_path):
    """The directions follow from the saved configuration: a loaded agent encodes and decides
    as the saved one."""
    agent = SpikingAgent("Acrobot-v1", seed=2, n_projections=3, n_hidden=4)
    agent.learn(600)
    agent.save(tmp_path / "p.spk")
    back = SpikingAgent.load(tmp_path / "p.spk")
    assert back.config.n_projections == 3 and back.encoder.n_inputs == (6 + 3) * 8
    obs = np.random.default_rng(1).uniform(-1, 1, (20, 6))
    np.testing.assert_array_equal(back.encoder.features_of(obs), agent.encoder.features_of(obs))
    np.testing.assert_array_equal(back.policy.theta, agent.policy.theta)


def test_running_statistics_and_bounds_compute_the_numpy_statements_bit_for_bit():
    """The encoder's running statistics (Chan et al.'s merge of each batch) and the bounds read
    from them run compiled, operation by operation the numpy statements they replaced, so
    training keeps its bits: checked on batches of every size and scale, with a dimension
    whose bounds are fixed and spaces bounded on one side."""
    from spikerl.coding import PopulationFeatures

    space = spaces.Box(low=np.array([-np.inf, -2.0, -np.inf, 0.0]), high=np.array([np.inf, np.inf, 3.0, 1.0]))
    fm = PopulationFeatures(space, bounds="running")
    assert not fm.fixed.any()
    fm.fixed_low, fm.fixed_high = np.array([-np.inf, -np.inf, -np.inf, 0.0]), np.array([np.inf, np.inf, np.inf, 1.0])
    fm.fixed = np.array([False, False, False, True])
    rng = np.random.default_rng(4)
    count, mean, m2 = 0.0, np.zeros(4), np.zeros(4)
    for step in range(400):
        x = rng.standard_normal((int(rng.integers(1, 17)), 4)) * 10.0 ** rng.uniform(-2, 2, 4) + rng.uniform(-1, 1, 4)
        fm.stats.update(x)
        n = x.shape[0]  # the numpy statement
        bm = x.mean(0)
        bm2 = ((x - bm) ** 2).sum(0)
        delta = bm - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + bm2 + delta**2 * count * n / total
        count = total
        np.testing.assert_array_equal(fm.stats.mean, mean)
        np.testing.assert_array_equal(fm.stats.m2, m2)
        assert fm.stats.count == count
        spread = np.maximum(fm.n_std * (np.sqrt(m2 / max(count, 1.0)) + 1e-8), 1e-3)
        low = np.clip(mean - spread, fm.space_low, fm.space_high - 1e-3)
        high = np.clip(mean + spread, low + 1e-3, fm.space_high)
        got = fm.bounds()
        np.testing.assert_array_equal(got[0], np.where(fm.fixed, fm.fixed_low, low))
        np.testing.assert_array_equal(got[1], np.where(fm.fixed, fm.fixed_high, high))
