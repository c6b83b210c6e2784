"""A2C: synchronous n-step advantage actor-critic with a learned value baseline (Mnih et al. 2016).

``n_envs`` copies of the env step in lockstep; every ``n_steps`` steps of each copy, the
``n_envs * n_steps`` transitions make one gradient step on

    loss = -mean(log pi(a_t|s_t) * A_t) + vf_coef * 0.5 * mean((R_t - V(s_t))^2) - ent_coef * entropy

where R_t is the n-step return bootstrapped from V at the end of the rollout and A_t = R_t - V(s_t)
(``gae_lambda = 1``; a smaller lambda gives the GAE(lambda) advantage of Schulman et al. 2016).
Separate policy and value networks (two tanh layers, orthogonal init), one optimizer.
A time-limit truncation is not terminal: its reward gets ``gamma * V(s_T)`` of the state the
episode was cut at, then the return restarts at the reset. Evaluation is greedy.
Discrete action spaces only. Step accounting is exact: the run stops after ``steps`` env steps
even inside a rollout (that last partial rollout is not trained on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.common import Evaluation, EpisodeLog, EvaluationClock, hp, make_env, torch_generator_seed
from agents.reinforce import mlp

NAME = "a2c"


@dataclass(frozen=True)
class Config:
    """Hyperparameters of A2C."""

    learning_rate: float = hp(7e-4, low=1e-5, high=1e-1, log=True, help="optimizer step size")
    optimizer: str = hp("rmsprop", choices=("rmsprop", "adam"), help="RMSprop(alpha=0.99, eps=1e-5) as in A2C, or Adam")
    n_envs: int = hp(8, low=1, high=256, log=True, help="env copies stepped in lockstep")
    n_steps: int = hp(5, low=1, high=2048, log=True, help="steps per env copy between updates (the n of n-step)")
    gamma: float = hp(0.99, low=0.0, high=1.0, help="discount factor")
    gae_lambda: float = hp(1.0, low=0.0, high=1.0, help="1 = plain n-step returns; < 1 = GAE(lambda)")
    vf_coef: float = hp(0.5, low=0.0, high=10.0, help="weight of the value loss")
    ent_coef: float = hp(0.0, low=0.0, high=1.0, help="entropy bonus coefficient")
    max_grad_norm: float = hp(0.5, low=0.01, high=100.0, log=True, help="global gradient-norm clip")
    normalize_advantage: bool = hp(False, choices=(True, False), help="standardise advantages per update")
    anneal_lr: bool = hp(False, choices=(True, False), help="decay the step size linearly to 0 over the run")
    hidden: int = hp(64, low=4, high=1024, log=True, help="units in each of the two hidden layers")


# Per-env defaults (issue 21, rl-zoo3 style): study config > env defaults > Config defaults.
ENV_DEFAULTS: dict[str, dict] = {
    "CartPole-v1": {},  # Config's defaults are rl-zoo3's (SB3's A2C defaults, 8 envs)
    "LunarLander-v3": dict(gamma=0.995, n_steps=5, learning_rate=8.3e-4, anneal_lr=True, ent_coef=1e-5),
}
ENV_DEFAULTS_SOURCE = {
    "CartPole-v1": "rl-zoo3's CartPole-v1; agents benchmark at 200k",
    "LunarLander-v3": "rl-zoo3's LunarLander (lin_0.00083); not yet measured here",
}


def advantages(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray,
               gamma: float, lam: float) -> np.ndarray:
    """GAE(lambda) advantages of a rollout; with ``lam = 1`` they are n-step returns minus V.

    ``rewards, values, dones``: (n_steps, n_envs); ``dones[t]`` = the episode ended at step t
    (a truncation's bootstrap is already folded into its reward). ``last_values``: (n_envs,)
    V of the observation after the last step.
    """
    adv = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        next_v = last_values if t == rewards.shape[0] - 1 else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_v * live - values[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
    return adv


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps (summed over the env copies), logging every finished episode."""
    rng = np.random.default_rng(seed)
    envs = [make_env(env_id, env_kwargs) for _ in range(config.n_envs)]
    if not isinstance(envs[0].action_space, spaces.Discrete):
        raise ValueError(f"a2c: needs a Discrete action space, {env_id} has {envs[0].action_space!r}")
    # copy 0 uses the run's seed as every agent does; the others get seeds drawn from it
    env_seeds = [seed] + [int(s) for s in rng.integers(0, 2**31 - 1, size=config.n_envs - 1)]
    for env, s in zip(envs, env_seeds):
        env.action_space.seed(s)
    gen = torch.Generator().manual_seed(torch_generator_seed(rng))
    n_obs = int(np.prod(envs[0].observation_space.shape))
    n_act, a0 = int(envs[0].action_space.n), int(envs[0].action_space.start)
    policy = mlp(n_obs, n_act, config.hidden, 0.01, gen)
    value = mlp(n_obs, 1, config.hidden, 1.0, gen)
    params = list(policy.parameters()) + list(value.parameters())
    if config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.learning_rate, eps=1e-5)
    else:
        opt = torch.optim.RMSprop(params, lr=config.learning_rate, alpha=0.99, eps=1e-5)
    clock = EvaluationClock(evaluation)

    def greedy_act(o):
        with torch.inference_mode():
            return a0 + int(policy(torch.as_tensor(np.asarray(o, np.float32).ravel())).argmax())

    def v_of(o: np.ndarray) -> float:
        with torch.inference_mode():
            return float(value(torch.as_tensor(np.asarray(o, np.float32).ravel())))

    n, m = config.n_steps, config.n_envs
    obs = np.stack([np.asarray(env.reset(seed=s)[0], np.float32).ravel() for env, s in zip(envs, env_seeds)])
    buf_obs = np.zeros((n, m, n_obs), np.float32)
    buf_act = np.zeros((n, m), np.int64)
    buf_rew = np.zeros((n, m))
    buf_done = np.zeros((n, m))
    ep_ret, ep_len = np.zeros(m), np.zeros(m, np.int64)
    stats: dict[str, float] = {}
    t = 0
    while t < steps:
        for k in range(n):
            with torch.inference_mode():
                probs = torch.softmax(policy(torch.as_tensor(obs)), -1).double().numpy()
            cdf = np.cumsum(probs, axis=1)
            acts = np.minimum((cdf < rng.random(m)[:, None] * cdf[:, -1:]).sum(axis=1), n_act - 1)
            buf_obs[k] = obs
            buf_act[k] = acts
            for i, env in enumerate(envs):
                if t == steps:
                    break
                o, r, term, trunc, _ = env.step(a0 + int(acts[i]))
                t += 1
                ep_ret[i] += float(r)
                ep_len[i] += 1
                buf_rew[k, i] = float(r)
                buf_done[k, i] = float(term or trunc)
                if trunc and not term:
                    buf_rew[k, i] += config.gamma * v_of(o)
                if term or trunc:
                    log.episode(t, float(ep_ret[i]), int(ep_len[i]), **stats)
                    ep_ret[i], ep_len[i] = 0.0, 0
                    o, _ = env.reset()
                obs[i] = np.asarray(o, np.float32).ravel()
                clock.run(t, greedy_act, env_id, env_kwargs, log)
            if t == steps:
                break
        else:  # a full rollout: learn from it
            if config.anneal_lr:
                for g in opt.param_groups:
                    g["lr"] = config.learning_rate * (1.0 - t / steps)
            stats = _update(policy, value, opt, params, buf_obs, buf_act, buf_rew, buf_done, obs, config)
    for env in envs:
        env.close()


def _update(policy: nn.Module, value: nn.Module, opt: torch.optim.Optimizer, params: list, buf_obs: np.ndarray,
            buf_act: np.ndarray, buf_rew: np.ndarray, buf_done: np.ndarray, next_obs: np.ndarray,
            config: Config) -> dict[str, float]:
    """One gradient step on a full rollout; returns the logged training signals."""
    n, m, n_obs = buf_obs.shape
    obs_t = torch.as_tensor(buf_obs.reshape(n * m, n_obs))
    v = value(obs_t).squeeze(-1)
    with torch.no_grad():
        last_v = value(torch.as_tensor(next_obs)).squeeze(-1).double().numpy()
    adv = advantages(buf_rew, v.detach().double().numpy().reshape(n, m), buf_done, last_v,
                     config.gamma, config.gae_lambda).reshape(-1)
    returns = torch.as_tensor(adv + v.detach().double().numpy(), dtype=torch.float32)
    adv_t = torch.as_tensor(adv, dtype=torch.float32)
    if config.normalize_advantage and adv_t.numel() > 1:
        adv_t = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8)
    logp_all = torch.log_softmax(policy(obs_t), dim=-1)
    logp = logp_all.gather(1, torch.as_tensor(buf_act.reshape(-1)).unsqueeze(1)).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    pi_loss = -(logp * adv_t).mean()
    v_loss = 0.5 * ((v - returns) ** 2).mean()
    loss = pi_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    opt.step()
    return {"loss": pi_loss.item(), "value_loss": v_loss.item(), "entropy": entropy.item()}
