"""DQN: deep Q-learning with experience replay and a target network (Mnih et al. 2015).

One environment, stepped by hand; a preallocated replay buffer; epsilon-greedy exploration with a
linear decay; a Huber (or MSE) TD loss minimised by Adam every ``train_frequency`` steps with
``gradient_steps`` updates; a target network updated by hard copies every
``target_update_interval`` steps (or Polyak averaging with ``tau < 1``).

Termination and truncation differ: the TD target bootstraps from the next state unless the episode
*terminated*; an episode cut by a time limit still bootstraps (Pardo et al. 2018). With ``n_step >
1`` the target is the n-step return of the sampled transition's successors in the buffer
(:func:`n_step_window`, Sutton 1988; Hessel et al. 2018), cut at the episode's end.

Speed (issue 4): at these network sizes a CPU step is dominated by per-call overhead, not
arithmetic, so the hot loop avoids ``nn.Module`` calls, autograd and ``torch.optim``'s Python
wrapper (:class:`FlatQ`, :class:`FlatAdam`): parameters live in one flat buffer, the MLP's
backward pass is written out, clipping is one norm and Adam one fused kernel call; acting is a
numpy matrix-vector product on views of the same memory. The math is that of the textbook step.
Training runs with denormal floats flushed to zero (:func:`flush_denormals`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from agents.common import (Evaluation, EpisodeLog, EvaluationClock, choose_block, hp, linear_schedule, make_env,
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
    n_step: int = hp(1, low=1, high=100, log=True, help="multi-step TD target length (Hessel et al. 2018; 1 = DQN)")


# Per-env defaults (issue 21, rl-zoo3 style): used for these gymnasium ids in place of the Config
# defaults above when a study does not set a key (study config > env defaults > Config defaults).
# ``Config``'s own defaults are rl-zoo3's CartPole-v1 setting, kept as the fallback for other envs;
# measured here (benchmarks/bench_vs_sb3.py) that setting is unstable at 50k steps in SB3 and in
# ours alike, so CartPole ships the setting tuned on seeds the benchmark does not use.
ENV_DEFAULTS: dict[str, dict] = {
    "CartPole-v1": dict(hidden=128, learning_rate=1e-3, anneal_lr=True, train_frequency=4, gradient_steps=2,
                        target_update_interval=500, exploration_fraction=0.1, exploration_final_eps=0.01),
    "Acrobot-v1": dict(hidden=128, batch_size=128, buffer_size=50_000, learning_rate=1e-3, anneal_lr=True,
                       train_frequency=4, gradient_steps=2, target_update_interval=250, exploration_fraction=0.12,
                       exploration_final_eps=0.01),
    "MountainCar-v0": dict(hidden=128, batch_size=128, buffer_size=10_000, learning_rate=2e-3, gamma=0.98,
                           anneal_lr=True, train_frequency=16, gradient_steps=8, target_update_interval=600,
                           exploration_fraction=0.12, exploration_final_eps=0.07, n_step=3),
    # rl-zoo3's LunarLander setting (gradient_steps -1 = train_freq), at gymnasium's v3 id, with the step
    # size annealed to 0: with it constant the greedy evaluations fell at the end (README, LunarLander)
    "LunarLander-v3": dict(hidden=256, learning_rate=6.3e-4, anneal_lr=True, batch_size=128, buffer_size=50_000,
                           learning_starts=0, target_update_interval=250, train_frequency=4, gradient_steps=4,
                           exploration_fraction=0.12, exploration_final_eps=0.1),
}
ENV_DEFAULTS_SOURCE = {
    "CartPole-v1": "tuned here (batched DQN, seeds 0-19); agents benchmark at 100k on held-out seeds",
    "Acrobot-v1": "rl-zoo3's Acrobot-v1 with 128 units and half the gradient steps; agents benchmark at 100k",
    "MountainCar-v0": "rl-zoo3's MountainCar-v0 with 128 units, lr 2e-3, 3-step targets; agents benchmark at 200k",
    "LunarLander-v3": "rl-zoo3's LunarLander setting, lr annealed to 0; studies/lunarlander.toml at 300k",
}


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero (``torch.set_flush_denormal``) inside the block; back to
    PyTorch's default (off) after it.

    Adam's second moment of rarely-active ReLU weights decays into the denormal range (below
    1.2e-38), where x86 arithmetic takes a slow microcode path: measured here, the fused Adam
    kernel on DQN's parameters ran 7-10x slower (1.3 ms instead of 0.14 ms per step for 32 seeds
    at width 64). Such values are far below Adam's ``eps`` (1e-8, compared with their square
    root), so flushing them does not change what is learned; it is done inside every DQN run, so
    a run's numbers never depend on who called it.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


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
              gamma: float | torch.Tensor, next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """``r + gamma * (1 - terminated) * max_a' Q_target(s', a')``: truncated transitions bootstrap.

    With ``next_q_online`` (double DQN) the target network evaluates the online network's argmax.
    For n-step targets ``rewards`` is the discounted reward sum and ``gamma`` the per-sample
    ``gamma ** m`` (:func:`n_step_window`).
    """
    if next_q_online is None:
        best = next_q_target.max(dim=-1).values
    else:
        best = next_q_target.gather(-1, next_q_online.argmax(dim=-1, keepdim=True)).squeeze(-1)
    return rewards + gamma * (1.0 - terminated) * best


def td_loss(q_taken: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    return F.smooth_l1_loss(q_taken, target) if kind == "huber" else F.mse_loss(q_taken, target)


# replay rows: [obs (n_obs), next_obs (n_obs), action, reward, terminated, episode ended]
ACTION, REWARD, TERMINATED, DONE = -4, -3, -2, -1


def n_step_window(window: torch.Tensor, available: torch.Tensor, gamma: float,
                  n_obs: int) -> tuple[torch.Tensor, ...]:
    """Multi-step targets' ingredients from the replay rows that follow each sampled transition.

    ``window`` ``(..., n, width)``: the rows at sampled index ``i`` and the ``n - 1`` after it
    (circularly); ``available`` ``(...)``: how many rows from ``i`` to the newest one exist. The
    window of ``i`` is the first ``m <= n`` rows that are available and do not go past the end of
    ``i``'s episode (a row whose ``done`` flag is set is its episode's last). Returns ``(rewards,
    next_obs, terminated, discount)``: ``sum_{k<m} gamma^k r_{i+k}``, the next observation and
    termination flag of row ``i+m-1``, and ``gamma ** m``. So an episode that terminated inside the
    window does not bootstrap; one that was truncated bootstraps from its final observation
    (Pardo et al. 2018); a window cut by the newest row bootstraps after ``m`` steps (a shorter
    multi-step target). ``n = 1`` gives the one-step DQN target. As in Rainbow, the rewards of
    the behaviour policy are used without off-policy correction.
    """
    n = window.shape[-2]
    k = torch.arange(n, device=window.device)
    done = window[..., DONE]
    # row k counts if every earlier row of the window continues the episode and it exists
    before = torch.cat([torch.zeros_like(done[..., :1]), done[..., :-1]], dim=-1).cumsum(-1)
    valid = (before == 0) & (k < available.unsqueeze(-1))
    m = valid.sum(-1)
    g = torch.tensor(gamma, dtype=window.dtype, device=window.device)
    rewards = (window[..., REWARD] * torch.pow(g, k.to(window.dtype)) * valid).sum(-1)
    last = window.take_along_dim((m - 1)[..., None, None], dim=-2).squeeze(-2)  # row i + m - 1
    discount = torch.pow(g, m.to(window.dtype))
    return rewards, last[..., n_obs:2 * n_obs], last[..., TERMINATED], discount


def window_indices(idx: np.ndarray, n_step: int, pos: int, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """For sampled indices ``idx`` of a circular buffer whose next write goes to ``pos``: the indices
    of each one's window ``idx, idx + 1, ..., idx + n_step - 1`` (circularly; shape ``idx.shape +
    (n_step,)``) and how many rows from ``idx`` to the newest one exist (shape ``idx.shape``)."""
    return (idx[..., None] + np.arange(n_step)) % capacity, (pos - 1 - idx) % capacity + 1


def unpack_rows(rows: torch.Tensor, n_obs: int, window: torch.Tensor | None = None,
                available: torch.Tensor | None = None, gamma: float = 0.99) -> tuple[torch.Tensor, ...]:
    """Replay rows ``(..., width)`` as ``(obs (..., n_obs), actions int64, rewards, next_obs,
    terminated)``; given each row's ``window`` and ``available`` rows (:func:`window_indices`),
    the n-step ``(obs, actions, rewards, next_obs, terminated, discount)`` (:func:`n_step_window`).
    Used by :class:`ReplayBuffer` and by the seed-batched agent's buffer (same row layout)."""
    obs, actions = rows[..., :n_obs], rows[..., ACTION].long()
    if window is None:
        return obs, actions, rows[..., REWARD], rows[..., n_obs:2 * n_obs], rows[..., TERMINATED]
    return (obs, actions) + n_step_window(window, available, gamma, n_obs)


class ReplayBuffer:
    """Preallocated circular buffer of transitions, one float32 row each: ``[obs, next_obs, action,
    reward, terminated, done]`` (actions are small integers, exact in float32; ``done`` marks an
    episode's last transition, terminated or truncated), so a minibatch -- or a whole training
    phase's minibatches -- is a single gather."""

    def __init__(self, capacity: int, n_obs: int) -> None:
        self.rows = np.zeros((capacity, 2 * n_obs + 4), np.float32)
        self.n_obs = n_obs
        self.capacity, self.size, self.pos = capacity, 0, 0

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool,
            done: bool | None = None) -> None:
        row, n = self.rows[self.pos], self.n_obs
        row[:n], row[n:2 * n] = obs, next_obs
        row[ACTION], row[REWARD], row[TERMINATED] = action, reward, terminated
        row[DONE] = terminated if done is None else done
        self.pos = self.pos + 1 if self.pos + 1 < self.capacity else 0
        if self.size < self.capacity:
            self.size += 1

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
        return self.gather(rng.integers(0, self.size, size=batch))

    def gather(self, idx: np.ndarray, n_step: int = 1, gamma: float = 0.99) -> tuple[torch.Tensor, ...]:
        """The transitions at ``idx`` (shape ``(N,)``, or ``(K, N)`` for K minibatches) as tensors
        (:func:`unpack_rows`); with ``n_step > 1`` n-step targets' ingredients (:func:`n_step_window`)."""
        rows = torch.from_numpy(self.rows[idx])
        if n_step == 1:
            return unpack_rows(rows, self.n_obs)
        ahead, available = window_indices(idx, n_step, self.pos, self.capacity)
        return unpack_rows(rows, self.n_obs, torch.from_numpy(self.rows[ahead]), torch.from_numpy(available), gamma)


def relu_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``grad * (out > 0)`` for ``out = relu(z)``: autograd's own ReLU backward kernel, one pass."""
    return torch.ops.aten.threshold_backward(grad, out, 0.0)


class FlatQ:
    """A :func:`q_network` whose parameters live in one contiguous buffer ``flat`` (with a gradient
    buffer ``flat.grad``), laid out as ``[W1, b1, W2, b2, W3, b3]``.

    The ``nn.Sequential`` ``net`` stays usable (``q(x)``, ``q.parameters()``: its parameters are
    views of ``flat``), but the training step bypasses ``nn.Module`` and autograd, whose per-call
    overhead dominates a step at these network sizes on a CPU: the forward pass is three ``addmm``;
    the backward pass of the two-hidden-layer MLP is written out (the products autograd would
    form); gradient clipping is one norm of ``flat.grad``; Adam steps ``flat`` as one tensor
    (:class:`FlatAdam`). Acting uses numpy views of the same memory (a matrix-vector product per
    layer, no tensor allocated per env step).
    """

    def __init__(self, net: nn.Sequential) -> None:
        self.net = net
        params = list(net.parameters())
        self.flat = torch.zeros(sum(p.numel() for p in params), dtype=torch.float32)
        self.flat.grad = torch.zeros_like(self.flat)
        self.views, self.grads, off = [], [], 0
        for p in params:
            k = p.numel()
            view = self.flat[off:off + k].view(p.shape)
            view.copy_(p.detach())
            p.data = view  # the module now reads (and tests inspect) the flat buffer
            self.views.append(view)
            self.grads.append(self.flat.grad[off:off + k].view(p.shape))
            off += k
        w1, b1, w2, b2, w3, b3 = self.views
        self.layers = ((w1.t(), b1), (w2.t(), b2), (w3.t(), b3))  # (in, out) views for addmm
        self.np_views = [v.numpy() for v in self.views]  # share memory: see every optimizer step

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def parameters(self):
        return self.net.parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (w1, b1), (w2, b2), (w3, b3) = self.layers
        h = torch.addmm(b1, x, w1).relu_()
        h = torch.addmm(b2, h, w2).relu_()
        return torch.addmm(b3, h, w3)

    def act(self, obs: np.ndarray) -> int:
        """Greedy action index of one float32 observation (numpy, no autograd, no tensor)."""
        w1, b1, w2, b2, w3, b3 = self.np_views
        h = w1 @ obs
        h += b1
        np.maximum(h, 0.0, out=h)
        h2 = w2 @ h
        h2 += b2
        np.maximum(h2, 0.0, out=h2)
        q = w3 @ h2
        q += b3
        return int(q.argmax())

    def backward(self, x: torch.Tensor, actions: torch.Tensor, target: torch.Tensor,
                 kind: str, want_loss: bool = True) -> torch.Tensor | None:
        """Forward pass on ``x``, the mean TD loss of the taken actions against ``target``, and its
        gradient written into ``flat.grad``; returns the loss (None unless ``want_loss``)."""
        (w1t, b1), (w2t, b2), (w3t, b3) = self.layers
        _, _, w2, _, w3, _ = self.views
        gw1, gb1, gw2, gb2, gw3, gb3 = self.grads
        h1 = torch.addmm(b1, x, w1t).relu_()
        h2 = torch.addmm(b2, h1, w2t).relu_()
        q = torch.addmm(b3, h2, w3t)
        a = actions.unsqueeze(1)
        q_taken = q.gather(1, a).squeeze(1)
        diff = q_taken - target
        loss = td_loss(q_taken, target, kind) if want_loss else None
        if kind == "huber":  # smooth_l1 with beta 1: d loss / d q = clamp(diff, -1, 1) / n
            g = diff.clamp_(-1.0, 1.0).mul_(1.0 / diff.shape[0])
        else:
            g = diff.mul_(2.0 / diff.shape[0])
        dq = torch.zeros_like(q).scatter_(1, a, g.unsqueeze(1))
        torch.mm(dq.t(), h2, out=gw3)
        torch.sum(dq, 0, out=gb3)
        dh = relu_backward(torch.mm(dq, w3), h2)
        torch.mm(dh.t(), h1, out=gw2)
        torch.sum(dh, 0, out=gb2)
        dh = relu_backward(torch.mm(dh, w2), h1)
        torch.mm(dh.t(), x, out=gw1)
        torch.sum(dh, 0, out=gb1)
        return loss


class FlatAdam:
    """``torch.optim.Adam(fused=True)`` (default betas and eps) for one flat parameter tensor with
    its ``.grad``, calling the fused kernel directly: the same update, without the optimizer's
    per-step Python overhead (which costs more than the kernel here). ``param_groups[0]["lr"]`` can
    be set as on a torch optimizer. Falls back to ``torch.optim.Adam`` where the kernel is missing.
    """

    def __init__(self, flat: torch.Tensor, lr: float) -> None:
        if flat.grad is None:  # else the kernel check below fails and every step takes the slow path
            raise ValueError("FlatAdam: give the parameter buffer its .grad before the optimizer")
        self.param_groups = [{"lr": lr}]
        self.flat = flat
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.step_t = torch.zeros((), dtype=torch.float32, device=flat.device)
        self._torch = None
        try:
            self._kernel(0.0)  # lr 0: checks the kernel exists here; then undo its state change
            self.exp_avg.zero_(), self.exp_avg_sq.zero_(), self.step_t.zero_()
        except (AttributeError, RuntimeError, TypeError, NotImplementedError):
            try:
                self._torch = torch.optim.Adam([flat], lr=lr, fused=True)
            except (RuntimeError, ValueError):
                self._torch = torch.optim.Adam([flat], lr=lr)
            self.param_groups = self._torch.param_groups

    def _kernel(self, lr: float) -> None:
        self.step_t.add_(1)
        torch._fused_adam_([self.flat], [self.flat.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_t],
                           amsgrad=False, lr=lr, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           maximize=False, grad_scale=None, found_inf=None)

    def step(self) -> None:
        if self._torch is not None:
            self._torch.step()
        else:
            self._kernel(float(self.param_groups[0]["lr"]))


def update(q: FlatQ, target: FlatQ, opt: FlatAdam, batch: tuple[torch.Tensor, ...],
           config: Config, want_loss: bool = True) -> torch.Tensor | None:
    """One gradient step on a sampled batch ``(obs, actions, rewards, next_obs, terminated[,
    discount])`` (the discount ``gamma ** m`` per sample for n-step targets, else ``gamma``);
    returns the loss (a 0-dim tensor; None unless ``want_loss``: only the last step of a training
    phase is logged).

    The mean Huber (or MSE) TD loss, its gradient, ``clip_grad_norm_(max_grad_norm)`` over all
    parameters and an Adam step: the step ``nn.Module`` + autograd + ``torch.optim.Adam`` take,
    in fewer operations.
    """
    obs, actions, rewards, next_obs, terminated, *discount = batch
    with torch.no_grad():
        online = q.forward(next_obs) if config.double_q else None
        gamma = discount[0] if discount else config.gamma
        y = td_target(rewards, target.forward(next_obs), terminated, gamma, online)
        loss = q.backward(obs, actions, y, config.loss, want_loss)
        g = q.flat.grad
        norm = float(torch.linalg.vector_norm(g))  # clip_grad_norm_'s total norm over all parameters
        coef = config.max_grad_norm / (norm + 1e-6)
        if coef < 1.0:
            g.mul_(coef)
    opt.step()
    return loss


def sync_target(q, target, tau: float) -> None:
    """Hard copy (``tau >= 1``) or Polyak averaging of ``q``'s parameters into ``target``'s."""
    with torch.no_grad():
        if isinstance(q, FlatQ) and isinstance(target, FlatQ):
            pairs = [(q.flat, target.flat)]
        else:
            pairs = zip(q.parameters(), target.parameters())
        for p, tp in pairs:
            if tau >= 1.0:
                tp.copy_(p)
            else:
                tp.mul_(1.0 - tau).add_(p, alpha=tau)


def train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, *,
          env_kwargs: dict | None = None, evaluation: Evaluation | None = None) -> None:
    """Train for exactly ``steps`` env steps, logging every finished episode (with loss and epsilon)."""
    with flush_denormals():
        _train(env_id, config, seed, steps, log, env_kwargs, evaluation)


def _train(env_id: str, config: Config, seed: int, steps: int, log: EpisodeLog, env_kwargs: dict | None,
           evaluation: Evaluation | None) -> None:
    rng = np.random.default_rng(seed)
    env = make_env(env_id, env_kwargs)
    if not isinstance(env.action_space, spaces.Discrete):
        raise ValueError(f"dqn: needs a Discrete action space, {env_id} has {env.action_space!r}")
    env.action_space.seed(seed)
    n_obs = int(np.prod(env.observation_space.shape))
    n_act, a0 = int(env.action_space.n), int(env.action_space.start)
    gen = torch.Generator().manual_seed(torch_generator_seed(rng))
    q = FlatQ(q_network(n_obs, n_act, config.hidden, gen))
    target = FlatQ(q_network(n_obs, n_act, config.hidden, gen))
    sync_target(q, target, 1.0)
    opt = FlatAdam(q.flat, config.learning_rate)
    buffer = ReplayBuffer(min(config.buffer_size, max(steps, 1)), n_obs)
    clock = EvaluationClock(evaluation)
    decay = int(config.exploration_fraction * steps)
    eps0, eps1 = config.exploration_initial_eps, config.exploration_final_eps
    g_steps, n_batch = config.gradient_steps, config.batch_size

    def greedy(o: np.ndarray) -> int:
        return a0 + q.act(np.asarray(o, np.float32).ravel())

    obs = np.asarray(env.reset(seed=seed)[0], np.float32).ravel()
    ep_ret, ep_len, loss, eps = 0.0, 0, None, eps0
    for t in range(1, steps + 1):
        eps = linear_schedule(eps0, eps1, decay, t - 1)
        action = int(rng.integers(n_act)) if rng.random() < eps else q.act(obs)
        next_obs, r, term, trunc, _ = env.step(a0 + action)
        next_obs = np.asarray(next_obs, np.float32).ravel()
        buffer.add(obs, action, r, next_obs, term, term or trunc)
        ep_ret += float(r)
        ep_len += 1
        obs = next_obs
        if term or trunc:
            extras = {"epsilon": eps} if loss is None else {"epsilon": eps, "loss": float(loss)}
            log.episode(t, ep_ret, ep_len, **extras)
            obs = np.asarray(env.reset()[0], np.float32).ravel()
            ep_ret, ep_len = 0.0, 0
        if t > config.learning_starts:
            if t % config.train_frequency == 0:
                if config.anneal_lr:
                    opt.param_groups[0]["lr"] = config.learning_rate * (1.0 - (t - 1) / steps)
                # one draw of shape (gradient_steps, batch): the same numbers as gradient_steps draws
                phase = buffer.gather(rng.integers(0, buffer.size, size=(g_steps, n_batch)), config.n_step,
                                      config.gamma)
                for k in range(g_steps):  # the phase's last step returns the loss that is logged
                    loss = update(q, target, opt, tuple(x[k] for x in phase), config, want_loss=k == g_steps - 1)
            if t % config.target_update_interval == 0:
                sync_target(q, target, config.tau)
        if clock.next_step <= t:
            clock.run(t, greedy, env_id, env_kwargs, log)
    env.close()


# Seeds per block under batch_seeds = "auto" (issue 21): (max hidden, min seeds, block, measurement),
# first match wins, else 1. Measured at DQN's CartPole-v1 defaults but for the width with
# benchmarks/bench_batched_interleaved.py: per-process rate over one unbatched process (2026-12-02,
# load 10-17 on 2 cores). Width 64: B=8 1.92x, B=16 3.86x, B=32 4.39x (bench_batched.py through
# `evalkit run`, issue 9: 2 blocks of 8 2.2x, of 32 3.9x the runner). Width 128 (the CartPole
# default): B=4 0.91x, B=8 1.54x, B=32 2.59x. With 2 workers a
# block of B pays only from 2B seeds on (two blocks at once), a single block needs > 2x. No row
# above 128: at 256 batching measured 0.7x through `evalkit run` (32 seeds in blocks of 8, issue
# 21) and 1.1-1.7x in bench_batched (issue 9), not reliably faster, so those runs stay unbatched.
AUTO_BLOCKS = (
    (64, 64, 32, "blocks of 32: 4.4x an unbatched process (bench_batched_interleaved, width 64)"),
    (64, 32, 16, "blocks of 16: 3.9x an unbatched process (bench_batched_interleaved, width 64)"),
    (64, 16, 8, "blocks of 8: 1.9x an unbatched process (bench_batched_interleaved, width 64)"),
    (128, 64, 32, "blocks of 32: 2.6x an unbatched process (bench_batched_interleaved, width 128)"),
    (128, 16, 8, "blocks of 8: 1.5x an unbatched process (bench_batched_interleaved, width 128)"),
)


def batch_block(config: dict, n_seeds: int) -> tuple[int, str]:
    """Seeds per block for ``batch_seeds = "auto"``: :data:`AUTO_BLOCKS` at the config's width."""
    return choose_block(AUTO_BLOCKS, int(config.get("hidden", Config.hidden)), n_seeds, NAME)


def train_batch(env_id: str, config: Config, seeds: list[int], steps: int, logs: list[EpisodeLog], **kwargs) -> None:
    """Seed-batched DQN: several seeds in one process (:func:`agents.dqn_batched.train_batch`).

    Imported on call, so either module can be imported first."""
    from agents.dqn_batched import train_batch as batched
    batched(env_id, config, seeds, steps, logs, **kwargs)
