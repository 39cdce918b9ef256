"""Hyperparameters of spikerl's own agents as plain dataclasses.

This module imports nothing of the package, so configuration code (:mod:`spikerl.config`),
serialization and the agents all depend on it, never on each other.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field


RENAMED = {"gamma_hidden": "bias_hidden", "gamma_out": "bias_out"}
"""Old hyperparameter names -> new ones, accepted for one release (``gamma`` is the discount
factor only; the neuron bias is ``bias``)."""


ADDED = {"n_projections": 0, "critic": "features"}
"""Fields added after model files were first written -> the value a file without them meant
(the behaviour of the version that wrote it), whatever the default has become since."""


def upgrade_keys(data: dict, where: str = "hyperparameters", warn: bool = True) -> dict:
    """``data`` with old hyperparameter names replaced by their new ones (:data:`RENAMED`),
    each with a ``DeprecationWarning`` unless ``warn`` is False (files saved by older
    versions are upgraded silently)."""
    if not any(k in data for k in RENAMED):
        return data
    out = {}
    for key, value in data.items():
        if key in RENAMED:
            new = RENAMED[key]
            if new in data:
                raise ValueError(f"{where}: both {key!r} and its new name {new!r} are given")
            if warn:
                warnings.warn(f"{where}: hyperparameter {key!r} is now {new!r}; the old name goes in the next "
                              f"release", DeprecationWarning, stacklevel=3)
            key = new
        out[key] = value
    return out


@dataclass
class AgentConfig:
    """What every policy-gradient agent of spikerl shares, whatever its network: the vector
    env, the encoder, the reward factor and its critic, the optimiser (every field has a
    default). :class:`SpikingConfig` and :class:`MLPConfig` add their network's fields."""

    n_envs: int = 8
    """Environments stepped together when the agent makes its own (from an env id)."""
    T: int = 8
    """Presentation length: time steps per decision at most."""
    features: str = "auto"
    """Encoder feature map: auto (population for a Box observation space, onehot for a
    Discrete, MultiDiscrete or Tuple-of-Discrete one), normalized, population, onehot, tile."""
    code: str = "regular"
    """Temporal code of the inputs: regular (spikes at rate ``p_max f``, evenly spaced, no
    sampling: the policy's randomness is its own neurons'), rate (Bernoulli with ``p = p_max
    f`` every step: the input adds sampling noise) or time (one spike, earlier for larger f)."""
    n_fields: int = 8
    """Gaussian receptive fields per observation dimension (population)."""
    field_width: float = 1.0
    """Receptive-field width in units of the spacing between centres."""
    n_projections: int = 0
    """Population code: fixed random directions of the observation, each coded by
    ``n_fields`` fields as a dimension is (conjunctions of dimensions as input neurons; see
    :class:`~spikerl.coding.PopulationFeatures`). 0: the dimensions' fields only. The other
    feature maps have none (one-hot and tile features are already conjunctive)."""
    p_max: float = 0.9
    """Spike rate (regular code) or probability per step (rate code) of a fully active input neuron."""
    obs_low: list | None = None
    """Lower bounds replacing infinite observation-space bounds (None: running statistics)."""
    obs_high: list | None = None
    """Upper bounds replacing infinite observation-space bounds."""
    grid_shape: list | None = None
    """(rows, cols) of a Discrete grid observation (tile features)."""
    tile: list = field(default_factory=lambda: [1, 1])
    """Tile size (h, w) for tile features."""
    action_bins: int | None = None
    """For a Box action space: values per action dimension, evenly spaced from low to high;
    one output neuron per combination (at most 256). None: Box actions are refused."""
    reward_factor: str = "proximal"
    """proximal (batched, PPO's clipped surrogate as the global factor, decisions replayed
    through the kernel), td (online actor-critic with traces: the on-chip rule) or mc
    (REINFORCE, return-to-go minus the critic's baseline)."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """lambda of the lambda-return: GAE (proximal) or the trace decay (td)."""
    learning_rate: float = 0.01
    """Actor step size (Adam)."""
    critic_lr: float | None = None
    """Critic step size (Adam); None: 0.01 for the linear critic, 0.001 for the mlp critic
    (each part of features+mlp and mix its own; a value sets both)."""
    lr_schedule: str = "linear"
    """linear (decays to 0 at the end of each ``learn`` call, as SB3's schedules follow its
    progress) or constant."""
    n_steps: int = 64
    """Vector steps per rollout (proximal): a rollout holds n_steps x n_envs decisions."""
    n_epochs: int = 10
    """Passes over a rollout (proximal)."""
    batch_size: int = 128
    """Decisions per gradient step (proximal: a minibatch; mc: finished decisions per update)."""
    clip_range: float = 0.2
    """epsilon of the clipped surrogate (proximal)."""
    ratio: str = "neuron"
    """What the proximal ratio covers: joint (hidden and output spikes, the decision's whole
    trajectory), output (the output spikes given the hidden ones; hidden synapses gated by
    it too) or neuron (each neuron's own spikes: every synapse is gated by the ratio of its
    post-synaptic neuron, which that neuron computes locally)."""
    dual_clip: float | None = None
    """Proximal: a decision with a negative advantage whose ratio exceeds this (``c > 1``, e.g.
    3) stops pushing its neurons (dual-clip PPO: the surrogate bounded below by ``c A``);
    None: PPO's clip alone, under which such a decision's modulator ``rho A`` is unbounded."""
    ent_coef: float = 0.0
    """Entropy bonus (proximal): adds -ent_coef (log p - mean log p) to each modulator."""
    target_kl: float | None = None
    """Stop a rollout's epochs once the approximate KL exceeds 1.5 x this (None: never)."""
    scale_rewards: bool = True
    """Divide rewards by the running std of the discounted return (proximal)."""
    normalize_advantage: bool = True
    """Standardise the reward factor within a batch (proximal, mc)."""
    control_variate: bool = False
    """Per-parameter optimal baselines (mc)."""
    critic: str = "features"
    """What the critic (the baseline of the reward factor) is: features (linear in the
    encoder's features and ``critic_features`` random Fourier features of them; learnt by a
    local rule, what the on-chip ``td`` rule runs) or mlp (a perceptron with two tanh layers of
    ``critic_hidden`` units on the normalized observation, read back from the features;
    backpropagation, off the chip: proximal and mc only, Box observations only) or
    features+mlp (the two summed and fitted together, each part at its own step size: the
    linear part tracks the returns early, the perceptron fits what it leaves) or mix (the two
    fitted on their own, their values weighted by the inverse of each one's running error on
    returns it had not yet been fitted to, :class:`~spikerl.rules.MixCritic`, where the
    perceptron serves as for auto; the linear critic alone elsewhere) or auto (mlp
    where it applies: a batched rule and features that give the observation back; features
    otherwise: the td rule, one-hot and tile features, whose linear critic is exact)."""
    critic_hidden: int = 64
    """Units in each of the mlp critic's two layers."""
    critic_features: int = 256
    """Random Fourier features of the encoder features in the critic (0: linear critic). Box
    observations only: one-hot and tile features are a complete basis, and their critic is
    linear (tabular), which keeps unvisited states' values at 0 (optimism under -1 rewards)."""
    critic_scale: float = 1.0
    """Spread of the random Fourier projection (larger: more local features)."""
    obs_norm: str = "running"
    """Bounds of Box observations: running (mean +- 3 std of the observations seen, within
    the space's finite bounds) or space (the space's finite bounds, running statistics only
    where a bound is infinite). obs_low/obs_high override either."""
    w_clip: float = 20.0
    """Parameters are clipped to [-w_clip, w_clip]."""
    stats_window: int = 100
    """Episodes kept for the rolling statistics."""

    def validate(self):
        checks = {
            "T": self.T >= 1, "n_envs": self.n_envs >= 1,
            "learning_rate": self.learning_rate > 0, "critic_lr": self.critic_lr is None or self.critic_lr > 0,
            "critic_hidden": self.critic_hidden >= 1,
            "gamma": 0 <= self.gamma <= 1, "lam": 0 <= self.lam <= 1, "batch_size": self.batch_size >= 1,
            "n_steps": self.n_steps >= 1, "n_epochs": self.n_epochs >= 1, "clip_range": self.clip_range > 0,
            "ent_coef": self.ent_coef >= 0, "target_kl": self.target_kl is None or self.target_kl > 0,
            "dual_clip": self.dual_clip is None or self.dual_clip > 1,
            "critic_features": self.critic_features >= 0, "w_clip": self.w_clip > 0,
            "n_projections": not isinstance(self.n_projections, bool) and isinstance(self.n_projections, int)
            and self.n_projections >= 0,
            "action_bins": self.action_bins is None or (not isinstance(self.action_bins, bool)
                                                        and isinstance(self.action_bins, int) and self.action_bins >= 2),
        }
        choices = {
            "reward_factor": ("proximal", "mc", "td"), "ratio": ("joint", "output", "neuron"),
            "obs_norm": ("running", "space"), "lr_schedule": ("constant", "linear"), "critic": ("features", "mlp", "features+mlp", "mix", "auto"),
        }
        _check(self, checks, choices)
        if self.critic in ("mlp", "features+mlp") and self.reward_factor == "td":
            raise ValueError(f"invalid hyperparameter critic={self.critic!r}: the online td rule learns its critic by a "
                             "local trace rule, which needs critic='features' (the mlp critic serves proximal and mc)")
        return self


def _check(config, checks: dict, choices: dict):
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"invalid hyperparameter {name}={getattr(config, name)!r}")
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"invalid hyperparameter {name}={getattr(config, name)!r}; expected one of {allowed}")
    return config


@dataclass
class SpikingConfig(AgentConfig):
    """Hyperparameters of a :class:`SpikingAgent`: :class:`AgentConfig` plus the GLM spiking
    network, its decision modes and its hidden-neuron estimator (every field has a default)."""

    n_hidden: int = 0
    """Hidden (latent) neurons; 0 (the default) for an input -> output network, whose
    conjunctions of observation dimensions come from the encoder's random directions
    (``n_projections``)."""
    n_projections: int = 24
    """As :attr:`AgentConfig.n_projections`; the spiking network's default reads 24 directions."""
    critic: str = "mix"
    """As :attr:`AgentConfig.critic`; the spiking agent's default weighs the perceptron and
    the linear critic by their running held-out errors (``mix``; the linear critic alone
    where the perceptron cannot serve)."""
    learning_rate: float = 0.005
    """As :attr:`AgentConfig.learning_rate`; half its step for the spiking network, whose
    24 directions make each decision read ~5x the input spikes of the dimensions alone."""
    skip: bool = True
    """Input -> output synapses besides the hidden path."""
    recurrent: bool = False
    """Hidden -> hidden synapses."""
    feedback: bool = False
    """Output -> hidden synapses."""
    p_connect: float = 1.0
    """Probability that each allowed synapse exists."""
    kernel: str = "exponential"
    """Feedforward kernel: 'exponential' (one basis) or 'raised_cosine'."""
    n_basis: int = 1
    """Feedforward bases K (1 for the exponential kernel)."""
    tau: float = 2.0
    """Decay time (steps) of the exponential kernel."""
    memory: int = 8
    """Kernel memory in steps."""
    fb_tau: float = 1.0
    """Decay time (steps) of the self-feedback (refractory) kernel."""
    decoder: str = "first_to_spike"
    """first_to_spike or rate."""
    deterministic_outputs: str = "regular"
    """What predict(deterministic=True) does: regular (every neuron fires regularly at its
    probability sigmoid(u), as the regular input code does at its rate: the sampled network's
    expected spikes without its noise, one decision's cost; on the tuning seeds it scored at
    least the threshold network and the vote on every task), threshold (every neuron fires
    iff u > 0: the deterministic limit), median (hidden neurons as threshold; an output fires
    when the probability of no spike yet drops to 1/2: the sampled network's median
    first-spike time) or vote (the most frequent action of vote_samples sampled decisions: an
    estimate of the stochastic policy's own mode, costing that many decisions; the default
    with Bernoulli inputs)."""
    vote_samples: int = 15
    """Sampled decisions per action in the vote mode (ties go to the lowest action index)."""
    hidden_rule: str = "posterior"
    """Hidden-neuron estimator: posterior (each hidden spike's score replaced by its
    expectation given the spikes it drove: unbiased, less noise; under the proximal rule each
    hidden neuron is gated by the ratio of that estimator's own surrogate; see
    rules.PosteriorSpikes; the default: on the tuning seeds it matched joint on CartPole and
    Acrobot and beat it on LunarLander), joint (the hidden spikes' own score x the reward
    factor: unbiased; what causal_hidden and the exported on-device rule use) or
    learning_signal (the seed rule: per-step kappa-filtered output
    log-likelihood, centred per step, x the reward factor: biased). ``seed`` is the old name
    of learning_signal (deprecated)."""
    output_score: str = "marginal"
    """What the output neurons' score (eligibility and log-likelihood) covers: marginal (the
    default: the action taken with its timing summed out: a sampled decision's inputs and hidden
    neurons are continued to T with the outputs silent, and the output layer is scored on
    log P(action | that raster), exact over every step the decision could have been taken at;
    the hidden neurons' score covers the continued raster; on the tuning seeds it closed the
    Acrobot and LunarLander gaps, at 40% of the training speed), pattern (the spikes they
    fired up to the decision step t*, the decision's raster: the old default, and what the
    online td rule and the exported on-device rule score) or action (the action taken at t*:
    outputs that spiked together with it, a tie the decoder broke uniformly, are summed out, so
    a rival that spiked with a rewarded action is pushed down rather than up). Scored on the
    action, the output layer is one unit of the per-neuron ratio. first_to_spike only: another
    decoder needs output_score="pattern"."""
    causal_hidden: bool = False
    """Leave hidden neurons' spikes at the decision step t* out of their score and
    log-likelihood (ratio): no output sees them before the decision, so those terms are noise
    of mean zero (an unbiased estimator either way, this one with less variance)."""
    kappa: float = 0.5
    """Filter of the per-step learning signal (learning_signal rule)."""
    ll_baseline_decay: float = 0.99
    """Decay of the per-step running baseline of the learning signal (learning_signal rule)."""
    rate_reg: float = 0.0
    """Strength of the firing-rate regulariser pulling hidden rates to target_rate."""
    target_rate: float = 0.1
    """Target hidden firing probability per step."""
    out_bias_max: float | None = -2.0
    """Output biases are kept <= this (None: no cap), so an output cannot learn to fire
    before the input has reached it, which would make the decision ignore the input."""
    w_scale: float = 2.0
    """Initial weight spread (see network.init_params)."""
    bias_hidden: float = -1.0
    """Initial hidden bias (was ``gamma_hidden``)."""
    bias_out: float = -2.0
    """Initial output bias (was ``gamma_out``)."""

    def validate(self) -> "SpikingConfig":
        if self.hidden_rule == "seed":
            warnings.warn("hidden_rule 'seed' is now called 'learning_signal' (and follows the seed's per-step "
                          "learning signal); the old name goes in the next release", DeprecationWarning, stacklevel=3)
            self.hidden_rule = "learning_signal"
        super().validate()
        checks = {
            "n_hidden": self.n_hidden >= 0, "kappa": 0 <= self.kappa < 1, "vote_samples": self.vote_samples >= 1,
            "memory": self.memory >= 1, "tau": self.tau >= 1, "fb_tau": self.fb_tau >= 1,
            "p_connect": 0 < self.p_connect <= 1, "rate_reg": self.rate_reg >= 0,
        }
        choices = {
            "decoder": ("first_to_spike", "rate"), "hidden_rule": ("joint", "posterior", "learning_signal"),
            "output_score": ("pattern", "action", "marginal"),
            "kernel": ("exponential", "raised_cosine"),
            "deterministic_outputs": ("threshold", "median", "regular", "vote"),
        }
        if self.ent_coef > 0 and self.hidden_rule == "posterior" and self.reward_factor == "proximal":
            raise ValueError(f"invalid hyperparameter ent_coef={self.ent_coef!r}: the entropy bonus needs "
                             f"hidden_rule='joint' (the posterior rule's hidden log-likelihoods are a surrogate, not "
                             f"the spikes' own, so -(log p - mean) e is no entropy gradient there)")
        if self.output_score != "pattern" and self.decoder != "first_to_spike":
            raise ValueError(f"invalid hyperparameter output_score={self.output_score!r}: it scores the first output "
                             f"to spike, and decoder={self.decoder!r} (pass output_score='pattern' with that decoder)")
        if self.causal_hidden and self.hidden_rule != "joint":  # they form hidden eligibilities themselves
            raise ValueError(f"invalid hyperparameter causal_hidden=True: it needs hidden_rule='joint' (the "
                             f"{self.hidden_rule} rule forms the hidden neurons' eligibilities itself)")
        return _check(self, checks, choices)


@dataclass
class MLPConfig(AgentConfig):
    """Hyperparameters of the ``pg-mlp`` agent: :class:`AgentConfig` plus the perceptron's shape."""

    mlp_hidden: int = 16
    """Hidden units (0: a linear softmax policy)."""
    activation: str = "relu"
    """relu or tanh (relu networks convert to rate-coded spiking networks)."""

    def validate(self) -> "MLPConfig":
        super().validate()
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"invalid hyperparameter activation={self.activation!r}; expected relu or tanh")
        if self.mlp_hidden < 0:
            raise ValueError(f"invalid hyperparameter mlp_hidden={self.mlp_hidden!r}")
        return self


__all__ = ["AgentConfig", "SpikingConfig", "MLPConfig", "RENAMED", "upgrade_keys"]
