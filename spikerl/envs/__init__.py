"""Environments shipped with spikerl, registered with Gymnasium under the ``spikerl/`` namespace."""
import gymnasium as gym

ENV_IDS = ("spikerl/WindyGridWorld-v0",)


def register_envs() -> None:
    """Register spikerl's envs (idempotent)."""
    if "spikerl/WindyGridWorld-v0" not in gym.registry:
        gym.register(
            id="spikerl/WindyGridWorld-v0",
            entry_point="spikerl.envs.windy_gridworld:WindyGridWorldEnv",
            max_episode_steps=200,
        )


register_envs()
