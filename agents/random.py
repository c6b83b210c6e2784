"""Uniform random policy: the floor every report needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.common import Evaluation, EpisodeLog, EvaluationClock, hp, make_env

NAME = "random"


@dataclass(frozen=True)
class Config:
    """The random agent has no hyperparameters that change its behaviour."""

    repeat: int = hp(1, low=1, high=100, help="repeat each sampled action this many steps")


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Act uniformly at random for ``steps`` env steps, logging every finished episode."""
    env = make_env(env_id, env_kwargs)
    env.action_space.seed(seed)
    clock = EvaluationClock(evaluation)
    eval_space = env.action_space
    obs, _ = env.reset(seed=seed)
    ep_ret, ep_len, action, held = 0.0, 0, None, 0
    for t in range(1, steps + 1):
        if held == 0:
            action = env.action_space.sample()
            held = config.repeat
        held -= 1
        obs, r, term, trunc, _ = env.step(action)
        ep_ret += float(r)
        ep_len += 1
        if term or trunc:
            log.episode(t, ep_ret, ep_len)
            obs, _ = env.reset()
            ep_ret, ep_len, held = 0.0, 0, 0
        clock.run(t, lambda o: eval_space.sample(), env_id, env_kwargs, log)
    env.close()
