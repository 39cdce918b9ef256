"""Agents hold their policy by composition, through the Policy protocol; evaluation,
conversion and energy accounting use only the protocol."""
import ast
import dataclasses
from pathlib import Path

import numpy as np

from spikerl.agent import PolicyGradientAgent, SpikingAgent
from spikerl.evaluation import evaluate_model
from spikerl.hyperparams import AgentConfig, MLPConfig, SpikingConfig
from spikerl.pg_mlp import PGMLPAgent
from spikerl.policy import Policy, PolicyOutput, Replayed, SpikingPolicy
from spikerl.serialization import read_arrays, write_arrays

PKG = Path(__file__).resolve().parents[1] / "spikerl"


def test_both_policies_implement_the_protocol_and_the_ann_agent_is_not_a_spiking_agent():
    snn, mlp = SpikingAgent("CartPole-v1", n_envs=2), PGMLPAgent("CartPole-v1", n_envs=2)
    assert isinstance(snn.policy, Policy) and isinstance(mlp.policy, Policy)
    assert snn.policy.spiking and not mlp.policy.spiking
    assert not isinstance(mlp, SpikingAgent) and isinstance(mlp, PolicyGradientAgent)
    spiking_only = {f.name for f in dataclasses.fields(SpikingConfig)} - {f.name for f in dataclasses.fields(AgentConfig)}
    assert {"vote_samples", "hidden_rule", "bias_out", "n_hidden"} <= spiking_only
    assert not spiking_only & {f.name for f in dataclasses.fields(MLPConfig)}


class TabularSoftmax:
    """A third policy, written only against the protocol: one logit per (state, action)."""

    spiking = False
    scores_without_learning = False  # log-probabilities only when learning: the loop asks for them

    def __init__(self, encoder, n_actions):
        self.encoder, self.n_actions = encoder, n_actions
        self.theta = np.zeros(encoder.n_inputs * n_actions)
        self.learnable = np.ones(self.theta.size, bool)
        self.hidden_mask = np.zeros(self.theta.size, bool)
        self.param_neuron = np.zeros(self.theta.size, np.int64)
        self.estimator = None
        self.macs = encoder.n_inputs * n_actions

    @property
    def n_params(self):
        return self.theta.size

    def _probs(self, f):
        logits = f @ self.theta.reshape(-1, self.n_actions)
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def _score(self, f, p, action):
        d = -p
        d[np.arange(len(f)), action] += 1.0
        return (f[:, :, None] * d[:, None, :]).reshape(len(f), -1)

    def act(self, obs, rng, *, deterministic=False, learn=False, features=None, keep_raster=False):
        f = self.encoder.features_of(obs) if features is None else features
        p = self._probs(f)
        B = len(f)
        action = p.argmax(1) if deterministic else (p.cumsum(1) > rng.random(B)[:, None]).argmax(1)
        ll = np.log(p[np.arange(B), action])
        return PolicyOutput(action, self._score(f, p, action) if learn else None, ll, np.zeros((B, 3), np.int64),
                            np.zeros(B, np.int64), np.ones(B, np.int64), np.zeros(B, bool), None,
                            ll if learn else None, ll[:, None] if learn else None)

    def record(self, out, features):
        return {"features": features, "action": out.action}

    def replay_record(self, record):
        f, a = record["features"], record["action"]
        p = self._probs(f)
        ll = np.log(p[np.arange(len(f)), a])
        return Replayed(ll, ll, ll[:, None], self._score(f, p, a), None)

    def set_theta(self, theta):
        self.theta[:] = theta

    def regularise(self, grad, hidden_rate):
        pass

    def constrain(self, theta):
        pass

    def state_meta(self):
        return {}

    def state_arrays(self):
        return {"theta": self.theta}

    def load_state_arrays(self, arrays, meta):
        self.theta[:] = arrays["theta"]


class TabularAgent(PolicyGradientAgent):
    config_class = MLPConfig  # no network fields are read

    def _build_policy(self, n_actions):
        return TabularSoftmax(self.encoder, n_actions)


def test_a_policy_written_against_the_protocol_trains_and_is_scored_by_the_loop():
    agent = TabularAgent("FrozenLake-v1", seed=0, n_envs=4, learning_rate=0.05)
    assert isinstance(agent.policy, Policy)
    before = agent.policy.theta.copy()
    agent.learn(2_000)
    assert agent.n_updates > 0 and not np.array_equal(agent.policy.theta, before)
    res = evaluate_model(agent, "FrozenLake-v1", n_episodes=5, seed=0)
    assert res["macs_per_decision"] == agent.policy.macs and res["latency"] == 1.0


def test_evaluation_conversion_and_energy_use_no_hasattr_and_no_private_attributes():
    for name in ("evaluation.py", "conversion.py", "energy.py"):
        tree = ast.parse((PKG / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "hasattr", f"{name}:{node.lineno} dispatches on hasattr"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value.id if isinstance(node.value, ast.Name) else None
                assert owner in ("self", "cls"), f"{name}:{node.lineno} reads the private {node.attr} of another object"


def test_spiking_policy_loads_saved_state_without_re_running_its_constructor(tmp_path):
    agent = SpikingAgent("CartPole-v1", seed=1, n_envs=2, rate_reg=0.5, out_bias_max=-3.0)
    agent.save(tmp_path / "a.spk")
    loaded = SpikingAgent.load(tmp_path / "a.spk")
    pol = loaded.policy
    assert isinstance(pol, SpikingPolicy) and pol.rate_reg == 0.5 and pol.out_bias_max == -3.0
    assert np.array_equal(pol.theta, agent.policy.theta)
    theta = pol.theta.copy()
    theta[pol.bias_slice] = 0.0
    pol.constrain(theta)  # the cap set at build survives load_state_arrays
    out0 = pol.topo.n_in + pol.topo.n_hid
    assert np.all(theta[pol.bias_slice][out0:] == -3.0)


def test_pg_mlp_files_saved_with_every_spiking_field_still_load(tmp_path):
    agent = PGMLPAgent("CartPole-v1", seed=2, n_envs=2)
    agent.save(tmp_path / "m.spk")
    meta, arrays = read_arrays(tmp_path / "m.spk")
    meta["config"].update(dataclasses.asdict(SpikingConfig()) | dataclasses.asdict(agent.config))  # the old layout
    meta["config"]["gamma_out"] = meta["config"].pop("bias_out")
    write_arrays(tmp_path / "old.spk", arrays, meta)
    loaded = PGMLPAgent.load(tmp_path / "old.spk")
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(agent.config)
    obs = np.array([0.01, 0.02, -0.01, 0.0])
    assert loaded.predict(obs, deterministic=True)[0] == agent.predict(obs, deterministic=True)[0]
