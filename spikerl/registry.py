"""The agent kinds spikerl can build and load, by name: what :func:`spikerl.load_model` and
the CLI consult, so file formats never import agent classes. An entry names the class as
``"module:attribute"``; it is imported when first asked for."""
from __future__ import annotations

import importlib

AGENT_CLASSES: dict[str, str] = {
    "SpikingAgent": "spikerl.agent:SpikingAgent",
    "PGMLPAgent": "spikerl.pg_mlp:PGMLPAgent",
}


def register_agent(name: str, target: str) -> None:
    """Make ``load_model`` able to load files of class ``name`` (``"package.module:Class"``)."""
    if ":" not in target:
        raise ValueError(f"agent class target must be 'module:attribute', got {target!r}")
    AGENT_CLASSES[name] = target


def agent_class(name: str) -> type:
    if name not in AGENT_CLASSES:
        raise KeyError(name)
    module, _, attr = AGENT_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["AGENT_CLASSES", "register_agent", "agent_class"]
