"""Environments evalkit ships as registered gymnasium ids: the CHS benchmark's CliffWorld and PuddleWorld.

Importing this package registers them (idempotently):

* ``CliffWorld-v0`` -> ``evalkit.envs.cliffworld:CliffWorld``, ``TimeLimit`` 100 steps.
* ``PuddleWorld-v0`` -> ``evalkit.envs.puddleworld:PuddleWorld``, ``TimeLimit`` 1000 steps.

The limits are the largest finite episode cutoffs the CHS paper swept (Patterson et al., RLC 2024;
{none, 50, 100} for CliffWorld and {none, 500, 1000} for PuddleWorld); ``gym.make(id,
max_episode_steps=n)`` (``kwargs = { max_episode_steps = n }`` in a study file) overrides them.
Each module's docstring pins the dynamics and cites its source.
"""

from __future__ import annotations

import gymnasium as gym

# id -> (entry point, max_episode_steps)
ENVIRONMENTS: dict[str, tuple[str, int]] = {
    "CliffWorld-v0": ("evalkit.envs.cliffworld:CliffWorld", 100),
    "PuddleWorld-v0": ("evalkit.envs.puddleworld:PuddleWorld", 1000),
}


def register_envs() -> None:
    """Register every id in :data:`ENVIRONMENTS` that gymnasium does not know yet."""
    for env_id, (entry_point, limit) in ENVIRONMENTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=limit)


register_envs()
