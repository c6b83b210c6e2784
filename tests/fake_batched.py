"""A test agent that can train a block of seeds in one call (the seed-batching contract)."""

from __future__ import annotations

from tests.fake_agents import Config, train  # noqa: F401  (Config is this agent's hyperparameters)

CALLS: list[int] = []


def train_batch(env_id, config, seeds, steps, logs, *, env_kwargs=None, evaluation=None):
    """Each seed trained exactly as ``train`` would, in one process; records the block size."""
    CALLS.append(len(seeds))
    for seed, log in zip(seeds, logs):
        train(env_id, config, seed, steps, log, env_kwargs=env_kwargs)
