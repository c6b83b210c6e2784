"""PPO: proximal policy optimisation with the standard implementation details (Schulman et al. 2017;
Huang et al. 2022, "The 37 implementation details of PPO").

``n_envs`` env copies stepped in lockstep with manual resets; GAE(lambda); clipped surrogate
objective; optional value clipping; per-minibatch advantage normalisation; orthogonal
initialisation; linear learning-rate annealing; global gradient clipping; entropy bonus; several
epochs of minibatch updates per rollout. Discrete actions use a categorical policy; Box actions a
Gaussian with state-independent log std, clipped to the action bounds when stepping (optional
running observation normalisation and reward scaling, as in CleanRL's continuous PPO).

A time-limit truncation bootstraps: the reward of the cut step gets ``gamma * V(final obs)``.
Defaults are rl-zoo3's tuned CartPole-v1 setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.common import Evaluation, EpisodeLog, EvaluationClock, hp, make_env, torch_generator_seed

NAME = "ppo"


@dataclass(frozen=True)
class Config:
    """Hyperparameters of PPO (defaults: rl-zoo3's CartPole-v1 PPO)."""

    learning_rate: float = hp(1e-3, low=1e-6, high=1e-1, log=True, help="Adam step size")
    anneal_lr: bool = hp(True, choices=(True, False), help="decay the step size linearly to 0 over the run")
    n_envs: int = hp(8, low=1, high=256, log=True, help="env copies stepped in lockstep")
    n_steps: int = hp(32, low=1, high=8192, log=True, help="steps per env copy per rollout")
    n_minibatches: int = hp(1, low=1, high=512, log=True, help="minibatches per epoch")
    n_epochs: int = hp(20, low=1, high=100, help="passes over each rollout")
    gamma: float = hp(0.98, low=0.0, high=1.0, help="discount factor")
    gae_lambda: float = hp(0.8, low=0.0, high=1.0, help="GAE lambda")
    clip_coef: float = hp(0.2, low=0.0, high=10.0, help="surrogate clipping epsilon")
    clip_vloss: bool = hp(True, choices=(True, False), help="clip the value loss like the policy")
    norm_adv: bool = hp(True, choices=(True, False), help="normalise advantages per minibatch")
    ent_coef: float = hp(0.0, low=0.0, high=1.0, help="entropy bonus coefficient")
    vf_coef: float = hp(0.5, low=0.0, high=10.0, help="weight of the value loss")
    max_grad_norm: float = hp(0.5, low=0.01, high=100.0, log=True, help="global gradient-norm clip")
    hidden: int = hp(64, low=4, high=1024, log=True, help="units in each of the two tanh hidden layers")
    normalize_obs: bool = hp(False, choices=(True, False), help="running mean/std observation normalisation")
    normalize_reward: bool = hp(False, choices=(True, False), help="scale rewards by the running std of returns")
    init_log_std: float = hp(0.0, low=-5.0, high=2.0, help="initial log std of the Gaussian policy (Box actions)")


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray, gamma: float,
        lam: float) -> np.ndarray:
    """Generalised advantage estimates (Schulman et al. 2016), shape (T, N).

    ``dones[t]`` is true when the episode ended after step t (terminated or truncated; truncation
    is bootstrapped beforehand through the reward), so the recursion stops there.
    """
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1])
    next_values = last_values
    for t in range(len(rewards) - 1, -1, -1):
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * live - values[t]
        last = delta + gamma * lam * live * last
        adv[t] = last
        next_values = values[t]
    return adv


def _layer(n_in: int, n_out: int, gain: float, gen: torch.Generator) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        nn.init.orthogonal_(layer.weight, gain=gain, generator=gen)
        layer.bias.zero_()
    return layer


def mlp(n_in: int, n_out: int, hidden: int, out_gain: float, gen: torch.Generator) -> nn.Sequential:
    """Two tanh hidden layers, orthogonal init (gain sqrt 2; ``out_gain`` on the output layer)."""
    return nn.Sequential(_layer(n_in, hidden, np.sqrt(2), gen), nn.Tanh(), _layer(hidden, hidden, np.sqrt(2), gen),
                         nn.Tanh(), _layer(hidden, n_out, out_gain, gen))


class RunningMeanStd:
    """Running mean and variance (Chan et al.'s parallel update), for normalisation."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, x: np.ndarray) -> None:
        m, v, n = x.mean(0), x.var(0), x.shape[0]
        delta, total = m - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + v * n + delta ** 2 * self.count * n / total) / total
        self.count = total


class Policy(nn.Module):
    """Actor and critic; categorical or diagonal-Gaussian policy."""

    def __init__(self, n_obs: int, action_space: spaces.Space, config: Config, gen: torch.Generator) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.actor = mlp(n_obs, n_out, config.hidden, 0.01, gen)
        self.critic = mlp(n_obs, 1, config.hidden, 1.0, gen)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((n_out,), float(config.init_log_std)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        out = self.actor(obs)
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out))

    def log_prob(self, d: torch.distributions.Distribution, actions: torch.Tensor) -> torch.Tensor:
        lp = d.log_prob(actions)
        return lp if self.discrete else lp.sum(-1)

    def entropy(self, d: torch.distributions.Distribution) -> torch.Tensor:
        e = d.entropy()
        return e if self.discrete else e.sum(-1)


def sample_actions(policy: Policy, obs: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
    """Actions drawn with the run's numpy generator (never torch's global RNG), and their log-probs."""
    d = policy.dist(obs)
    if policy.discrete:
        probs = d.probs.numpy().astype(np.float64)
        cdf = np.cumsum(probs, axis=1)
        acts = np.minimum((cdf < rng.random(len(probs))[:, None] * cdf[:, -1:]).sum(axis=1), probs.shape[1] - 1)
        a = torch.as_tensor(acts)
    else:
        noise = torch.as_tensor(rng.standard_normal(d.mean.shape), dtype=torch.float32)
        a = d.mean + d.stddev * noise
        acts = a.numpy()
    return acts, policy.log_prob(d, a)


def ppo_loss(policy: Policy, obs: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
             returns: torch.Tensor, old_values: torch.Tensor, config: Config) -> tuple[torch.Tensor, dict]:
    """Clipped surrogate + (clipped) value loss - entropy bonus, for one minibatch."""
    d = policy.dist(obs)
    logp = policy.log_prob(d, actions)
    ratio = (logp - old_logp).exp()
    if config.norm_adv and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)).mean()
    v = policy.value(obs)
    if config.clip_vloss:
        v_clipped = old_values + (v - old_values).clamp(-config.clip_coef, config.clip_coef)
        vloss = 0.5 * torch.max((v - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        vloss = 0.5 * ((v - returns) ** 2).mean()
    ent = policy.entropy(d).mean()
    loss = pg - config.ent_coef * ent + config.vf_coef * vloss
    return loss, {"policy_loss": float(pg.detach()), "value_loss": float(vloss.detach()), "entropy": float(ent.detach())}


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps (summed over the env copies), logging every finished episode."""
    rng = np.random.default_rng(seed)
    envs = [make_env(env_id, env_kwargs) for _ in range(config.n_envs)]
    space = envs[0].action_space
    if not isinstance(space, (spaces.Discrete, spaces.Box)):
        raise ValueError(f"ppo: needs a Discrete or Box action space, {env_id} has {space!r}")
    env_seeds = [seed] + [int(s) for s in rng.integers(0, 2**31 - 1, size=config.n_envs - 1)]
    for env, s in zip(envs, env_seeds):
        env.action_space.seed(s)
    gen = torch.Generator().manual_seed(torch_generator_seed(rng))
    n_obs = int(np.prod(envs[0].observation_space.shape))
    policy = Policy(n_obs, space, config, gen)
    opt = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, eps=1e-5)
    discrete = policy.discrete
    a0 = int(space.start) if discrete else 0
    low, high = (None, None) if discrete else (space.low, space.high)
    obs_rms = RunningMeanStd((n_obs,)) if config.normalize_obs else None
    ret_rms = RunningMeanStd(()) if config.normalize_reward else None
    disc_returns = np.zeros(config.n_envs)
    clock = EvaluationClock(evaluation)

    def norm(o: np.ndarray) -> np.ndarray:
        if obs_rms is None:
            return o.astype(np.float32)
        return np.clip((o - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10, 10).astype(np.float32)

    def deterministic(o: np.ndarray):
        with torch.inference_mode():
            out = policy.actor(torch.as_tensor(norm(np.asarray(o, np.float64).reshape(1, -1))))[0]
        return a0 + int(out.argmax()) if discrete else np.clip(out.numpy(), low, high)

    def step_env(i: int, action):
        a = a0 + int(action) if discrete else np.clip(action, low, high)
        return envs[i].step(a)

    raw = np.stack([np.asarray(e.reset(seed=s)[0], np.float64).ravel() for e, s in zip(envs, env_seeds)])
    if obs_rms is not None:
        obs_rms.update(raw)
    m, n = config.n_envs, config.n_steps
    batch = m * n
    updates = max(1, -(-steps // batch))
    ep_ret, ep_len = np.zeros(m), np.zeros(m, dtype=np.int64)
    act_shape = () if discrete else space.shape
    t, info = 0, {}
    for update in range(updates):
        if config.anneal_lr:
            opt.param_groups[0]["lr"] = config.learning_rate * (1.0 - update / updates)
        b_obs = np.zeros((n, m, n_obs), np.float32)
        b_act = np.zeros((n, m) + act_shape, np.int64 if discrete else np.float32)
        b_logp, b_val = np.zeros((n, m), np.float32), np.zeros((n, m), np.float32)
        b_rew, b_done = np.zeros((n, m)), np.zeros((n, m))
        used = n
        for k in range(n):
            if t + m > steps:  # the budget is exact: stop the rollout at the last whole vector step
                used = k
                break
            obs = norm(raw)
            with torch.no_grad():
                ot = torch.as_tensor(obs)
                acts, logp = sample_actions(policy, ot, rng)
                vals = policy.value(ot).numpy()
            b_obs[k], b_act[k], b_logp[k], b_val[k] = obs, acts, logp.numpy(), vals
            new_raw = np.empty_like(raw)
            finals = []
            for i in range(m):
                o, r, term, trunc, _ = step_env(i, acts[i])
                o = np.asarray(o, np.float64).ravel()
                ep_ret[i] += float(r)
                ep_len[i] += 1
                b_rew[k, i] = float(r)
                if term or trunc:
                    b_done[k, i] = 1.0
                    if trunc and not term:
                        finals.append((i, o))
                    log.episode(t + i + 1, float(ep_ret[i]), int(ep_len[i]), **info)
                    ep_ret[i], ep_len[i] = 0.0, 0
                    o = np.asarray(envs[i].reset()[0], np.float64).ravel()
                new_raw[i] = o
            if ret_rms is not None:
                disc_returns = disc_returns * config.gamma * (1 - b_done[k]) + b_rew[k]
                ret_rms.update(disc_returns)
                b_rew[k] = b_rew[k] / np.sqrt(ret_rms.var + 1e-8)
            if finals:  # truncation bootstraps from the state where the episode was cut
                with torch.no_grad():
                    fv = policy.value(torch.as_tensor(np.stack([norm(o) for _, o in finals]))).numpy()
                for (i, _), v in zip(finals, fv):
                    b_rew[k, i] += config.gamma * float(v)
            t += m
            raw = new_raw
            if obs_rms is not None:
                obs_rms.update(raw)
            clock.run(t, deterministic, env_id, env_kwargs, log)
        if used == 0:
            break
        with torch.no_grad():
            last_v = policy.value(torch.as_tensor(norm(raw))).numpy()
        adv = gae(b_rew[:used], b_val[:used], b_done[:used], last_v, config.gamma, config.gae_lambda)
        info = _learn(policy, opt, b_obs[:used], b_act[:used], b_logp[:used], b_val[:used], adv, rng, config)
        if used < n:
            break
    for e in envs:
        e.close()


def _learn(policy: Policy, opt: torch.optim.Optimizer, obs: np.ndarray, acts: np.ndarray, logp: np.ndarray,
           vals: np.ndarray, adv: np.ndarray, rng: np.random.Generator, config: Config) -> dict:
    """Several epochs of minibatch updates on one rollout; returns the last minibatch's diagnostics."""
    size = obs.shape[0] * obs.shape[1]
    flat = lambda a: torch.as_tensor(a.reshape((size,) + a.shape[2:]))
    o, a, lp, v = flat(obs), flat(acts), flat(logp), flat(vals)
    adv_t = torch.as_tensor(adv.reshape(size), dtype=torch.float32)
    ret_t = adv_t + v
    mb = max(1, size // config.n_minibatches)
    info = {}
    for _ in range(config.n_epochs):
        order = torch.as_tensor(rng.permutation(size))
        for start in range(0, size, mb):
            idx = order[start:start + mb]
            loss, info = ppo_loss(policy, o[idx], a[idx], lp[idx], adv_t[idx], ret_t[idx], v[idx], config)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            opt.step()
    return info
