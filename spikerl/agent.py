"""SpikingAgent: a first-to-spike GLM spiking policy trained with the local reward-modulated
three-factor rule; Gymnasium in, Stable-Baselines3 shape out (DESIGN.md section 6).

The learning loop (:class:`PolicyGradientAgent`) holds its policy by composition: anything
that implements :class:`~spikerl.policy.Policy` (act, record/replay, parameters, state).
:class:`SpikingAgent` builds a :class:`~spikerl.policy.SpikingPolicy`; ``pg-mlp``
(:mod:`spikerl.pg_mlp`) builds a perceptron and shares the loop, not the spiking agent.

    agent = SpikingAgent("CartPole-v1", seed=0)
    agent.learn(100_000)
    action, state = agent.predict(obs, deterministic=True)
    agent.save("cartpole.spk"); agent = SpikingAgent.load("cartpole.spk")

``learn`` is a short loop: act on every environment with one compiled call, step the
environments, hand the step to the rule (:mod:`spikerl.rules`) and apply every update it
yields (none while a rollout fills, one per minibatch when it trains).
"""
from __future__ import annotations

import dataclasses
from collections import deque

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from ._blas import single_threaded_blas
from .callbacks import BaseCallback, KeyValueLogger, make_callback
from .coding import Encoder, check_finite, obs_array, obs_shape
from .config import load_agent_file, load_env_file, resolve_hyperparameters
from .fastpath import SinglePredictor
from .hyperparams import AgentConfig, SpikingConfig, upgrade_keys
from .optim import Adam
from .policy import PolicyOutput, SpikingPolicy, decision_summary
from .rules import (ActorCriticRule, Critic, LearningSignal, MixCritic, MLPCritic, MonteCarloRule, PosteriorSpikes,
                    ProximalRule, SumCritic, Transition)
from .serialization import describe_space, load_agent, save_agent
from .vec_env import SB3VecEnv, is_sb3_vec_env, venv_chain


MAX_ACTIONS = 256


def action_values(space, bins: int | None) -> np.ndarray:
    """The env action of each output neuron, ``(n_outputs, *space.shape)``: ``start + i`` for a
    Discrete space; for a Box space with ``bins``, every combination of ``bins`` evenly spaced
    values per dimension (first dimension slowest)."""
    if isinstance(space, spaces.Discrete):
        return np.arange(int(space.n), dtype=np.int64) + int(space.start)
    if not isinstance(space, spaces.Box):
        raise ValueError(f"SpikingAgent decides by first-to-spike and needs a Discrete (or, with action_bins, a Box) "
                         f"action space; got action space {space}")
    if bins is None:
        raise ValueError(f"SpikingAgent decides by first-to-spike among output neurons; the Box action space {space} "
                         f"needs action_bins=N (N values per dimension)")
    low, high = np.asarray(space.low, np.float64).ravel(), np.asarray(space.high, np.float64).ravel()
    bad = ~(np.isfinite(low) & np.isfinite(high))
    if bad.any():
        raise ValueError(f"action_bins needs finite action bounds; the Box action space {space} is unbounded in "
                         f"dimension {int(np.nonzero(bad)[0][0])}")
    if bins ** low.size > MAX_ACTIONS:
        raise ValueError(f"action_bins={bins} over {low.size} action dimensions makes {bins ** low.size} output "
                         f"neurons (at most {MAX_ACTIONS})")
    axes = [np.linspace(lo, hi, bins) for lo, hi in zip(low, high)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, low.size)
    return grid.reshape(-1, *space.shape).astype(space.dtype)


def _make_vec_env(env, n_envs: int) -> gym.vector.VectorEnv:
    if isinstance(env, str):
        spec = gym.spec(env)
        mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
        kwargs = {} if mode == "vector_entry_point" else {"vector_kwargs": {"autoreset_mode": AutoresetMode.SAME_STEP}}
        return gym.make_vec(env, num_envs=n_envs, vectorization_mode=mode, **kwargs)
    if isinstance(env, gym.vector.VectorEnv):
        return env
    if isinstance(env, gym.Env):
        return gym.vector.SyncVectorEnv([lambda: env], autoreset_mode=AutoresetMode.SAME_STEP)
    if is_sb3_vec_env(env):
        return SB3VecEnv(env)
    raise ValueError(f"env must be a Gymnasium Env, VectorEnv, Stable-Baselines3 VecEnv or env id, got "
                     f"{type(env).__name__}")


def _info_list(infos: dict, n: int) -> list[dict]:
    """Gymnasium's vector ``infos`` (arrays, entry ``i`` present where ``infos["_key"][i]``) as
    SB3's list of one dict per environment."""
    return [{k: v[i] for k, v in infos.items() if not k.startswith("_") and ("_" + k not in infos or infos["_" + k][i])}
            for i in range(n)]


class PolicyGradientAgent:
    """The policy-gradient loop of spikerl's agents, with the SB3 surface (``learn``,
    ``predict``, ``save``, ``load``): vector env, encoder, critic, reward factor, optimiser.
    The policy comes from :meth:`_build_policy` and is used only through the
    :class:`~spikerl.policy.Policy` protocol.

    Args:
        env: a Gymnasium ``Env``, ``VectorEnv``, Stable-Baselines3 ``VecEnv`` or env id (``None`` only when loading for
            prediction).
        seed: seeds the environments, the network's initialisation and every random draw.
        **hyperparameters: fields of :attr:`config_class`.
    """

    config_class = AgentConfig
    agent_file = None
    _acting: dict = {}
    """Keyword arguments of the training loop's ``policy.act`` beyond the protocol's."""
    """The agent YAML that :meth:`from_config` reads by default."""

    def __init__(self, env=None, *, seed: int | None = None, _spaces=None, **hyperparameters):
        hyperparameters = upgrade_keys(hyperparameters)
        unknown = set(hyperparameters) - {f.name for f in dataclasses.fields(self.config_class)}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; see {self.config_class.__name__}")
        self.config = self.config_class(**hyperparameters).validate()
        self.seed = seed
        self.env_id = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
        self.env = None if env is None else _make_vec_env(env, self.config.n_envs)
        if self.env is not None:
            obs_space, act_space = self.env.single_observation_space, self.env.single_action_space
        elif _spaces is not None:
            obs_space, act_space = _spaces
        else:
            raise ValueError("SpikingAgent needs an env (or spaces when loaded)")
        self.observation_space, self.action_space = obs_space, act_space
        c = self.config
        self.action_values = action_values(act_space, c.action_bins)
        self.rng = np.random.default_rng(seed)
        self.predict_rng = np.random.default_rng(None if seed is None else seed + 1_000_003)
        self.encoder = Encoder(obs_space, features=c.features, code=c.code, T=c.T, p_max=c.p_max, n_fields=c.n_fields,
                               width=c.field_width, low=c.obs_low, high=c.obs_high, grid_shape=c.grid_shape, tile=c.tile,
                               bounds=c.obs_norm, n_projections=c.n_projections)
        self.policy = self._build_policy(len(self.action_values))
        self.optimizer = Adam(self.policy.n_params)
        # one-hot features are already a complete (tabular) basis: random features would only
        # spread values between states (and the optimism of unvisited states with them)
        tabular = self.encoder.features in ("onehot", "tile")
        critic = c.critic
        perceptron_serves = self.encoder.decodes and c.reward_factor != "td"
        if critic == "auto":
            critic = "mlp" if perceptron_serves else "features"
        if critic == "mix" and not perceptron_serves:  # the mix of the linear critic alone
            critic = "features"
        if critic in ("mlp", "features+mlp") and not self.encoder.decodes:
            raise ValueError(f"critic={critic!r} reads the normalized observation, which the {self.encoder.features} "
                             f"features of observation space {obs_space} do not give back (use critic='features')")
        if critic != "features":
            # in a sum, the perceptron draws from its own stream (the linear part's projection draws from seed's)
            mlp_seed = seed + 1 if critic in ("features+mlp", "mix") and seed is not None else seed
            mlp = MLPCritic(self.encoder.obs_dim, 0.001 if c.critic_lr is None else c.critic_lr, hidden=c.critic_hidden,
                            decode=self.encoder.decode, seed=mlp_seed)
        if critic != "mlp":
            linear = Critic(self.encoder.n_inputs, 0.01 if c.critic_lr is None else c.critic_lr,
                            n_random=0 if tabular else c.critic_features, scale=c.critic_scale, seed=seed)
        if critic in ("features+mlp", "mix"):
            self.critic = (SumCritic if critic == "features+mlp" else MixCritic)(mlp, linear)
        else:
            self.critic = mlp if critic == "mlp" else linear
        self.num_timesteps = 0
        self.n_episodes = 0
        self.ep_info_buffer: deque = deque(maxlen=c.stats_window)
        self.decision_stats = np.zeros(6)  # decisions, in, hid, out spikes, sops, latency (training)
        self.logger = KeyValueLogger()
        """What SB3 callbacks record into (``model.logger.record``/``dump``)."""
        self._last_step = None  # (new_obs, actions, rewards, dones, infos) of the last vector step
        self.predict_stats = np.zeros(6)  # the same for predict calls
        self._obs = None
        self._next_feats = None
        self._rule = None
        self.n_updates = 0

    @classmethod
    def from_config(cls, env_id: str, agent: str | None = None, *, seed: int | None = None, **overrides):
        """An agent with the hyperparameters of ``agents/{agent}.yaml`` (default: the class's
        own file) and the encoding of ``envs/{env_id}.yaml`` (what ``spikerl train`` uses),
        plus ``overrides``."""
        _, agent_file, _ = load_agent_file(agent or cls.agent_file)
        env_file, _ = load_env_file(env_id)
        return cls(env_id, seed=seed, **resolve_hyperparameters(agent_file, env_file, overrides))

    def _build_policy(self, n_actions: int):
        """The policy (a :class:`~spikerl.policy.Policy`) for ``n_actions`` actions."""
        raise NotImplementedError

    # -- the SB3 surface -------------------------------------------------------------
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """``(action, state)`` for one observation or a batch, as SB3's ``PolicyPredictor``.

        Decisions do not carry spike history across calls, so ``state`` is returned as given.
        """
        obs = obs_array(self.observation_space, observation)
        single = self._is_single(obs)
        if single or len(obs) == 1:  # one observation: encoder and decision in one compiled call
            idx = self._single_predictor(deterministic)
            idx = None if idx is None else idx(obs, self.predict_rng, self.predict_stats)
            if idx is not None:
                action = self.action_values[idx]
                if action.ndim:
                    action = action.copy()
                return (action if single else action[None]), state
        batch = obs[None] if single else obs
        out = self.decide(batch, deterministic)
        st = self.predict_stats
        st[0] += out.action.size
        st[1:4] += out.spikes.sum(0)
        st[4] += out.sops.sum()
        st[5] += out.latency.sum()
        action = self.action_values[out.action]
        return (action[0] if single else action), state

    def _single_predictor(self, deterministic: bool):
        """A compiled one-observation path for this mode, or ``None`` (the batched path)."""
        return None

    def decide(self, obs: np.ndarray, deterministic: bool = False, keep_raster: bool = False) -> PolicyOutput:
        """The decisions behind :meth:`predict` for a batch of observations (index into ``action_values``)."""
        return self.policy.act(obs, self.predict_rng, deterministic=deterministic, keep_raster=keep_raster)

    def _is_single(self, obs: np.ndarray) -> bool:
        space = self.observation_space
        if isinstance(space, spaces.Discrete):
            if obs.ndim > 1:
                raise ValueError(f"observation for Discrete({space.n}) must be a scalar or a 1-D batch, got shape {obs.shape}")
            return obs.ndim == 0
        shape = obs_shape(space)
        if obs.shape == shape:
            return True
        if obs.shape[1:] == shape:
            return False
        raise ValueError(f"observation must have shape {shape} or (B, *{shape}), got {obs.shape}")

    def get_env(self):
        """The vector env the agent trains on (an SB3 ``VecEnv`` it was given: that object)."""
        return self.env.venv if isinstance(self.env, SB3VecEnv) else self.env

    def get_vec_normalize_env(self):
        """The SB3 ``VecNormalize`` in the env the agent was given, if any (else None), as SB3's
        ``get_vec_normalize_env``: SB3's ``EvalCallback`` syncs its statistics to its eval env."""
        return next((env for env in venv_chain(self.get_env())
                     if all(hasattr(env, name) for name in ("obs_rms", "ret_rms", "normalize_obs"))), None)

    @property
    def rollout_locals(self) -> dict:
        """What SB3 callbacks read in ``self.locals``: ``self``, ``total_timesteps`` (the target of
        this ``learn``) and, after the first step, the last vector step's ``new_obs``,
        ``actions``, ``rewards``, ``dones`` and ``infos`` (one dict per environment)."""
        out = {"self": self, "total_timesteps": getattr(self, "_target", self.num_timesteps)}
        if self._last_step is not None:
            new_obs, actions, rewards, dones, infos = self._last_step
            infos = infos["sb3_infos"] if isinstance(self.env, SB3VecEnv) else _info_list(infos, len(dones))
            out.update(new_obs=new_obs, actions=actions, rewards=rewards, dones=dones, infos=infos)
        return out

    def set_env(self, env) -> None:
        vec = _make_vec_env(env, self.config.n_envs)
        for name, mine, theirs in (("observation", self.observation_space, vec.single_observation_space),
                                   ("action", self.action_space, vec.single_action_space)):
            if describe_space(mine) != describe_space(theirs):
                raise ValueError(f"the env's {name} space {theirs} does not match the agent's {mine}")
        self.env, self._obs, self._rule, self._next_feats, self._last_step = vec, None, None, None, None

    # -- learning ---------------------------------------------------------------------
    def _make_rule(self):
        c, n, P = self.config, self.env.num_envs, self.policy.n_params
        if c.reward_factor == "proximal":
            return ProximalRule(n, self.policy, self.critic, gamma=c.gamma, lam=c.lam, n_steps=c.n_steps,
                                n_epochs=c.n_epochs, batch_size=c.batch_size, clip_range=c.clip_range,
                                ent_coef=c.ent_coef, target_kl=c.target_kl, ratio=c.ratio,
                                normalize_advantage=c.normalize_advantage, scale_rewards=c.scale_rewards, rng=self.rng,
                                dual_clip=c.dual_clip)
        if c.reward_factor == "mc":
            return MonteCarloRule(n, self.critic, gamma=c.gamma, batch_size=c.batch_size,
                                  normalize_advantage=c.normalize_advantage, control_variate=c.control_variate)
        return ActorCriticRule(n, P, self.critic, gamma=c.gamma, lam=c.lam)

    def learn(self, total_timesteps: int, callback=None, progress_bar: bool = False, reset_num_timesteps: bool = True):
        """Train for ``total_timesteps`` environment steps; returns ``self``."""
        if self.env is None:
            raise ValueError(f"learn needs an environment: pass env to {type(self).__name__} or load(path, env=...)")
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, (int, np.integer)) or total_timesteps < 0:
            raise ValueError(f"total_timesteps must be a non-negative integer, got {total_timesteps!r}")
        if reset_num_timesteps:
            self.num_timesteps = 0
        cb: BaseCallback = make_callback(callback, progress_bar)
        if self._rule is None:
            self._rule = self._make_rule()
        if self._obs is None:
            obs, _ = self.env.reset(seed=self.seed)
            self._obs = obs_array(self.observation_space, obs)
            self.env.action_space.seed(self.seed)
            n = self.env.num_envs
            self._skip = np.zeros(n, bool)
            self._ep_ret, self._ep_len = np.zeros(n), np.zeros(n, np.int64)
            self._ep_energy = np.zeros((n, 5))
            self._next_feats = None
        self._start_steps, self._target = self.num_timesteps, self.num_timesteps + int(total_timesteps)
        cb.init(self)
        cb.on_training_start()
        with single_threaded_blas():  # the cores go to numba's threads (see spikerl._blas)
            while self.num_timesteps < self._target:
                self._step()
                if not cb.on_step():
                    break
        cb.on_training_end()
        return self

    @property
    def progress(self) -> float:
        """Fraction of the budget used, as SB3 counts it: ``num_timesteps / target`` (so a
        resumed ``learn`` follows the same schedule as an uninterrupted one)."""
        return min(self.num_timesteps / max(self._target, 1), 1.0)

    def _lr(self) -> float:
        c = self.config
        return c.learning_rate * (1.0 - self.progress if c.lr_schedule == "linear" else 1.0)

    def _apply(self, grad: np.ndarray, hidden_rate: np.ndarray | None) -> None:
        c = self.config
        grad = np.where(self.policy.learnable, grad, 0.0)
        self.policy.regularise(grad, hidden_rate)
        theta = self.optimizer.step(self.policy.theta, grad, self._lr())
        np.clip(theta, -c.w_clip, c.w_clip, out=theta)
        self.policy.constrain(theta)
        self.policy.set_theta(theta)
        self.n_updates += 1

    def _step(self) -> None:
        env, enc = self.env, self.encoder
        obs = self._obs
        valid = ~self._skip
        # the envs that act: all of them but those resetting (NEXT_STEP autoreset), as a slice when
        # every env acts (views, no masked copies)
        acting = slice(None) if valid.all() else valid
        if valid.any():
            enc.update(np.asarray(obs)[acting])
        feats = self._next_feats if self._next_feats is not None else enc.features_of(obs)
        # a rule that replays its decisions needs no eligibilities now, only log-probabilities (the
        # learning-signal estimator's running baseline follows every decision it is shown)
        pol = self.policy
        learn = (self._rule.needs_eligibility or getattr(pol.estimator, "acting_eligibility", False)
                 or not pol.scores_without_learning)
        out = pol.act(None, self.rng, learn=learn, features=feats, keep_raster=not learn, **self._acting)
        actions = self.action_values[out.action]
        next_obs, rewards, terminated, truncated, infos = env.step(actions)
        next_obs = obs_array(self.observation_space, next_obs)
        rewards = np.asarray(rewards, dtype=np.float64)
        check_finite(rewards[None, :], "reward")
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        done = (terminated | truncated) & valid
        same_step = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) == AutoresetMode.SAME_STEP
        # features of the next observation serve the next step, unless running statistics move the
        # bounds (then they are computed only if the rule asks for the next observation's value)
        self._next_feats = enc.features_of(next_obs) if enc.stationary else None

        def final_feats():
            if same_step and done.any():
                final_obs = np.array(next_obs, copy=True)
                for b in np.flatnonzero(done):
                    final_obs[b] = obs_array(self.observation_space, infos["final_obs"][b])
                return enc.features_of(final_obs)
            return self._next_feats if self._next_feats is not None else enc.features_of(next_obs)

        transition = Transition(valid, out, feats, rewards, terminated & valid, done,
                                value_of_next=lambda: self.critic.value(final_feats()))
        n_updates = self.n_updates
        for update in self._rule.step(transition):
            self._apply(update.grad, update.hidden_rate)
        trained = self.n_updates != n_updates

        # statistics
        nv = int(valid.sum())
        self.num_timesteps += nv
        energy = np.empty((len(valid), 5))
        energy[:, :3], energy[:, 3], energy[:, 4] = out.spikes, out.sops, out.latency
        self.decision_stats[0] += nv
        self.decision_stats[1:] += energy[acting].sum(0)
        self._ep_ret[acting] += rewards[acting]
        self._ep_len[acting] += 1
        self._ep_energy[acting] += energy[acting]
        for b in np.flatnonzero(done):
            L = max(self._ep_len[b], 1)
            e = self._ep_energy[b] / L
            self.ep_info_buffer.append({
                "r": float(self._ep_ret[b]), "l": int(self._ep_len[b]), "t": self.num_timesteps,
                "spikes_per_decision": float(e[:3].sum()), "hidden_spikes_per_decision": float(e[1]),
                "sops_per_decision": float(e[3]), "latency": float(e[4]),
            })
            self._ep_ret[b], self._ep_len[b], self._ep_energy[b] = 0.0, 0, 0.0
            self.n_episodes += 1
        self._skip = done if not same_step else np.zeros_like(done)
        self._obs = next_obs
        self._last_step = (next_obs, actions, rewards, done, infos)
        if trained:
            self._log_training_round()

    def _log_training_round(self) -> None:
        """After a batch rule's training round, record its figures as SB3 does
        (``train/approx_kl``, ``train/clip_fraction``, ``train/value_loss``,
        ``train/explained_variance``, ``train/n_epochs``, ``train/learning_rate``,
        ``train/n_updates``) and ``dump`` them at the current step, as SB3 dumps once an
        iteration. A rule that updates every step (no ``stats``) logs nothing here."""
        stats = getattr(self._rule, "stats", None)
        if not stats:
            return
        for k, v in {**stats, "learning_rate": self._lr(), "n_updates": self.n_updates}.items():
            self.logger.record("train/" + k, v)
        self.logger.dump(self.num_timesteps)

    def energy_summary(self, which: str = "train") -> dict:
        """Per-decision averages of the training decisions (``train``) or of ``predict`` calls."""
        return decision_summary(self.decision_stats if which == "train" else self.predict_stats)

    # -- files --------------------------------------------------------------------------
    def save(self, path, *, training_state: bool = True) -> None:
        """Write the agent to ``path`` (no pickle: arrays + JSON; atomic)."""
        save_agent(self, path, training_state=training_state)

    @classmethod
    def load(cls, path, env=None, **overrides):
        """Read an agent written by :meth:`save`; ``env`` must match the saved spaces."""
        return load_agent(cls, path, env=env, **overrides)


class SpikingAgent(PolicyGradientAgent):
    """A spiking policy network that learns with the three-factor rule.

    Args:
        env: a Gymnasium ``Env``, ``VectorEnv``, Stable-Baselines3 ``VecEnv`` or env id (``None`` only when loading for
            prediction).
        seed: seeds the environments, the network's initialisation and every spike draw.
        **hyperparameters: fields of :class:`SpikingConfig`.
    """

    config_class = SpikingConfig
    agent_file = "fts-snn"
    _acting = {"sparse_draws": True}  # the training loop's decisions draw only the random neurons' numbers

    def _build_policy(self, n_actions: int):
        c = self.config
        policy = SpikingPolicy.build(
            self.encoder, n_actions, n_hidden=c.n_hidden, skip=c.skip, recurrent=c.recurrent, feedback=c.feedback,
            p_connect=c.p_connect, kernel=c.kernel, n_basis=c.n_basis, tau=c.tau, memory=c.memory, fb_tau=c.fb_tau,
            decoder=c.decoder, rng=self.rng, w_scale=c.w_scale, bias_hidden=c.bias_hidden, bias_out=c.bias_out,
        )
        policy.rate_reg, policy.target_rate, policy.out_bias_max = float(c.rate_reg), float(c.target_rate), c.out_bias_max
        policy.causal = bool(c.causal_hidden)
        policy.output_score = c.output_score
        if c.hidden_rule == "learning_signal":
            policy.estimator = LearningSignal(c.T, c.kappa, c.ll_baseline_decay)
        elif c.hidden_rule == "posterior":
            policy.estimator = PosteriorSpikes()
        return policy

    def _single_predictor(self, deterministic: bool):
        """The compiled one-observation path for this mode (``None`` for a non-spiking policy)."""
        if not isinstance(self.policy, SpikingPolicy):
            return None
        mode = self.config.deterministic_outputs if deterministic else False
        cache = self.__dict__.setdefault("_predictors", {})
        pred = cache.get(mode)
        if pred is None or not pred.valid_for(self.policy):
            pred = cache[mode] = SinglePredictor(self.policy, mode, self.config.vote_samples)
        return pred

    def decide(self, obs: np.ndarray, deterministic: bool = False, keep_raster: bool = False) -> PolicyOutput:
        """The decisions behind :meth:`predict` for a batch of observations (index into
        ``action_values``). In the vote mode the figures of a decision (spikes, synaptic
        operations) add up its samples, and its latency is the slowest sample's; with
        ``keep_raster`` the raster ``(B, K, N, T)`` holds every sample's spikes."""
        mode = self.config.deterministic_outputs if deterministic else False
        if mode != "vote":
            return self.policy.act(obs, self.predict_rng, deterministic=mode, keep_raster=keep_raster, score=False)
        K, B, n = self.config.vote_samples, len(obs), len(self.action_values)
        out = self.policy.act(np.repeat(obs, K, axis=0), self.predict_rng, keep_raster=keep_raster, score=False)
        votes = (out.action.reshape(B, K)[:, :, None] == np.arange(n)[None, None, :]).sum(1)
        raster = None if out.raster is None else out.raster.reshape(B, K, *out.raster.shape[1:])
        return out._replace(action=votes.argmax(1), ll_out=out.ll_out.reshape(B, K).mean(1),
                            spikes=out.spikes.reshape(B, K, -1).sum(1), sops=out.sops.reshape(B, K).sum(1),
                            latency=out.latency.reshape(B, K).max(1), no_spike=out.no_spike.reshape(B, K).all(1),
                            raster=raster)
