"""REINFORCE with reward-to-go and a learned value baseline (Williams 1992; Sutton & Barto 2018, 13.4).

Collect whole episodes with the stochastic policy; once ``batch_steps`` steps of finished
episodes are in hand, update the policy by gradient ascent on

    sum_t log pi(a_t | s_t) * (G_t - V(s_t)),   G_t = sum_{k >= t} gamma^(k-t) r_k   (reward-to-go)

and the baseline V by regression onto G_t. Reward-to-go (causality: an action cannot change
rewards received before it) and the baseline only reduce variance; the gradient stays unbiased.
A time-limit truncation is not the end of the task: the reward-to-go of a truncated episode
adds ``gamma^(T-t) V(s_T)`` for the state it was cut at. Discrete action spaces only.
Evaluation is greedy (the most probable action).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.common import Evaluation, EpisodeLog, EvaluationClock, hp, make_env, torch_generator_seed

NAME = "reinforce"


@dataclass(frozen=True)
class Config:
    """Hyperparameters of REINFORCE with a learned baseline."""

    learning_rate: float = hp(1e-3, low=1e-5, high=1e-1, log=True, help="Adam step size of the policy")
    value_learning_rate: float = hp(1e-3, low=1e-5, high=1e-1, log=True, help="Adam step size of the value baseline")
    gamma: float = hp(0.99, low=0.0, high=1.0, help="discount factor")
    batch_steps: int = hp(1000, low=1, high=100_000, log=True,
                          help="update once the finished episodes hold at least this many steps")
    value_epochs: int = hp(5, low=1, high=100, help="full-batch gradient steps of the baseline per update")
    normalize_advantage: bool = hp(True, choices=(True, False), help="standardise G_t - V(s_t) per batch")
    ent_coef: float = hp(0.0, low=0.0, high=1.0, help="entropy bonus coefficient")
    max_grad_norm: float = hp(1.0, low=0.01, high=100.0, log=True, help="gradient-norm clip of each network")
    hidden: int = hp(64, low=4, high=1024, log=True, help="units in each of the two hidden layers")


# Per-env defaults (issue 21): study config > env defaults > Config defaults.
ENV_DEFAULTS: dict[str, dict] = {"CartPole-v1": {}}
ENV_DEFAULTS_SOURCE = {"CartPole-v1": "Config's defaults; agents benchmark at 200k"}


def reward_to_go(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """``G_t = sum_{k=t}^{T-1} gamma^(k-t) r_k + gamma^(T-t) * bootstrap`` for t = 0..T-1.

    ``rewards``: (T,) one episode's rewards. ``bootstrap``: the value of the state after the
    last reward (0 when the episode terminated, V(s_T) when a time limit cut it).
    """
    out = np.empty(len(rewards), dtype=np.float64)
    g = float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        g = float(rewards[t]) + gamma * g
        out[t] = g
    return out


def mlp(n_in: int, n_out: int, hidden: int, out_gain: float, gen: torch.Generator) -> nn.Sequential:
    """Two tanh hidden layers, orthogonal init (hidden gain sqrt 2), zero biases, seeded by ``gen``."""
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                        nn.Linear(hidden, n_out))
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for layer, gain in zip(linears, (np.sqrt(2), np.sqrt(2), out_gain)):
        nn.init.orthogonal_(layer.weight, gain=gain, generator=gen)
        nn.init.zeros_(layer.bias)
    return net


def sample_action(logits: torch.Tensor, rng: np.random.Generator) -> int:
    """Draw from softmax(logits) with the run's numpy generator (no torch RNG state involved)."""
    cdf = np.cumsum(torch.softmax(logits, -1).double().numpy())
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), cdf.size - 1))


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps, logging every finished episode (loss, entropy at updates)."""
    env = make_env(env_id, env_kwargs)
    if not isinstance(env.action_space, spaces.Discrete):
        raise ValueError(f"reinforce: needs a Discrete action space, {env_id} has {env.action_space!r}")
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(torch_generator_seed(rng))
    n_obs, n_act, a0 = int(np.prod(env.observation_space.shape)), int(env.action_space.n), int(env.action_space.start)
    policy = mlp(n_obs, n_act, config.hidden, 0.01, gen)
    value = mlp(n_obs, 1, config.hidden, 1.0, gen)
    pi_opt = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    v_opt = torch.optim.Adam(value.parameters(), lr=config.value_learning_rate)
    clock = EvaluationClock(evaluation)

    def greedy_act(o):
        with torch.inference_mode():
            return a0 + int(policy(torch.as_tensor(np.asarray(o, np.float32).ravel())).argmax())

    batch_obs, batch_act, batch_ret = [], [], []  # finished episodes awaiting an update
    ep_obs, ep_act, ep_rew = [], [], []
    stats: dict[str, float] = {}
    obs, _ = env.reset(seed=seed)
    for t in range(1, steps + 1):
        o = np.asarray(obs, np.float32).ravel()
        with torch.inference_mode():
            a = sample_action(policy(torch.as_tensor(o)), rng)
        obs, r, term, trunc, _ = env.step(a0 + a)
        ep_obs.append(o)
        ep_act.append(a)
        ep_rew.append(float(r))
        if term or trunc:
            boot = 0.0
            if trunc and not term:
                with torch.inference_mode():
                    boot = float(value(torch.as_tensor(np.asarray(obs, np.float32).ravel())))
            batch_obs += ep_obs
            batch_act += ep_act
            batch_ret.append(reward_to_go(np.array(ep_rew), config.gamma, boot))
            log.episode(t, sum(ep_rew), len(ep_rew), **stats)
            ep_obs, ep_act, ep_rew = [], [], []
            obs, _ = env.reset()
            if len(batch_obs) >= config.batch_steps:
                stats = _update(policy, value, pi_opt, v_opt, np.stack(batch_obs), np.array(batch_act),
                                np.concatenate(batch_ret), config)
                batch_obs, batch_act, batch_ret = [], [], []
        clock.run(t, greedy_act, env_id, env_kwargs, log)
    env.close()


def _update(policy: nn.Module, value: nn.Module, pi_opt: torch.optim.Optimizer, v_opt: torch.optim.Optimizer,
            obs: np.ndarray, actions: np.ndarray, returns: np.ndarray, config: Config) -> dict[str, float]:
    """One policy-gradient step and ``value_epochs`` baseline steps on a batch of finished episodes."""
    obs_t = torch.as_tensor(obs)
    ret_t = torch.as_tensor(returns, dtype=torch.float32)
    with torch.no_grad():
        adv = ret_t - value(obs_t).squeeze(-1)
    if config.normalize_advantage and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    logp_all = torch.log_softmax(policy(obs_t), dim=-1)
    logp = logp_all.gather(1, torch.as_tensor(actions).long().unsqueeze(1)).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    pi_loss = -(logp * adv).mean() - config.ent_coef * entropy
    pi_opt.zero_grad()
    pi_loss.backward()
    nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
    pi_opt.step()
    for _ in range(config.value_epochs):
        v_loss = 0.5 * ((value(obs_t).squeeze(-1) - ret_t) ** 2).mean()
        v_opt.zero_grad()
        v_loss.backward()
        nn.utils.clip_grad_norm_(value.parameters(), config.max_grad_norm)
        v_opt.step()
    return {"loss": pi_loss.item(), "value_loss": v_loss.item(), "entropy": entropy.item()}
