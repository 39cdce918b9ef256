"""The compiled one-observation predict path makes the batched path's decisions, bit for bit."""
import copy

import numpy as np
import pytest
from gymnasium import spaces

from spikerl.agent import SpikingAgent


def _twins(make, steps=0):
    """Two agents built and trained alike; the second is forced onto the batched path."""
    fast, slow = make(), make()
    slow._single_predictor = lambda deterministic: None
    for agent in (fast, slow):
        if steps:
            agent.learn(steps)
    assert np.array_equal(fast.policy.theta, slow.policy.theta)
    return fast, slow


def _observations(space, n, seed=0):
    space = copy.deepcopy(space)
    space.seed(seed)
    obs = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Box):  # beyond the running bounds too, and on them
        obs += [np.full(space.shape, 5.0, space.dtype), np.full(space.shape, -5.0, space.dtype),
                np.zeros(space.shape, space.dtype)]
    return obs


def _same_decisions(fast, slow, observations, deterministic, batch_of_one=False):
    for obs in observations:
        x = np.asarray(obs)[None] if batch_of_one else obs
        a, _ = fast.predict(x, deterministic=deterministic)
        b, _ = slow.predict(x, deterministic=deterministic)
        assert np.array_equal(a, b) and np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
    # the same figures for every decision, and the generators in the same state afterwards
    assert np.array_equal(fast.predict_stats, slow.predict_stats)
    assert fast.predict_rng.bit_generator.state == slow.predict_rng.bit_generator.state
    assert fast._predictors, "the compiled path was not taken"


CASES = {
    # population code, running bounds (statistics from a short training run), rate code
    "cartpole": (lambda: SpikingAgent("CartPole-v1", seed=3), 1500),
    "hidden": (lambda: SpikingAgent("CartPole-v1", seed=3, n_hidden=32, n_projections=0, critic="features"), 1500),
    "normalized-time": (lambda: SpikingAgent("CartPole-v1", seed=4, features="normalized", code="time", T=6), 800),
    "fixed-bounds": (lambda: SpikingAgent("CartPole-v1", seed=5, obs_norm="space", obs_low=[-2.4, -3, -0.21, -3],
                                          obs_high=[2.4, 3, 0.21, 3]), 0),
    # zeros sit mid-range: (1 - 0.5) * (T - 1) = 2.5, rounded half to even as np.rint does
    "normalized-time-fixed": (lambda: SpikingAgent("CartPole-v1", seed=13, features="normalized", code="time", T=6,
                                                   obs_norm="space", obs_low=[-1] * 4, obs_high=[1] * 4), 0),
    "rate-decoder": (lambda: SpikingAgent("CartPole-v1", seed=6, decoder="rate", output_score="pattern"), 0),
    "regular-code": (lambda: SpikingAgent("CartPole-v1", seed=14, code="regular"), 800),
    "projections": (lambda: SpikingAgent("Acrobot-v1", seed=15, n_projections=6, n_hidden=4), 800),
    "box-actions": (lambda: SpikingAgent("Pendulum-v1", seed=7, action_bins=5), 600),
    "windy-tile": (lambda: SpikingAgent("spikerl/WindyGridWorld-v0", seed=8, features="tile", grid_shape=(7, 10),
                                        tile=(2, 2)), 600),
    "frozenlake-onehot": (lambda: SpikingAgent("FrozenLake-v1", seed=9), 300),
    "multidiscrete": (lambda: SpikingAgent(_spaces=(spaces.MultiDiscrete([3, 2, 4], start=[0, 1, -1]),
                                                    spaces.Discrete(3)), seed=10), 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("mode", [False, "vote", "threshold", "median", "regular"])
def test_compiled_predict_equals_the_batched_path(case, mode):
    make, steps = CASES[case]
    fast, slow = _twins(make, steps)
    if mode:
        fast.config.deterministic_outputs = slow.config.deterministic_outputs = mode
    obs = _observations(fast.observation_space, 40)
    _same_decisions(fast, slow, obs, deterministic=bool(mode))
    _same_decisions(fast, slow, obs[:10], deterministic=bool(mode), batch_of_one=True)


def test_the_compiled_path_follows_learning_and_loading(tmp_path):
    """Parameters and running statistics change under it (learn, load): it uses the current ones."""
    fast, slow = _twins(lambda: SpikingAgent("CartPole-v1", seed=11))
    obs = _observations(fast.observation_space, 10)
    _same_decisions(fast, slow, obs, deterministic=False)
    for agent in (fast, slow):
        agent.learn(1000)
    assert np.array_equal(fast.policy.theta, slow.policy.theta)
    _same_decisions(fast, slow, obs, deterministic=True)
    trained = SpikingAgent("CartPole-v1", seed=12)
    trained.learn(1000)
    trained.save(tmp_path / "m.spk")
    loaded = SpikingAgent.load(tmp_path / "m.spk")
    fast.policy = loaded.policy  # a different policy object: the cached path must not be reused
    fast.encoder = loaded.encoder
    slow.policy, slow.encoder = copy.deepcopy(loaded.policy), copy.deepcopy(loaded.encoder)
    _same_decisions(fast, slow, obs, deterministic=False)


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan, 0.0, 0.0]), np.array([0.0, 0.0, np.inf, 0.0])])
def test_bad_observations_still_name_the_dimension(bad):
    agent = SpikingAgent("CartPole-v1", seed=0)
    state = agent.predict_rng.bit_generator.state
    with pytest.raises(ValueError, match=f"dimension {int(np.flatnonzero(~np.isfinite(bad))[0])}"):
        agent.predict(bad)
    assert agent.predict_rng.bit_generator.state == state  # nothing drawn for a refused observation
    with pytest.raises(ValueError, match="out of the"):
        SpikingAgent("FrozenLake-v1", seed=0).predict(np.int64(16))


@pytest.mark.parametrize("make, bad", [
    (lambda: SpikingAgent("FrozenLake-v1", seed=9), np.int64(99)),  # an index outside Discrete(16)
    (lambda: SpikingAgent("CartPole-v1", seed=3), np.array([0.0, np.nan, 0.0, 0.0], np.float32)),
])
def test_an_observation_the_compiled_path_cannot_encode_costs_no_draws(make, bad):
    """The compiled call draws first; when it cannot encode, the draws are given back, the
    batched path raises the error that names the problem, and the generator is where it was."""
    agent = make()
    agent.predict(agent.observation_space.sample(), deterministic=True)
    before = agent.predict_rng.bit_generator.state
    with pytest.raises(ValueError, match="observation"):
        agent.predict(bad, deterministic=True)
    assert agent.predict_rng.bit_generator.state == before and agent._predictors
