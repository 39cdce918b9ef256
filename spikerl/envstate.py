"""Snapshot and restore the state of (vector) environments as plain arrays and JSON, so
that a resumed run continues exactly where it stopped.

Works for environments whose state lives in plain attributes (numbers, tuples, numpy
arrays, numpy Generators), which covers Gymnasium's classic-control envs, their native
vector versions, the common wrappers and spikerl's own envs. Anything else is skipped;
:func:`restore_env_state` raises ``ValueError`` when the structure does not match.
"""
from __future__ import annotations

import numbers

import numpy as np


def _chain(vec_env) -> list:
    """The objects that hold state: the vector env (an SB3 ``VecEnv`` given to an agent: the
    adapter, then each ``VecEnvWrapper`` down to the ``VecEnv``), then each sub-env's wrapper
    chain. An SB3 ``VecEnv`` whose environments live in other processes (``SubprocVecEnv``)
    cannot be captured: ``ValueError``."""
    from .vec_env import is_sb3_vec_env, venv_chain

    objs = []
    for vec_env in venv_chain(vec_env):  # spikerl's SB3 adapter, SB3's VecEnvWrappers
        objs.append(vec_env)
        for stats in ("obs_rms", "ret_rms"):  # VecNormalize's running statistics (mean, var, count)
            rms = getattr(vec_env, stats, None)
            if rms is not None and hasattr(rms, "mean") and hasattr(rms, "count"):
                objs.append(rms)
    if is_sb3_vec_env(vec_env) and not hasattr(vec_env, "envs"):
        raise ValueError(f"the environments of {type(vec_env).__name__} run in other processes; their state is "
                         "not in reach")
    for sub in getattr(vec_env, "envs", []) or []:
        layer = sub
        while layer is not None:
            objs.append(layer)
            layer = getattr(layer, "env", None) if hasattr(layer, "env") and layer is not getattr(layer, "env", None) else None
    return objs


def _plain(v) -> bool:
    return v is None or isinstance(v, (bool, numbers.Number, str, np.bool_))


def env_state(vec_env) -> tuple[dict, dict]:
    """``(arrays, meta)`` describing every plain attribute along the env chain."""
    arrays, meta = {}, {"n_objects": 0, "attrs": []}
    objs = _chain(vec_env)
    meta["n_objects"] = len(objs)
    meta["types"] = [type(o).__name__ for o in objs]
    for i, obj in enumerate(objs):
        for k, v in vars(obj).items():
            key = f"{i}.{k}"
            if isinstance(v, np.random.Generator):
                meta["attrs"].append([key, "rng", v.bit_generator.state])
            elif isinstance(v, np.ndarray) and v.dtype != object:
                arrays[key] = v
                meta["attrs"].append([key, "array", None])
            elif isinstance(v, np.generic):
                meta["attrs"].append([key, "scalar", v.item()])
            elif _plain(v):
                meta["attrs"].append([key, "plain", v])
            elif isinstance(v, tuple) and all(_plain(x) for x in v):
                meta["attrs"].append([key, "tuple", list(v)])
    return arrays, meta


def restore_env_state(vec_env, arrays: dict, meta: dict) -> None:
    objs = _chain(vec_env)
    if len(objs) != meta["n_objects"] or [type(o).__name__ for o in objs] != meta["types"]:
        raise ValueError(f"env structure {[type(o).__name__ for o in objs]} differs from the saved {meta['types']}")
    for key, kind, value in meta["attrs"]:
        i, attr = key.split(".", 1)
        obj = objs[int(i)]
        if kind == "rng":
            current = getattr(obj, attr, None)
            rng = current if isinstance(current, np.random.Generator) else np.random.default_rng()
            rng.bit_generator.state = value
            setattr(obj, attr, rng)
        elif kind == "array":
            setattr(obj, attr, np.array(arrays[key]))
        elif kind == "tuple":
            setattr(obj, attr, tuple(value))
        else:
            setattr(obj, attr, value)
