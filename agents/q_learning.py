"""Q-learning with tile coding: off-policy one-step TD control, bootstrapping from max_a Q(s', a).

Features: :mod:`agents.tile_coding` over the Box observation's bounds; step size alpha / n_tilings;
epsilon-greedy behaviour, greedy evaluation. Works on any Box-observation, Discrete-action env
(MountainCar, Acrobot, CartPole with declared velocity bounds, PuddleWorld, CliffWorld's coordinates).
The update rule and its details (truncation bootstraps, ties, initial values) are in
:mod:`agents._linear_td`.
"""

from __future__ import annotations

from agents._linear_td import LinearTDConfig as Config
from agents._linear_td import tile_features, train_td_control
from agents.common import Evaluation, EpisodeLog

NAME = "q_learning"


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps, logging every finished episode (and evaluations if asked)."""
    train_td_control("q_learning", tile_features(config), env_id, config, seed, steps, log,
                     env_kwargs=env_kwargs, evaluation=evaluation)
