"""spikerl export --format c: the compiled module decides as the Python agent does.

The module is compiled at -std=c99 -Wall -Wextra -Werror -pedantic and driven through a
ctypes bridge (tests/c_bridge.py). With the C state seeded from the agent's numpy
generator, every decision (action, latency, spikes per population, synaptic operations) on
thousands of observations of a trained CartPole agent equals ``decide``/``predict``, in
the sampled and the deterministic (vote) mode, and the two streams stay in step.
"""
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from c_bridge import CPolicy, compile_module
from spikerl import SpikingAgent
from spikerl.cli import main
from spikerl.export import ExportError, device_critic, export_c
from spikerl.serialization import load_model

TRAINED = Path(__file__).resolve().parents[1] / "results" / "show" / "cartpole-fts-snn-s100.spk"


@pytest.fixture(scope="module")
def trained():
    return load_model(TRAINED)


@pytest.fixture(scope="module")
def cartpole_obs(trained):
    """Observations the trained agent meets (two episodes) and random ones over its bounds."""
    env = gym.make("CartPole-v1")
    obs = []
    for ep in range(2):
        o, _ = env.reset(seed=100 + ep)
        done = False
        while not done:
            obs.append(o)
            a, _ = trained.predict(o, deterministic=True)
            o, _, term, trunc, _ = env.step(a)
            done = term or trunc
    low, high = trained.policy.encoder.bounds()
    rng = np.random.default_rng(0)
    span = high - low
    obs += list(rng.uniform(low - 0.2 * span, high + 0.2 * span, size=(1500, 4)))  # clipped ones too
    return np.asarray(obs, dtype=np.float64)


def _build(model, tmp_path, **kw):
    export_c(model, tmp_path, **kw)
    return CPolicy(compile_module(tmp_path, kw.get("name", "spk_policy")), kw.get("name", "spk_policy"))


def _compare(model, c, obs, deterministic, mode, seed=7):
    model.predict_rng = np.random.default_rng(seed)
    c.seed_from(np.random.default_rng(seed))
    for o in obs:
        out = model.decide(o[None], deterministic)
        a, r = c.decide(o, mode)
        assert (a, r.latency, tuple(r.spikes), r.sops, bool(r.no_spike)) == (
            out.action[0], out.latency[0], tuple(out.spikes[0]), out.sops[0], bool(out.no_spike[0])), o
    # the streams are still in step
    st = model.predict_rng.bit_generator.state["state"]
    assert c.rng_state() == (st["state"], st["inc"])


def test_trained_cartpole_decisions_identical_in_both_modes(trained, cartpole_obs, tmp_path):
    assert len(cartpole_obs) >= 2000
    c = _build(trained, tmp_path)
    assert trained.config.deterministic_outputs == "vote"
    _compare(trained, c, cartpole_obs, False, c.SAMPLED)
    _compare(trained, c, cartpole_obs, True, c.DETERMINISTIC)
    # predict(deterministic=True) itself, env actions included
    trained.predict_rng = np.random.default_rng(3)
    c.seed_from(np.random.default_rng(3))
    for o in cartpole_obs[:300]:
        a, _ = c.decide(o, c.DETERMINISTIC)
        assert trained.predict(o, deterministic=True)[0] == trained.action_values[a]


def test_threshold_median_and_regular_modes_identical(trained, cartpole_obs, tmp_path):
    c = _build(trained, tmp_path)
    for name, mode in (("threshold", c.THRESHOLD), ("median", c.MEDIAN), ("regular", c.REGULAR)):
        rng = np.random.default_rng(1)
        c.seed_from(np.random.default_rng(1))
        for o in cartpole_obs[:500]:
            out = trained.policy.act(o[None], rng, deterministic=name)
            a, r = c.decide(o, mode)
            assert (a, r.latency, tuple(r.spikes)) == (out.action[0], out.latency[0], tuple(out.spikes[0]))


@pytest.mark.parametrize("overrides", [
    {"kernel": "raised_cosine", "n_basis": 3, "memory": 6},  # the pushed (bank) path
    {"decoder": "rate", "output_score": "pattern"},
    {"code": "time", "features": "normalized"},
    {"code": "regular"},
    {"feedback": False, "n_hidden": 0},
    {"n_projections": 5},  # the encoder's random directions
])
def test_other_networks_identical(overrides, tmp_path):
    agent = SpikingAgent("CartPole-v1", seed=2, **overrides)
    agent.learn(1_000)
    obs = np.random.default_rng(2).normal(size=(400, 4)) * [1.0, 1.0, 0.1, 1.0]
    c = _build(agent, tmp_path)
    _compare(agent, c, obs, False, c.SAMPLED)
    _compare(agent, c, obs[:100], True, c.DETERMINISTIC)


def test_discrete_observations_identical(tmp_path):
    agent = SpikingAgent("spikerl/WindyGridWorld-v0", seed=1)
    agent.learn(2_000)
    c = _build(agent, tmp_path, name="windy")
    obs = np.arange(70, dtype=np.float64).repeat(5)[:, None]
    _compare(agent, c, obs, False, c.SAMPLED)
    assert c.decide([70.0], 0)[0] == -1 and c.decide([3.5], 0)[0] == -1  # out of the space


def test_pcg64_matches_numpy_and_jumps(tmp_path, trained):
    import ctypes

    export_c(trained, tmp_path)
    lib = ctypes.CDLL(str(compile_module(tmp_path)))
    rng_t = ctypes.c_uint64 * 4
    lib.spk_policy_uniform.restype = ctypes.c_double
    lib.spk_policy_pcg64_advance.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    gen = np.random.default_rng(123)
    s, inc = gen.bit_generator.state["state"]["state"], gen.bit_generator.state["state"]["inc"]
    m = (1 << 64) - 1
    r = rng_t(s >> 64, s & m, inc >> 64, inc & m)
    assert [lib.spk_policy_uniform(ctypes.byref(r)) for _ in range(1000)] == gen.random(1000).tolist()
    lib.spk_policy_pcg64_advance(ctypes.byref(r), 12345)
    gen.bit_generator.advance(12345)
    assert lib.spk_policy_uniform(ctypes.byref(r)) == gen.random()


def test_float32_and_quantised_builds_compile_and_mostly_agree(trained, cartpole_obs, tmp_path):
    (tmp_path / "f").mkdir()
    export_c(trained, tmp_path / "f")
    c32 = CPolicy(compile_module(tmp_path / "f", float32=True))
    for weights, need in (("int16", 0.97), ("int8", 0.8)):
        out = tmp_path / weights
        rep = export_c(trained, out, weights=weights)
        assert rep["flash_bytes"] < export_c(trained, tmp_path / "f")["flash_bytes"]
        cq = CPolicy(compile_module(out))
        same = np.mean([cq.decide(o, cq.THRESHOLD)[0] == trained.policy.act(o[None], np.random.default_rng(0),
                                                                              deterministic="threshold").action[0]
                        for o in cartpole_obs[:400]])
        assert same >= need, (weights, same)
    same32 = np.mean([c32.decide(o, c32.THRESHOLD)[0] == trained.policy.act(o[None], np.random.default_rng(0),
                                                                            deterministic="threshold").action[0]
                      for o in cartpole_obs[:400]])
    assert same32 >= 0.99


def test_export_command_and_bad_input(trained, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["export", str(TRAINED), "--format", "c", "--out", str(out), "--weights", "int16"]) == 0
    assert {p.name for p in out.iterdir()} >= {"spk_policy.h", "spk_policy.c", "footprint.md", "footprint.json"}
    assert "flash" in capsys.readouterr().out
    compile_module(out)
    learn = tmp_path / "learn"
    assert main(["export", str(TRAINED), "--format", "c", "--out", str(learn), "--learn"]) == 0
    assert "SPK_POLICY_LEARN 1" in (learn / "spk_policy.h").read_text()
    compile_module(learn)
    assert main(["export", str(TRAINED), "--out", str(out), "--format", "onnx"]) == 2
    assert main(["export", str(TRAINED), "--out", str(out), "--name", "not a name"]) == 2
    c = _build(trained, tmp_path / "d")
    assert c.decide([np.nan, 0, 0, 0], 0)[0] == -1
    mlp = SpikingAgent.__new__(SpikingAgent)
    mlp.policy = object()
    with pytest.raises(ExportError, match="only spiking agents"):
        export_c(mlp, tmp_path / "e")


def _learner(model, tmp_path, name="spk_policy"):
    import ctypes

    from c_bridge import Result

    export_c(model, tmp_path, name=name, learn=True)
    c = CPolicy(compile_module(tmp_path, name), name)
    f = lambda s: getattr(c.lib, f"{name}_{s}")  # noqa: E731
    f("learn_act").argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(Result)]
    f("learn_update").argtypes = [ctypes.c_void_p, ctypes.c_double, ctypes.POINTER(ctypes.c_double), ctypes.c_int,
                                  ctypes.c_int]
    for g in ("parameters", "critic_weights"):
        f(g).restype = ctypes.POINTER(ctypes.c_double)
    res = Result()

    def act(obs):
        x = np.ascontiguousarray(np.asarray(obs, np.float64).ravel())
        return f("learn_act")(c.state, x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), ctypes.byref(res))

    def update(r, next_obs, term, trunc):
        x = np.ascontiguousarray(np.asarray(next_obs, np.float64).ravel())
        return f("learn_update")(c.state, float(r), x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), int(term),
                                 int(trunc))

    theta = lambda: np.ctypeslib.as_array(f("parameters")(c.state), (model.policy.n_params,)).copy()  # noqa: E731
    critic = lambda: np.ctypeslib.as_array(f("critic_weights")(c.state), (device_critic(model).c.size,)).copy()  # noqa: E731
    return c, act, update, theta, critic


@pytest.mark.parametrize("env_id,steps,causal", [("CartPole-v1", 5_000, False), ("spikerl/WindyGridWorld-v0", 3_000, False),
                                                 ("CartPole-v1", 5_000, True)])
def test_learn_module_trains_as_the_python_online_actor_critic(env_id, steps, causal, tmp_path):
    """The --learn module, fed the env through the bridge, ends with the parameters and critic
    of SpikingAgent(reward_factor="td") trained from the same seed on the same stream (also
    with hidden scores stopping before t*, ``causal_hidden``)."""
    env = gym.make(env_id)  # one env, reset in the step that ends an episode: what a device sees
    agent = SpikingAgent(env, seed=3, reward_factor="td", lam=0.9, learning_rate=0.003, critic_lr=0.05,
                         lr_schedule="constant", causal_hidden=causal, hidden_rule="joint", output_score="pattern",
                         n_hidden=32, n_projections=0)  # the fts-snn-td network: hidden neurons learn on the device
    c, act, update, theta, critic = _learner(agent, tmp_path)
    c.seed_from(agent.rng)
    theta0 = theta()
    np.testing.assert_array_equal(theta0, agent.policy.theta)
    agent.learn(steps)
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    episodes = 0
    for _ in range(steps):
        a = act(obs)
        assert a >= 0
        nobs, r, term, trunc, _ = env.step(agent.action_values[a])
        assert update(r, nobs, term, trunc) == 0
        obs = nobs
        if term or trunc:
            obs, _ = env.reset()
            episodes += 1
    assert episodes >= 10 and np.abs(agent.policy.theta - theta0).max() > 0.1  # it did learn
    np.testing.assert_allclose(theta(), agent.policy.theta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(critic(), agent.critic.c, rtol=0, atol=1e-9)
    st = agent.rng.bit_generator.state["state"]
    assert c.rng_state() == (st["state"], st["inc"])


def test_learn_export_refuses_what_it_cannot_run(tmp_path):
    agent = SpikingAgent("CartPole-v1", seed=0, reward_factor="td")
    with pytest.raises(ExportError, match="float weights"):
        export_c(agent, tmp_path, learn=True, weights="int16")
    with pytest.raises(ExportError, match="hidden_rule .learning_signal. does not export .joint and posterior do"):
        export_c(SpikingAgent("CartPole-v1", seed=0, hidden_rule="learning_signal", critic="features"), tmp_path,
                 learn=True)
    with pytest.raises(ExportError, match="critic 'mlp' .MLPCritic. does not export"):
        export_c(SpikingAgent("CartPole-v1", seed=0, critic="mlp"), tmp_path, learn=True)
    with pytest.raises(ExportError, match="critic 'auto' .MLPCritic. does not export"):
        export_c(SpikingAgent("CartPole-v1", seed=0, critic="auto"), tmp_path, learn=True)
    with pytest.raises(ExportError, match="critic 'features.mlp' .SumCritic. does not export"):
        export_c(SpikingAgent("CartPole-v1", seed=0, critic="features+mlp"), tmp_path, learn=True)


def test_a_mixed_critic_hands_its_linear_part_to_the_device(tmp_path):
    """A model trained with the default critic (``mix``) exports --learn: the device's critic
    starts as the mix's linear part (its own fit to the returns) with that part's slice of the
    optimiser's moments, and goes on learning from there."""
    agent = SpikingAgent("CartPole-v1", seed=0, critic="mix", n_steps=16).learn(600)
    mix = agent.critic
    assert type(mix).__name__ == "MixCritic" and mix.opt.t > 0 and (mix.err > 0).all()
    lin = device_critic(agent)
    n, m = mix.mlp.c.size, mix.linear.c.size
    np.testing.assert_array_equal(lin.c, mix.linear.c)
    np.testing.assert_array_equal(lin.opt.m, mix.opt.m[n : n + m])
    np.testing.assert_array_equal(lin.opt.v, mix.opt.v[n : n + m])
    assert lin.opt.t == mix.opt.t and lin.lr == mix.linear.lr
    c, act, update, theta, critic = _learner(agent, tmp_path)
    np.testing.assert_array_equal(critic(), mix.linear.c)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=1)
    for _ in range(200):
        a = act(obs)
        assert a >= 0
        obs, r, term, trunc, _ = env.step(int(a))
        assert update(r, obs, term, trunc) == 0
        if term or trunc:
            obs, _ = env.reset()
    assert np.abs(critic() - mix.linear.c).max() > 1e-6  # the device fits its critic on
    np.testing.assert_array_equal(mix.linear.c, lin.c)  # the model's own is untouched


def test_a_posterior_trained_model_learns_on_the_device_by_the_joint_estimator(tmp_path):
    """An agent trained by the default estimators (posterior hidden, marginal output) exports --learn,
    and the device credits hidden neurons by their own spikes' score and the outputs by the spikes
    they fired: fed the same stream, it ends with the parameters of the Python online
    actor-critic with the joint estimator and the pattern's score from the same start, not the
    default's."""
    env_id, steps = "CartPole-v1", 300
    kw = dict(seed=3, reward_factor="td", lam=0.9, learning_rate=0.003, critic_lr=0.05, lr_schedule="constant",
              n_hidden=32, n_projections=0)
    agent = SpikingAgent(gym.make(env_id), **kw)
    assert (agent.config.hidden_rule, agent.config.output_score) == ("posterior", "marginal")
    joint = SpikingAgent(gym.make(env_id), hidden_rule="joint", output_score="pattern", **kw)
    np.testing.assert_array_equal(joint.policy.theta, agent.policy.theta)
    c, act, update, theta, critic = _learner(agent, tmp_path)
    c.seed_from(agent.rng)
    agent.learn(steps)
    joint.learn(steps)
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    for _ in range(steps):
        a = act(obs)
        assert a >= 0
        obs, r, term, trunc, _ = env.step(agent.action_values[a])
        assert update(r, obs, term, trunc) == 0
        if term or trunc:
            obs, _ = env.reset()
    np.testing.assert_allclose(theta(), joint.policy.theta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(critic(), joint.critic.c, rtol=0, atol=1e-9)
    assert np.abs(theta() - agent.policy.theta).max() > 1e-6


def test_footprint_ram_is_the_compiled_state_size(trained, tmp_path):
    from spikerl.export import state_bytes

    for learn, float32 in ((False, False), (False, True), (True, False), (True, True)):
        out = tmp_path / f"{learn}{float32}"
        rep = export_c(trained, out, learn=learn)
        c = CPolicy(compile_module(out, float32=float32))
        size = c.lib.spk_policy_state_size()
        assert size == state_bytes(trained, learn=learn, real=4 if float32 else 8)
        if not float32:
            assert rep["ram_bytes"] == size
