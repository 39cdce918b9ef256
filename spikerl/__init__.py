"""spikerl: probabilistic spiking policy networks trained with a local three-factor rule.

``import spikerl`` needs only numpy, numba and gymnasium; torch and Stable-Baselines3 are
imported lazily by the ANN-baseline code alone.
"""
from . import envs  # noqa: F401  (registers spikerl/WindyGridWorld-v0 with Gymnasium)
from .agent import SpikingAgent, SpikingConfig
from .serialization import load_model

__version__ = "0.1.0"
__all__ = ["SpikingAgent", "SpikingConfig", "load_model", "__version__"]
