"""The contract between evalkit and an agent, plus small helpers every agent shares.

An agent is one module in ``agents/`` (CleanRL style, readable top to bottom) that exposes:

* ``NAME: str`` -- the name used in study files (``agent = "dqn"``).
* ``Config`` -- a frozen dataclass of hyperparameters with defaults; each field is made
  with :func:`hp`, which records its allowed range or choices for validation and audits.
* ``train(env_id, config, seed, steps, log, *, env_kwargs=None, evaluation=None) -> None``
  -- trains for ``steps`` environment steps and reports every finished training episode
  with ``log.episode(...)`` and every evaluation round with ``log.evaluation(...)``.

This module depends on gymnasium, numpy and torch only: agents never import evalkit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import gymnasium as gym
import numpy as np


def hp(default: Any, *, low: float | None = None, high: float | None = None,
       choices: Sequence[Any] | None = None, log: bool = False, help: str = "") -> Any:
    """A hyperparameter field: its default, allowed range (inclusive) or choices, and a help text.

    ``log=True`` says the natural search scale is logarithmic (learning rates).
    """
    meta = {"low": low, "high": high, "choices": tuple(choices) if choices is not None else None,
            "log": log, "help": help}
    return field(default=default, metadata=meta)


# One vocabulary (issue 21): the same hyperparameter has the same name in every agent (SB3's names
# where they exist). Old names a study may still carry, mapped to the new one; evalkit refuses them
# with a one-line hint (``evalkit.spec``). Names only one agent has keep their own (DQN's
# ``train_frequency``, PPO's ``clip_coef``, the linear/tabular TD agents' step size ``alpha``,
# which the tile-coded agents divide by ``n_tilings`` and is not an optimizer's learning rate).
RENAMED = {
    "lr": "learning_rate",
    "value_lr": "value_learning_rate",
    "norm_adv": "normalize_advantage",
    "normalize_advantages": "normalize_advantage",
}


@dataclass(frozen=True)
class HyperparameterInfo:
    """What evalkit knows about one hyperparameter of an agent."""

    name: str
    type: type
    default: Any
    low: float | None
    high: float | None
    choices: tuple | None
    log: bool
    help: str


def hyperparameters(config_cls: type) -> dict[str, HyperparameterInfo]:
    """``{name: HyperparameterInfo}`` of a Config dataclass, in declaration order."""
    hints = {f.name: f.type for f in dataclasses.fields(config_cls)}
    out = {}
    for f in dataclasses.fields(config_cls):
        typ = hints[f.name]
        if isinstance(typ, str):  # from __future__ annotations
            typ = {"int": int, "float": float, "bool": bool, "str": str}.get(typ, object)
        m = f.metadata
        out[f.name] = HyperparameterInfo(f.name, typ, f.default, m.get("low"), m.get("high"),
                                         m.get("choices"), bool(m.get("log", False)), m.get("help", ""))
    return out


@dataclass(frozen=True)
class Evaluation:
    """Periodic greedy/deterministic evaluation: ``episodes`` episodes every ``every`` env steps.

    ``seed`` seeds the evaluation env, which is separate from the training env: evaluation
    round k uses env seeds ``seed + k * episodes + i`` for episode i.
    """

    every: int
    episodes: int
    seed: int


class EpisodeLog(Protocol):
    """What ``train`` reports to. evalkit's runner supplies the implementation."""

    def episode(self, step: int, ret: float, length: int, **extras: float) -> None:
        """One finished training episode: ``step`` = total env steps when it ended."""

    def evaluation(self, step: int, returns: Sequence[float], lengths: Sequence[int]) -> None:
        """One evaluation round at training step ``step``: the returns/lengths of its episodes."""


class ListLog:
    """A plain in-memory :class:`EpisodeLog` (used by tests and by the runner)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._episode = 0

    def episode(self, step: int, ret: float, length: int, **extras: float) -> None:
        self.rows.append({"mode": "train", "step": int(step), "episode": self._episode,
                          "return": float(ret), "length": int(length),
                          **{k: float(v) for k, v in extras.items()}})
        self._episode += 1

    def evaluation(self, step: int, returns: Sequence[float], lengths: Sequence[int]) -> None:
        for i, (r, n) in enumerate(zip(returns, lengths)):
            self.rows.append({"mode": "eval", "step": int(step), "episode": i,
                              "return": float(r), "length": int(n)})

    def returns(self, mode: str = "train") -> np.ndarray:
        return np.array([r["return"] for r in self.rows if r["mode"] == mode], dtype=float)


def choose_block(table: Sequence[tuple[int, int, int, str]], hidden: int, n_seeds: int,
                 agent: str) -> tuple[int, str]:
    """Seeds per block for ``batch_seeds = "auto"`` (issue 21) from an agent's measured table of
    rows ``(max hidden, min seeds, block, measurement)``: the first row with ``hidden <= max
    hidden`` and ``n_seeds >= min seeds`` gives the block, else 1 (never batch). A pure function of
    the config and the number of seeds: no timing at run time decides it, so run ids (which hold
    the block size) are reproducible. Returns ``(block, reason)``."""
    for max_hidden, min_seeds, block, measured in table:
        if hidden <= max_hidden and n_seeds >= min_seeds:
            return block, f"{agent} hidden {hidden} <= {max_hidden}, {n_seeds} seeds >= {min_seeds}: {measured}"
    widths = [row for row in table if hidden <= row[0]]
    if not widths:
        return 1, f"{agent} hidden {hidden}: no measurement shows batching faster at this width"
    return 1, f"{agent} hidden {hidden}, {n_seeds} seeds: too few seeds for a block that beats unbatched runs"


def make_env(env_id: str, env_kwargs: dict | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)``; evalkit registers custom entry points beforehand."""
    return gym.make(env_id, **(env_kwargs or {}))


def torch_generator_seed(rng: np.random.Generator) -> int:
    """A 63-bit seed for ``torch.manual_seed``/``torch.Generator`` drawn from ``rng``."""
    return int(rng.integers(0, 2**63 - 1))


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps, then constant."""
    if duration <= 0:
        return end
    return start + min(1.0, t / duration) * (end - start)


def evaluate_policy(act: Callable[[np.ndarray], Any], env_id: str, env_kwargs: dict | None,
                    episodes: int, seed: int, max_steps: int = 100_000) -> tuple[list[float], list[int]]:
    """Run ``episodes`` episodes of the deterministic policy ``act(obs) -> action``.

    Episode i is reset with ``seed + i``. Returns ``(returns, lengths)``. The training env is
    never touched, so evaluation does not perturb training.
    """
    env = make_env(env_id, env_kwargs)
    returns, lengths = [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, n, done = 0.0, 0, False
            while not done and n < max_steps:
                obs, r, term, trunc, _ = env.step(act(obs))
                total += float(r)
                n += 1
                done = term or trunc
            returns.append(total)
            lengths.append(n)
    finally:
        env.close()
    return returns, lengths


class EvaluationClock:
    """Tells a training loop when an evaluation round is due and which env seed it uses."""

    def __init__(self, evaluation: Evaluation | None) -> None:
        self.evaluation = evaluation
        self.rounds = 0
        self.next_step = evaluation.every if evaluation else math.inf

    def due(self, step: int) -> bool:
        return step >= self.next_step

    def next_seed(self) -> int:
        assert self.evaluation is not None
        seed = self.evaluation.seed + self.rounds * self.evaluation.episodes
        self.rounds += 1
        self.next_step += self.evaluation.every
        return seed

    def run(self, step: int, act: Callable[[np.ndarray], Any], env_id: str,
            env_kwargs: dict | None, log: EpisodeLog) -> None:
        """Evaluate once if due at ``step`` (call after every env step or vector step)."""
        if not self.due(step):
            return
        ev = self.evaluation
        returns, lengths = evaluate_policy(act, env_id, env_kwargs, ev.episodes, self.next_seed())
        while self.next_step <= step:  # a vector step may jump past several due points
            self.next_step += ev.every
        log.evaluation(step, returns, lengths)
