"""Model and checkpoint files that cannot run code when loaded.

A file is a zip of ``.npy`` arrays (numpy's ``.npz``, read with ``allow_pickle=False``)
plus one JSON document of metadata stored as bytes under ``__meta__``: a format name and
version, the config, the spaces, counters and random-generator states. Writes go to a
temporary file in the same folder, are flushed and fsync'd, then renamed over the target,
so a kill at any moment leaves the previous file intact.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import tokenize
import zipfile

import numpy as np
from gymnasium import spaces

from .hyperparams import ADDED, upgrade_keys
from .rules import Critic
from .registry import AGENT_CLASSES, agent_class

FORMAT = "spikerl-agent"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is missing parts, truncated, corrupted, of another version, or
    that does not fit the environment it is loaded with."""


def describe_space(space) -> dict:
    """A JSON description of a Box, Discrete, MultiDiscrete or Tuple space (others by name only)."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [describe_space(x) for x in space.spaces]}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(),
                "start": np.asarray(space.start).tolist(), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": np.asarray(space.low, np.float64).ravel().tolist(),
                "high": np.asarray(space.high, np.float64).ravel().tolist()}
    return {"type": type(space).__name__, "repr": repr(space)}


def space_from_description(d: dict):
    if d.get("type") == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    if d.get("type") == "Tuple":
        return spaces.Tuple([space_from_description(x) for x in d["spaces"]])
    if d.get("type") == "MultiDiscrete":
        return spaces.MultiDiscrete(np.array(d["nvec"]), dtype=np.dtype(d["dtype"]), start=np.array(d["start"]))
    if d.get("type") == "Box":
        shape = tuple(d["shape"])
        dtype = np.dtype(d["dtype"])
        return spaces.Box(np.array(d["low"], dtype=dtype).reshape(shape), np.array(d["high"], dtype=dtype).reshape(shape), dtype=dtype)
    raise ModelFileError(f"unsupported space in model file: {d}")


def atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync it, rename it over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_arrays(path, arrays: dict, meta: dict) -> None:
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    payload = {"__meta__": blob, **{k: np.asarray(v) for k, v in arrays.items()}}
    for k, v in payload.items():
        if v.dtype == object:
            raise TypeError(f"array {k!r} has dtype object and cannot be stored without pickle")
    atomic_write(path, lambda f: np.savez(f, **payload))


def read_arrays(path) -> tuple[dict, dict]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, SyntaxError, tokenize.TokenError,
            zlib_error()) as exc:  # a flipped byte in an array's header fails numpy's literal_eval of it
        raise ModelFileError(f"{path}: not a readable spikerl model file (truncated or corrupted: {exc})") from exc
    if "__meta__" not in arrays:
        raise ModelFileError(f"{path}: not a spikerl model file (no __meta__ record)")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupted metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a spikerl model file (format {meta.get('format') if isinstance(meta, dict) else meta!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {meta.get('format_version')!r} is not supported "
            f"(this spikerl reads version {FORMAT_VERSION})"
        )
    return meta, arrays


def zlib_error():
    import zlib

    return zlib.error


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def _set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def save_agent(agent, path, *, training_state: bool = True) -> None:
    p = agent.policy
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class": type(agent).__name__,
        "config": dataclasses.asdict(agent.config), "seed": agent.seed,
        "observation_space": describe_space(agent.observation_space),
        "action_space": describe_space(agent.action_space),
        "policy": p.state_meta(), "env_id": getattr(agent, "env_id", None),
        "num_timesteps": int(agent.num_timesteps), "n_updates": int(agent.n_updates),
        "training_state": bool(training_state),
        "predict_rng": _rng_state(agent.predict_rng),
    }
    arrays = {**p.state_arrays(), "critic": agent.critic.c}
    linear = getattr(agent.critic, "linear", agent.critic)  # the linear critic, or the linear part of a sum
    if isinstance(linear, Critic):  # its fixed random projection (the mlp critic's weights are all in c)
        arrays.update(critic_W=linear.W, critic_b=linear.b)
    for k, v in agent.encoder.state_dict().items():
        arrays[f"encoder.{k}"] = v
    if training_state:
        meta["rng"] = _rng_state(agent.rng)
        for k, v in agent.optimizer.state_dict().items():
            arrays[f"optim.{k}"] = v
        for k, v in agent.critic.opt.state_dict().items():
            arrays[f"critic_optim.{k}"] = v
        arrays["decision_stats"] = agent.decision_stats
        if p.estimator is not None:
            for k, v in p.estimator.state_dict().items():
                arrays[f"estimator.{k}"] = v
        meta["n_episodes"] = int(agent.n_episodes)
        if agent._rule is not None:
            meta["rule"] = type(agent._rule).__name__
            for k, v in agent._rule.state_dict().items():
                arrays[f"rule.{k}"] = v
        if agent._obs is not None:
            for k in ("obs", "skip", "ep_ret", "ep_len", "ep_energy"):
                arrays[f"loop.{k}"] = np.asarray(getattr(agent, "_" + k))
            from .envstate import env_state

            try:
                env_arrays, meta["env_state"] = env_state(agent.env)
                arrays.update({f"env.{k}": v for k, v in env_arrays.items()})
            except ValueError:  # out of reach (SubprocVecEnv): a resumed run restarts its episodes
                pass
    write_arrays(path, arrays, meta)


def load_model(path, env=None, **overrides):
    """Load any spikerl agent file (SpikingAgent or PGMLPAgent), dispatching on its class."""
    meta, _ = read_arrays(path)
    if meta.get("class") not in AGENT_CLASSES:
        raise ModelFileError(f"{path}: unknown agent class {meta.get('class')!r}")
    return load_agent(agent_class(meta["class"]), path, env=env, **overrides)


def _need(arrays: dict, name: str, path) -> np.ndarray:
    if name not in arrays:
        raise ModelFileError(f"{path}: model file lacks the array {name!r}")
    return arrays[name]


def load_agent(cls, path, env=None, **overrides):
    meta, arrays = read_arrays(path)
    if meta.get("class") != cls.__name__:
        raise ModelFileError(f"{path}: holds a {meta.get('class')}, not a {cls.__name__} (use spikerl.load_model)")
    obs_space = space_from_description(meta["observation_space"])
    act_space = space_from_description(meta["action_space"])
    # files of older versions: new names, fields added since at the value they meant, and no
    # fields the agent's config no longer has (pg-mlp files carried every spiking field before
    # the configs were split)
    known = {f.name for f in dataclasses.fields(cls.config_class)}
    saved = {k: v for k, v in {**ADDED, **upgrade_keys(meta["config"], warn=False)}.items() if k in known}
    config = {**saved, **overrides}
    try:
        agent = cls(None, seed=meta["seed"], _spaces=(obs_space, act_space), **config)
    except TypeError as exc:
        raise ModelFileError(f"{path}: config does not fit this spikerl ({exc})") from exc
    if env is not None:
        agent.set_env(env)
    try:
        agent.policy.load_state_arrays({k: v for k, v in arrays.items() if "." not in k}, meta.get("policy", {}))
    except KeyError as exc:
        raise ModelFileError(f"{path}: model file lacks the array {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: arrays do not fit the saved config ({exc})") from exc
    critic = _need(arrays, "critic", path)
    if critic.shape != agent.critic.c.shape:
        raise ModelFileError(f"{path}: critic has shape {critic.shape}, expected {agent.critic.c.shape}")
    agent.critic.c = critic.astype(np.float64)
    linear = getattr(agent.critic, "linear", agent.critic)
    if "critic_W" in arrays and isinstance(linear, Critic):
        linear.W, linear.b = _need(arrays, "critic_W", path), _need(arrays, "critic_b", path)
        if linear.W.shape[0] + agent.encoder.n_inputs + 1 != linear.c.size:
            raise ModelFileError(f"{path}: critic_W has shape {linear.W.shape}, which does not fit the critic")
    enc = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("encoder.")}
    agent.encoder.load_state_dict(enc)
    agent.env_id = agent.env_id or meta.get("env_id")
    agent.num_timesteps = int(meta["num_timesteps"])
    agent.n_updates = int(meta.get("n_updates", 0))
    _set_rng_state(agent.predict_rng, meta["predict_rng"])
    if meta.get("training_state"):
        _set_rng_state(agent.rng, meta["rng"])
        agent.optimizer = type(agent.optimizer)(agent.policy.n_params)
        agent.optimizer.load_state_dict({k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("optim.")})
        agent.critic.opt.load_state_dict({k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("critic_optim.")})
        agent.decision_stats = np.array(arrays.get("decision_stats", agent.decision_stats), dtype=np.float64)
        if agent.policy.estimator is not None:
            agent.policy.estimator.load_state_dict({k[10:]: v for k, v in arrays.items() if k.startswith("estimator.")})
        agent.n_episodes = int(meta.get("n_episodes", 0))
        if env is not None and "env_state" in meta:
            _restore_loop(agent, meta, arrays, path)
    return agent


def _restore_loop(agent, meta: dict, arrays: dict, path) -> None:
    """Continue exactly where the saved run stopped: environments, the rule's buffers and
    traces, the loop's counters. If the env's state cannot be restored, training restarts
    episodes from a reset (warned)."""
    import warnings

    from .envstate import restore_env_state

    if agent.env.num_envs != arrays["loop.obs"].shape[0]:
        warnings.warn(f"{path}: saved with {arrays['loop.obs'].shape[0]} envs, resumed with {agent.env.num_envs}: "
                      "episodes restart from a reset")
        return
    try:
        restore_env_state(agent.env, {k[4:]: v for k, v in arrays.items() if k.startswith("env.")}, meta["env_state"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        warnings.warn(f"{path}: environment state not restored ({exc}); episodes restart from a reset")
        return
    for k in ("obs", "skip", "ep_ret", "ep_len", "ep_energy"):
        setattr(agent, "_" + k, np.array(arrays[f"loop.{k}"]))
    agent._rule = agent._make_rule()
    if meta.get("rule") != type(agent._rule).__name__:
        raise ModelFileError(f"{path}: saved rule {meta.get('rule')} differs from the config's {type(agent._rule).__name__}")
    agent._rule.load_state_dict({k[5:]: v for k, v in arrays.items() if k.startswith("rule.")})
