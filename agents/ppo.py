"""PPO: proximal policy optimisation with the standard implementation details (Schulman et al. 2017;
Huang et al. 2022, "The 37 implementation details of PPO").

``n_envs`` env copies stepped in lockstep with same-step manual resets (CartPole, Acrobot and
MountainCar through :mod:`agents.vector_envs`' numpy copies, bit-identical to gymnasium, so one
array step replaces ``n_envs`` Python env steps; other ids through gymnasium envs, with the same
seeding and results); GAE(lambda); clipped surrogate
objective; optional value clipping; per-minibatch advantage normalisation; orthogonal
initialisation; linear learning-rate annealing; global gradient clipping; entropy bonus; several
epochs of minibatch updates per rollout. Discrete actions use a categorical policy; Box actions a
Gaussian with state-independent log std, clipped to the action bounds when stepping (optional
running observation normalisation and reward scaling, as in CleanRL's continuous PPO).

A time-limit truncation bootstraps: the reward of the cut step gets ``gamma * V(final obs)``.
Defaults are rl-zoo3's tuned CartPole-v1 setting; they also solve Acrobot-v1. Pendulum-v1 wants
rl-zoo3's Pendulum setting without gSDE (see ``studies/agents_benchmark.toml``): ``n_envs=4,
n_steps=1024, gamma=0.9, gae_lambda=0.95, n_epochs=10, n_minibatches=16, clip_vloss=False`` (the
value clip is off, as in rl-zoo3; unnormalised Pendulum value targets are tens to a hundred, and
a clip of 0.2 per update would slow the critic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents import vector_envs
from agents.common import Evaluation, EpisodeLog, EvaluationClock, choose_block, hp, make_env, torch_generator_seed

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
    normalize_advantage: bool = hp(True, choices=(True, False), help="normalise advantages per minibatch")
    ent_coef: float = hp(0.0, low=0.0, high=1.0, help="entropy bonus coefficient")
    vf_coef: float = hp(0.5, low=0.0, high=10.0, help="weight of the value loss")
    max_grad_norm: float = hp(0.5, low=0.01, high=100.0, log=True, help="global gradient-norm clip")
    hidden: int = hp(64, low=4, high=1024, log=True, help="units in each of the two tanh hidden layers")
    normalize_obs: bool = hp(False, choices=(True, False), help="running mean/std observation normalisation")
    normalize_reward: bool = hp(False, choices=(True, False), help="scale rewards by the running std of returns")
    init_log_std: float = hp(0.0, low=-5.0, high=2.0, help="initial log std of the Gaussian policy (Box actions)")


# Per-env defaults (issue 21, rl-zoo3 style): study config > env defaults > Config defaults.
ENV_DEFAULTS: dict[str, dict] = {
    "CartPole-v1": {},  # Config's defaults are rl-zoo3's CartPole-v1 setting
    "Acrobot-v1": {},  # ... and solve Acrobot-v1 too (agents benchmark)
    "Pendulum-v1": dict(n_envs=4, n_steps=1024, gamma=0.9, gae_lambda=0.95, n_epochs=10, learning_rate=1e-3,
                        n_minibatches=16, clip_vloss=False),
    # rl-zoo3's MountainCar-v0 and LunarLander settings (SB3 batch_size 64 -> n_minibatches; constant lr)
    "MountainCar-v0": dict(normalize_obs=True, n_envs=16, n_steps=16, gae_lambda=0.98, gamma=0.99, n_epochs=4,
                           learning_rate=3e-4, anneal_lr=False, n_minibatches=4, clip_vloss=False),
    "LunarLander-v3": dict(n_envs=16, n_steps=1024, gae_lambda=0.98, gamma=0.999, n_epochs=4, ent_coef=0.01,
                           learning_rate=3e-4, anneal_lr=False, n_minibatches=256, clip_vloss=False),
}
ENV_DEFAULTS_SOURCE = {
    "CartPole-v1": "rl-zoo3's CartPole-v1; agents benchmark at 200k",
    "Acrobot-v1": "rl-zoo3's CartPole-v1 setting; agents benchmark at 200k",
    "Pendulum-v1": "rl-zoo3's Pendulum-v1 without gSDE, 256-sample minibatches; agents benchmark at 200k",
    "MountainCar-v0": "rl-zoo3's MountainCar-v0 (1M steps there); not yet measured here",
    "LunarLander-v3": "rl-zoo3's LunarLander (1M steps there); not yet measured here",
}


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
    """Actor and critic; categorical or diagonal-Gaussian policy.

    The distributions are written out by hand (log-softmax / Gaussian log-density) rather than
    through ``torch.distributions``: same maths, without the per-call object and argument checks,
    which cost more than the two small MLPs on CartPole.
    """

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

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``actions`` and entropy of the policy at ``obs``, both shape (B,)."""
        out = self.actor(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=-1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)
        log_std = self.log_std.expand_as(out)
        z = (actions - out) * torch.exp(-log_std)
        logp = (-0.5 * z * z - log_std - _HALF_LOG_2PI).sum(-1)
        return logp, (0.5 + _HALF_LOG_2PI + log_std).sum(-1)


_HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))


def sample_actions(policy: Policy, obs: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Actions drawn with the run's numpy generator (never torch's global RNG), and their log-probs
    (float32 numpy). Call under ``torch.inference_mode``."""
    out = policy.actor(obs)
    if policy.discrete:
        logp_all = torch.log_softmax(out, dim=-1).numpy()
        probs = np.exp(logp_all.astype(np.float64))
        cdf = np.cumsum(probs, axis=1)
        acts = np.minimum((cdf < rng.random(len(probs))[:, None] * cdf[:, -1:]).sum(axis=1), probs.shape[1] - 1)
        return acts, logp_all[np.arange(len(acts)), acts]
    noise = rng.standard_normal(out.shape).astype(np.float32)
    log_std = policy.log_std.numpy()
    acts = out.numpy() + np.exp(log_std) * noise
    logp = (-0.5 * noise * noise - log_std - np.float32(_HALF_LOG_2PI)).sum(-1)
    return acts, logp.astype(np.float32)


def ppo_loss(policy: Policy, obs: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
             returns: torch.Tensor, old_values: torch.Tensor, config: Config) -> tuple[torch.Tensor, dict]:
    """Clipped surrogate + (clipped) value loss - entropy bonus, for one minibatch."""
    logp, entropy = policy.log_prob_entropy(obs, actions)
    ratio = (logp - old_logp).exp()
    if config.normalize_advantage and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)).mean()
    v = policy.value(obs)
    if config.clip_vloss:
        v_clipped = old_values + (v - old_values).clamp(-config.clip_coef, config.clip_coef)
        vloss = 0.5 * torch.max((v - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        vloss = 0.5 * ((v - returns) ** 2).mean()
    ent = entropy.mean()
    loss = pg - config.ent_coef * ent + config.vf_coef * vloss
    return loss, {"policy_loss": pg, "value_loss": vloss, "entropy": ent}


class _GymEnvs:
    """``n`` gymnasium envs behind :class:`agents.vector_envs.VectorEnv`'s interface (for ids without
    a numpy implementation): same-step manual reset, ``final_obs`` of ended episodes, float64 obs.
    Copy ``i`` is reset with ``seeds[i]`` first and without a seed afterwards, as the numpy envs."""

    def __init__(self, env_id: str, env_kwargs: dict | None, seeds: list[int]) -> None:
        self.envs = [make_env(env_id, env_kwargs) for _ in seeds]
        self.seeds = seeds
        self.observation_space, self.action_space = self.envs[0].observation_space, self.envs[0].action_space
        self.discrete = isinstance(self.action_space, spaces.Discrete)
        self.a0 = int(self.action_space.start) if self.discrete else 0
        for env, s in zip(self.envs, seeds):
            env.action_space.seed(s)

    def reset(self) -> np.ndarray:
        return np.stack([np.asarray(e.reset(seed=s)[0], np.float64).ravel() for e, s in zip(self.envs, self.seeds)])

    def step(self, actions: np.ndarray):
        n = len(self.envs)
        obs, final = [], []
        rew, term, trunc = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
        for i, e in enumerate(self.envs):
            o, r, te, tr, _ = e.step(self.a0 + int(actions[i]) if self.discrete else actions[i])
            o = np.asarray(o, np.float64).ravel()
            rew[i], term[i], trunc[i] = float(r), te, tr
            final.append(o)
            obs.append(np.asarray(e.reset()[0], np.float64).ravel() if te or tr else o)
        return np.stack(obs), rew, term, trunc, np.stack(final)

    def close(self) -> None:
        for e in self.envs:
            e.close()


def make_envs(env_id: str, env_kwargs: dict | None, seeds: list[int]):
    """The training envs: :mod:`agents.vector_envs`' numpy copies when they reproduce
    ``gym.make(env_id, **env_kwargs)`` bit for bit (CartPole, Acrobot, MountainCar), else gymnasium envs."""
    kw = dict(env_kwargs or {})
    if vector_envs.supported(env_id) and not set(kw) - {"max_episode_steps"}:
        return vector_envs.make_vector(env_id, seeds, max_episode_steps=kw.get("max_episode_steps"))
    return _GymEnvs(env_id, env_kwargs, seeds)


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps (summed over the env copies), logging every finished episode."""
    rng = np.random.default_rng(seed)
    m, n = config.n_envs, config.n_steps
    env_seeds = [seed] + [int(s) for s in rng.integers(0, 2**31 - 1, size=m - 1)]
    envs = make_envs(env_id, env_kwargs, env_seeds)
    space = envs.action_space
    if not isinstance(space, (spaces.Discrete, spaces.Box)):
        envs.close()
        raise ValueError(f"ppo: needs a Discrete or Box action space, {env_id} has {space!r}")
    gen = torch.Generator().manual_seed(torch_generator_seed(rng))
    n_obs = int(np.prod(envs.observation_space.shape))
    policy = Policy(n_obs, space, config, gen)
    opt = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, eps=1e-5, fused=True)
    discrete = policy.discrete
    a0 = int(space.start) if discrete else 0
    low, high = (None, None) if discrete else (space.low, space.high)
    obs_rms = RunningMeanStd((n_obs,)) if config.normalize_obs else None
    ret_rms = RunningMeanStd(()) if config.normalize_reward else None
    disc_returns = np.zeros(m)
    clock = EvaluationClock(evaluation)

    def norm(o: np.ndarray) -> np.ndarray:
        if obs_rms is None:
            return o.astype(np.float32)
        return np.clip((o - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10, 10).astype(np.float32)

    def deterministic(o: np.ndarray):
        with torch.inference_mode():
            out = policy.actor(torch.from_numpy(norm(np.asarray(o, np.float64).reshape(1, -1))))[0]
        return a0 + int(out.argmax()) if discrete else np.clip(out.numpy(), low, high)

    raw = np.asarray(envs.reset(), np.float64)
    if obs_rms is not None:
        obs_rms.update(raw)
    batch = m * n
    updates = max(1, -(-steps // batch))
    ep_ret, ep_len = np.zeros(m), np.zeros(m, dtype=np.int64)
    act_shape = () if discrete else space.shape
    b_obs = np.zeros((n, m, n_obs), np.float32)
    b_act = np.zeros((n, m) + act_shape, np.int64 if discrete else np.float32)
    b_logp, b_val = np.zeros((n, m), np.float32), np.zeros((n, m), np.float32)
    b_rew, b_done = np.zeros((n, m)), np.zeros((n, m))
    t, info = 0, {}
    for update in range(updates):
        if config.anneal_lr:
            opt.param_groups[0]["lr"] = config.learning_rate * (1.0 - update / updates)
        used = n
        for k in range(n):
            if t + m > steps:  # the budget is exact: stop the rollout at the last whole vector step
                used = k
                break
            obs = norm(raw)
            with torch.inference_mode():
                ot = torch.from_numpy(obs)
                acts, logp = sample_actions(policy, ot, rng)
                b_val[k] = policy.value(ot).numpy()
            b_obs[k], b_act[k], b_logp[k] = obs, acts, logp
            new_raw, rew, term, trunc, final = envs.step(acts if discrete else np.clip(acts, low, high))
            new_raw = np.asarray(new_raw, np.float64)
            ep_ret += rew
            ep_len += 1
            b_rew[k] = rew
            done = term | trunc
            b_done[k] = done
            if done.any():
                for i in np.flatnonzero(done):
                    log.episode(t + i + 1, float(ep_ret[i]), int(ep_len[i]), **info)
                ep_ret[done], ep_len[done] = 0.0, 0
            if ret_rms is not None:
                disc_returns = disc_returns * config.gamma * (1 - b_done[k]) + b_rew[k]
                ret_rms.update(disc_returns)
                b_rew[k] = b_rew[k] / np.sqrt(ret_rms.var + 1e-8)
            cut = trunc & ~term
            if cut.any():  # truncation bootstraps from the state where the episode was cut
                with torch.inference_mode():
                    fv = policy.value(torch.from_numpy(norm(np.asarray(final[cut], np.float64)))).numpy()
                b_rew[k, cut] += config.gamma * fv.astype(np.float64)
            t += m
            raw = new_raw
            if obs_rms is not None:
                obs_rms.update(raw)
            clock.run(t, deterministic, env_id, env_kwargs, log)
        if used == 0:
            break
        with torch.inference_mode():
            last_v = policy.value(torch.from_numpy(norm(raw))).numpy()
        adv = gae(b_rew[:used], b_val[:used], b_done[:used], last_v, config.gamma, config.gae_lambda)
        info = _learn(policy, opt, b_obs[:used], b_act[:used], b_logp[:used], b_val[:used], adv, rng, config)
        if used < n:
            break
    envs.close()


def _learn(policy: Policy, opt: torch.optim.Optimizer, obs: np.ndarray, acts: np.ndarray, logp: np.ndarray,
           vals: np.ndarray, adv: np.ndarray, rng: np.random.Generator, config: Config) -> dict:
    """Several epochs of minibatch updates on one rollout; returns the last minibatch's diagnostics."""
    size = obs.shape[0] * obs.shape[1]
    flat = lambda a: torch.from_numpy(np.ascontiguousarray(a).reshape((size,) + a.shape[2:]))
    o, a, lp, v = flat(obs), flat(acts), flat(logp), flat(vals)
    adv_t = torch.from_numpy(adv.reshape(size).astype(np.float32))
    ret_t = adv_t + v
    mb = max(1, size // config.n_minibatches)
    params = list(policy.parameters())
    info = {}
    for _ in range(config.n_epochs):
        order = rng.permutation(size)
        for start in range(0, size, mb):
            idx = torch.from_numpy(order[start:start + mb])
            loss, info = ppo_loss(policy, o[idx], a[idx], lp[idx], adv_t[idx], ret_t[idx], v[idx], config)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, config.max_grad_norm, foreach=True)
            opt.step()
    return {k: float(x.detach()) for k, x in info.items()}
# Seeds per block under batch_seeds = "auto" (issue 21): (max hidden, min seeds, block, measurement),
# first match wins, else 1. From benchmarks/bench_batched_ppo.py (CartPole-v1 defaults, one thread):
# 8 seeds in one process 4.2x one unbatched seed, 32 seeds 4.3x; so through `evalkit run` with 2
# workers, blocks of 8 are about 2x the unbatched runner from 8 seeds on (two blocks from 16 seeds).
# Not measured at other widths: no batching there.
AUTO_BLOCKS = (
    (64, 8, 8, "blocks of 8: 4.2x one unbatched seed per process (bench_batched_ppo), ~2x the 2-worker runner"),
)


def batch_block(config: dict, n_seeds: int) -> tuple[int, str]:
    """Seeds per block for ``batch_seeds = "auto"``: :data:`AUTO_BLOCKS` at the config's width."""
    return choose_block(AUTO_BLOCKS, int(config.get("hidden", Config.hidden)), n_seeds, NAME)


from agents.ppo_batched import train_batch  # noqa: E402,F401  (seed-batched PPO: several seeds, one process)
