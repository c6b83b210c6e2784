"""DQN: deep Q-learning with experience replay and a target network (Mnih et al. 2015).

One environment, stepped by hand; a preallocated replay buffer; epsilon-greedy exploration with a
linear decay; a Huber (or MSE) TD loss minimised by Adam every ``train_frequency`` steps with
``gradient_steps`` updates; a target network updated by hard copies every
``target_update_interval`` steps (or Polyak averaging with ``tau < 1``).

Termination and truncation differ: the TD target bootstraps from the next state unless the episode
*terminated*; an episode cut by a time limit still bootstraps (Pardo et al. 2018). The default
hyperparameters are rl-zoo3's tuned CartPole-v1 setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from agents.common import (Evaluation, EpisodeLog, EvaluationClock, hp, linear_schedule, make_env,
                           torch_generator_seed)

NAME = "dqn"


@dataclass(frozen=True)
class Config:
    """Hyperparameters of DQN (defaults: rl-zoo3's CartPole-v1 DQN)."""

    learning_rate: float = hp(2.3e-3, low=1e-6, high=1e-1, log=True, help="Adam step size")
    buffer_size: int = hp(100_000, low=100, high=10_000_000, log=True, help="replay buffer capacity (transitions)")
    learning_starts: int = hp(1_000, low=0, high=1_000_000, help="env steps before the first update")
    batch_size: int = hp(64, low=1, high=4096, log=True, help="transitions per gradient step")
    gamma: float = hp(0.99, low=0.0, high=1.0, help="discount factor")
    tau: float = hp(1.0, low=0.0, high=1.0, help="target update: 1 = hard copy, < 1 = Polyak averaging")
    target_update_interval: int = hp(10, low=1, high=1_000_000, log=True, help="env steps between target updates")
    train_frequency: int = hp(256, low=1, high=100_000, log=True, help="env steps between training phases")
    gradient_steps: int = hp(128, low=1, high=10_000, log=True, help="gradient steps per training phase")
    exploration_fraction: float = hp(0.16, low=0.0, high=1.0, help="fraction of the budget over which epsilon decays")
    exploration_initial_eps: float = hp(1.0, low=0.0, high=1.0, help="epsilon at the start")
    exploration_final_eps: float = hp(0.04, low=0.0, high=1.0, help="epsilon after the decay")
    loss: str = hp("huber", choices=("huber", "mse"), help="TD loss")
    max_grad_norm: float = hp(10.0, low=0.01, high=1e6, log=True, help="gradient-norm clip")
    anneal_lr: bool = hp(False, choices=(True, False), help="decay the step size linearly to 0 over the run")
    double_q: bool = hp(False, choices=(True, False), help="double DQN target (van Hasselt et al. 2016)")
    hidden: int = hp(256, low=4, high=4096, log=True, help="units in each of the two ReLU hidden layers")


def q_network(n_in: int, n_out: int, hidden: int, gen: torch.Generator) -> nn.Sequential:
    """Two ReLU hidden layers, PyTorch's default Linear initialisation drawn from ``gen``."""
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                        nn.Linear(hidden, n_out))
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
                bound = 1 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    return net


def td_target(rewards: torch.Tensor, next_q_target: torch.Tensor, terminated: torch.Tensor,
              gamma: float, next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """``r + gamma * (1 - terminated) * max_a' Q_target(s', a')``: truncated transitions bootstrap.

    With ``next_q_online`` (double DQN) the target network evaluates the online network's argmax.
    """
    if next_q_online is None:
        best = next_q_target.max(dim=-1).values
    else:
        best = next_q_target.gather(-1, next_q_online.argmax(dim=-1, keepdim=True)).squeeze(-1)
    return rewards + gamma * (1.0 - terminated) * best


def td_loss(q_taken: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    return F.smooth_l1_loss(q_taken, target) if kind == "huber" else F.mse_loss(q_taken, target)


class ReplayBuffer:
    """Preallocated circular buffer of (obs, action, reward, next_obs, terminated)."""

    def __init__(self, capacity: int, n_obs: int) -> None:
        self.obs = np.zeros((capacity, n_obs), np.float32)
        self.next_obs = np.zeros((capacity, n_obs), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(0, self.size, size=batch)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.actions[idx]),
                torch.from_numpy(self.rewards[idx]), torch.from_numpy(self.next_obs[idx]),
                torch.from_numpy(self.terminated[idx]))


def update(q: nn.Module, target: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...],
           config: Config) -> float:
    """One gradient step on a sampled batch; returns the loss."""
    obs, actions, rewards, next_obs, terminated = batch
    with torch.no_grad():
        online = q(next_obs) if config.double_q else None
        y = td_target(rewards, target(next_obs), terminated, config.gamma, online)
    q_taken = q(obs).gather(1, actions[:, None]).squeeze(1)
    loss = td_loss(q_taken, y, config.loss)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(q.parameters(), config.max_grad_norm)
    opt.step()
    return float(loss.detach())


def sync_target(q: nn.Module, target: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for p, tp in zip(q.parameters(), target.parameters()):
            if tau >= 1.0:
                tp.copy_(p)
            else:
                tp.mul_(1.0 - tau).add_(p, alpha=tau)


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps, logging every finished episode (with loss and epsilon)."""
    rng = np.random.default_rng(seed)
    env = make_env(env_id, env_kwargs)
    if not isinstance(env.action_space, spaces.Discrete):
        raise ValueError(f"dqn: needs a Discrete action space, {env_id} has {env.action_space!r}")
    env.action_space.seed(seed)
    n_obs = int(np.prod(env.observation_space.shape))
    n_act, a0 = int(env.action_space.n), int(env.action_space.start)
    gen = torch.Generator().manual_seed(torch_generator_seed(rng))
    q = q_network(n_obs, n_act, config.hidden, gen)
    target = q_network(n_obs, n_act, config.hidden, gen)
    sync_target(q, target, 1.0)
    opt = torch.optim.Adam(q.parameters(), lr=config.learning_rate)
    buffer = ReplayBuffer(min(config.buffer_size, max(steps, 1)), n_obs)
    clock = EvaluationClock(evaluation)
    decay = int(config.exploration_fraction * steps)

    def greedy(o: np.ndarray) -> int:
        with torch.inference_mode():
            return a0 + int(q(torch.as_tensor(np.asarray(o, np.float32).reshape(1, -1))).argmax())

    obs = np.asarray(env.reset(seed=seed)[0], np.float32).ravel()
    ep_ret, ep_len, loss, eps = 0.0, 0, None, config.exploration_initial_eps
    for t in range(1, steps + 1):
        eps = linear_schedule(config.exploration_initial_eps, config.exploration_final_eps, decay, t - 1)
        action = int(rng.integers(n_act)) if rng.random() < eps else greedy(obs) - a0
        next_obs, r, term, trunc, _ = env.step(a0 + action)
        next_obs = np.asarray(next_obs, np.float32).ravel()
        buffer.add(obs, action, float(r), next_obs, term)
        ep_ret += float(r)
        ep_len += 1
        obs = next_obs
        if term or trunc:
            extras = {"epsilon": eps} if loss is None else {"epsilon": eps, "loss": loss}
            log.episode(t, ep_ret, ep_len, **extras)
            obs = np.asarray(env.reset()[0], np.float32).ravel()
            ep_ret, ep_len = 0.0, 0
        if t > config.learning_starts:
            if t % config.train_frequency == 0:
                if config.anneal_lr:
                    opt.param_groups[0]["lr"] = config.learning_rate * (1.0 - (t - 1) / steps)
                for _ in range(config.gradient_steps):
                    loss = update(q, target, opt, buffer.sample(rng, config.batch_size), config)
            if t % config.target_update_interval == 0:
                sync_target(q, target, config.tau)
        clock.run(t, greedy, env_id, env_kwargs, log)
    env.close()


from agents.dqn_batched import train_batch  # noqa: E402,F401  (seed-batched DQN: several seeds, one process)
