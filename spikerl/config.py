"""Agent and environment configs: plain YAML files validated into typed dataclasses.

``agents/NAME.yaml`` (shipped as ``spikerl/configs/agents``)::

    kind: spiking            # spiking | sb3 | pg-mlp
    description: ...
    algo: PPO                # sb3 only
    hyperparameters: {...}   # defaults for every env
    envs:                    # per env id, on top of the defaults
      CartPole-v1: {...}

``envs/ID.yaml`` (file name: the env id with '/' replaced by '__')::

    id: CartPole-v1
    budget: 200000           # default training steps
    solved_threshold: 475
    eval_episodes: 20
    eval_freq: 10000
    n_envs: 8
    make_kwargs: {}
    encoder: {...}           # SpikingConfig fields (bounds, features, ...)

An unknown key or a wrong type is a :class:`ConfigError` naming the file, the key and the
expected type. Any registered Gymnasium id without a file gets defaults from its spaces.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .hyperparams import RENAMED, MLPConfig, SpikingConfig, upgrade_keys

CONFIG_ROOT = Path(__file__).parent / "configs"
AGENT_KINDS = ("spiking", "sb3", "pg-mlp")


class ConfigError(ValueError):
    """A config file or override that does not validate."""


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_type(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple) or tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is typing.Any:
        return True
    return isinstance(value, tp)


def validate_fields(cls, data: dict, where: str) -> dict:
    """Check that ``data`` only has fields of dataclass ``cls`` with the right types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key in RENAMED and RENAMED[key] in names:  # an old name (upgraded, with a warning, when resolved)
            key = RENAMED[key]
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(names))})")
        if not _check_type(value, hints[key]):
            raise ConfigError(f"{where}: key {key!r} must be of type {_type_name(hints[key])}, got {value!r}")
    return data


@dataclass
class AgentFile:
    """One agent: a kind, optional SB3 algorithm, default and per-env hyperparameters."""

    kind: str
    """spiking, sb3 or pg-mlp."""
    description: str = ""
    """One line shown by ``spikerl list``."""
    algo: str | None = None
    """SB3 algorithm class name (PPO, A2C, DQN) for kind sb3."""
    hyperparameters: dict = field(default_factory=dict)
    """Defaults for every env."""
    envs: dict = field(default_factory=dict)
    """Per env id: hyperparameters on top of the defaults."""
    hyperparameter_source: str = ""
    """Where tuned values come from (e.g. the RL Zoo), shown in reports."""


@dataclass
class EnvFile:
    """One environment: how to make, train, evaluate and encode it."""

    id: str
    """The Gymnasium id."""
    budget: int = 100_000
    """Default training steps."""
    solved_threshold: float | None = None
    """Mean evaluation return that counts as solved."""
    eval_episodes: int = 20
    """Episodes per evaluation."""
    eval_freq: int = 10_000
    """Steps between evaluations."""
    confirm_episodes: int | None = None
    """When an evaluation reaches the solved threshold, confirm it with this many episodes
    (the run counts as solved at that step only if the confirmation also reaches it)."""
    n_envs: int = 8
    """Environments stepped together."""
    make_kwargs: dict = field(default_factory=dict)
    """Keyword arguments of ``gymnasium.make``."""
    encoder: dict = field(default_factory=dict)
    """SpikingConfig fields describing the observation encoding (bounds, features, ...)."""


def _read_yaml(path: Path) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def config_dirs(kind: str) -> list[Path]:
    """Folders searched for configs: ``$SPIKERL_CONFIG/{kind}``, ``./{kind}``, the shipped ones."""
    dirs = []
    if os.environ.get("SPIKERL_CONFIG"):
        dirs.append(Path(os.environ["SPIKERL_CONFIG"]) / kind)
    dirs.append(Path.cwd() / kind)
    dirs.append(CONFIG_ROOT / kind)
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen and d.is_dir():
            seen.add(r)
            out.append(d)
    return out


def env_file_name(env_id: str) -> str:
    return env_id.replace("/", "__") + ".yaml"


def find_agent(name: str) -> Path:
    for d in config_dirs("agents"):
        p = d / f"{name}.yaml"
        if p.is_file():
            return p
    known = ", ".join(sorted(list_agents()))
    raise ConfigError(f"unknown agent {name!r}; known agents: {known}")


def load_agent_file(name_or_path) -> tuple[str, AgentFile, Path]:
    p = Path(name_or_path)
    path = p if p.suffix in (".yaml", ".yml") and p.is_file() else find_agent(str(name_or_path))
    data = validate_fields(AgentFile, _read_yaml(path), str(path))
    if "kind" not in data:
        raise ConfigError(f"{path}: missing key 'kind' (one of {AGENT_KINDS})")
    af = AgentFile(**data)
    if af.kind not in AGENT_KINDS:
        raise ConfigError(f"{path}: key 'kind' must be one of {AGENT_KINDS}, got {af.kind!r}")
    if af.kind == "sb3" and af.algo not in ("PPO", "A2C", "DQN"):
        raise ConfigError(f"{path}: key 'algo' must be PPO, A2C or DQN for kind sb3, got {af.algo!r}")
    for env_id, hp in af.envs.items():
        if not isinstance(hp, dict):
            raise ConfigError(f"{path}: envs.{env_id} must be a mapping of hyperparameters")
    if af.kind == "spiking":
        validate_fields(SpikingConfig, af.hyperparameters, f"{path}: hyperparameters")
        for env_id, hp in af.envs.items():
            validate_fields(SpikingConfig, hp, f"{path}: envs.{env_id}")
    elif af.kind == "pg-mlp":
        validate_fields(MLPConfig, af.hyperparameters, f"{path}: hyperparameters")
        for env_id, hp in af.envs.items():
            validate_fields(MLPConfig, hp, f"{path}: envs.{env_id}")
    return path.stem, af, path


def load_env_file(env_id: str) -> tuple[EnvFile, Path | None]:
    """The env's YAML, or defaults derived from the registered id (path ``None``)."""
    p = Path(env_id)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        path = p
    else:
        path = next((d / env_file_name(env_id) for d in config_dirs("envs") if (d / env_file_name(env_id)).is_file()), None)
    if path is None:
        import gymnasium as gym

        from . import envs  # noqa: F401  (registers spikerl's envs)

        try:
            gym.spec(env_id)
        except Exception as exc:  # gymnasium raises its own error types
            raise ConfigError(f"unknown env {env_id!r}: no envs/{env_file_name(env_id)} and not a registered Gymnasium id ({exc})") from exc
        return EnvFile(id=env_id), None
    data = validate_fields(EnvFile, _read_yaml(path), str(path))
    if "id" not in data:
        raise ConfigError(f"{path}: missing key 'id'")
    ef = EnvFile(**data)
    validate_fields(SpikingConfig, ef.encoder, f"{path}: encoder")
    return ef, path


def list_agents() -> dict[str, Path]:
    out = {}
    for d in reversed(config_dirs("agents")):
        for p in sorted(d.glob("*.yaml")):
            out[p.stem] = p
    return out


def list_envs() -> dict[str, Path]:
    out = {}
    for d in reversed(config_dirs("envs")):
        for p in sorted(d.glob("*.yaml")):
            try:
                out[_read_yaml(p).get("id", p.stem)] = p
            except ConfigError:
                out[p.stem] = p
    return out


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` strings; values are read as YAML scalars/lists (``lr=0.1``, ``tile=[2,2]``)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot read value {raw!r} ({exc})") from exc
    return out


def resolve_hyperparameters(agent: AgentFile, env: EnvFile, overrides: dict, where: str = "--set") -> dict:
    """Defaults < env encoder (spiking, pg-mlp) < agent's per-env values < overrides; validated."""
    hp = dict(agent.hyperparameters)
    if agent.kind in ("spiking", "pg-mlp"):
        hp.update(env.encoder)
        hp.setdefault("n_envs", env.n_envs)
    hp.update(agent.envs.get(env.id, {}))
    hp.update(overrides)
    if agent.kind == "spiking":
        validate_fields(SpikingConfig, overrides, where)
    elif agent.kind == "pg-mlp":
        validate_fields(MLPConfig, overrides, where)
    return upgrade_keys(hp, f"{agent.kind} agent on {env.id}") if agent.kind != "sb3" else hp
