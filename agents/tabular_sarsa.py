"""Tabular Sarsa for discrete observation spaces (CliffWorld): one Q(s, a) entry per state and action.

Observations: ``Discrete``, ``MultiDiscrete`` or an integer-grid ``Box`` (CliffWorld's
(x, y) coordinates). Step size alpha, epsilon-greedy behaviour, greedy evaluation.
The update rule and its details (truncation bootstraps, ties, initial values) are in
:mod:`agents._linear_td`.
"""

from __future__ import annotations

from agents._linear_td import TabularConfig as Config
from agents._linear_td import tabular_features, train_td_control
from agents.common import Evaluation, EpisodeLog

NAME = "tabular_sarsa"


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps, logging every finished episode (and evaluations if asked)."""
    train_td_control("sarsa", tabular_features, env_id, config, seed, steps, log,
                     env_kwargs=env_kwargs, evaluation=evaluation)
