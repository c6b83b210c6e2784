"""Seed-batched DQN (issue 9): the seeds of one setting trained together in one process.

Every seed is still its own run, with the math of :mod:`agents.dqn` written out over a leading
seed axis ``B``:

* **initialisation** -- seed ``s`` gets ``rng = np.random.default_rng(s)`` and
  ``torch.Generator().manual_seed(torch_generator_seed(rng))``, and its online and target
  networks are drawn from that generator in the same order and with the same calls as
  :func:`agents.dqn.q_network` (kaiming-uniform weights, uniform biases); the per-seed tensors
  are then stacked, so layer ``k`` is a weight ``(B, out, in)`` and a bias ``(B, out)``;
* **networks** -- one ``torch.baddbmm`` per layer evaluates all ``B`` Q-networks at once
  (``x_b @ W_b^T + b_b`` for every seed ``b``: nothing mixes seeds);
* **loss** -- the Huber/MSE TD loss is a mean over each seed's own minibatch; the batch loss is
  the *sum* of the per-seed losses, so seed ``b``'s gradient is exactly the gradient of its own
  loss;
* **gradient clipping** -- per seed: each seed's global norm over its own parameters, with
  ``clip_grad_norm_``'s formula ``g * min(max_norm / (norm + 1e-6), 1)``;
* **Adam** -- ``torch.optim.Adam``'s fused kernel on the stacked parameters (through
  :class:`agents.dqn.FlatAdam`, as the unbatched agent) is per-seed exact: its moments and
  update are elementwise and all seeds take their steps at the same env steps (same step
  count, same bias correction, same learning rate);
* **replay** -- per-seed buffers ``(B, capacity, ...)``; seed ``b``'s minibatch indices come
  from seed ``b``'s own ``rng`` (one ``integers`` call of shape ``(gradient_steps, batch)`` per
  training phase, which yields the same numbers as the unbatched agent's ``gradient_steps``
  calls of shape ``(batch,)``: a Generator fills arrays from its stream in C order);
* **exploration** -- seed ``b``'s epsilon-greedy coin and random action come from its ``rng``,
  called exactly as the unbatched agent calls it, so the random stream is consumed in the same
  order (coin, maybe action, ..., minibatch indices at training phases);
* **environments** -- :func:`agents.vector_envs.make_vector` (copy ``b`` seeded with seed ``b``,
  bit-identical to ``gym.make(id).reset(seed=s)`` then ``reset()``) for CartPole, Acrobot and
  MountainCar, otherwise ``B`` gymnasium envs stepped in a loop;
* **logging** -- each seed's episodes go to its own log at that seed's env step count (all
  seeds step in lockstep, so step ``t`` of the batch is step ``t`` of every seed), evaluation
  rounds through one :class:`EvaluationClock` per seed.

So a seed's trajectory does not depend on which other seeds share its batch, and a batch of
one follows :func:`agents.dqn.train` to float tolerance. Replay memory is checked before
anything is allocated (:func:`memory_needed_mb`, ``max_memory_mb``).
"""

from __future__ import annotations

import math
import resource
from typing import Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from agents import vector_envs
from agents._stacked import Stacked, clip_grad_norm_per_seed
from agents.common import (Evaluation, EpisodeLog, EvaluationClock, linear_schedule, make_env,
                           torch_generator_seed)
from agents.dqn import (ACTION, DONE, REWARD, TERMINATED, Config, FlatAdam, flush_denormals, relu_backward,
                        td_target, unpack_rows, window_indices)

NAME = "dqn"
__all__ = ["Config", "train_batch", "init_params", "q_values", "memory_needed_mb"]

Params = Stacked


# ---------------------------------------------------------------------------------------- networks
def _linear_init(n_in: int, n_out: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer as :func:`agents.dqn.q_network` draws it (same calls, same generator order)."""
    w = torch.empty(n_out, n_in)
    b = torch.empty(n_out)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
    bound = 1 / math.sqrt(n_in)
    nn.init.uniform_(b, -bound, bound, generator=gen)
    return w, b


def _network_init(n_in: int, n_out: int, hidden: int, gen: torch.Generator) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for a, b in ((n_in, hidden), (hidden, hidden), (hidden, n_out)):
        out.extend(_linear_init(a, b, gen))
    return out


def init_params(n_in: int, n_out: int, hidden: int, rngs: Sequence[np.random.Generator]) -> tuple[Params, Params]:
    """Stacked online and target parameters ``[W1, b1, W2, b2, W3, b3]`` (``W1``, ``W2`` as ``(B, in,
    out)``, the transpose of ``nn.Linear.weight``; the thin output layer ``W3`` as ``(B, out, in)``,
    ``nn.Linear``'s layout, see :func:`q_values`), seed ``b`` initialised from ``rngs[b]`` as the
    unbatched agent does (a torch generator seeded from the run's rng; online net, then target
    net drawn from it; the target is then overwritten by a copy of the online net)."""
    online, target = [], []
    for rng in rngs:
        gen = torch.Generator().manual_seed(torch_generator_seed(rng))
        online.append(_network_init(n_in, n_out, hidden, gen))
        target.append(_network_init(n_in, n_out, hidden, gen))  # drawn (as dqn.train does), then synced
    q = Stacked([torch.stack([p[k].T if k in (0, 2) else p[k] for p in online]) for k in range(6)])
    return q, q.clone()


def q_values(params: Params, x: torch.Tensor) -> torch.Tensor:
    """All seeds' Q-values: ``x`` ``(B, N, n_in)`` -> ``(B, N, n_out)``, seed ``b`` through its own net.

    The output layer is computed transposed, ``Q^T = W3 h^T + b3`` (``(B, n_out, N)``, returned as a
    transposed view): with only ``n_out`` (2-3) output columns, a batched product with the thin
    side as rows runs several times faster on a CPU than ``h @ W3^T``."""
    w1, b1, w2, b2, w3, b3 = params.tensors()
    h = torch.baddbmm(b1.unsqueeze(1), x, w1).relu_()
    h = torch.baddbmm(b2.unsqueeze(1), h, w2).relu_()
    return torch.baddbmm(b3.unsqueeze(2), w3, h.transpose(1, 2)).transpose(1, 2)


def seed_q_network(params: Params, b: int) -> nn.Sequential:
    """Seed ``b``'s online network as an :class:`nn.Sequential` like :func:`agents.dqn.q_network`
    (a copy; used by tests to compare with the unbatched agent)."""
    w1, b1, w2, b2, w3, b3 = (p[b].detach().cpu() for p in params.tensors())
    w1, w2 = w1.T, w2.T
    net = nn.Sequential(nn.Linear(w1.shape[1], w1.shape[0], device="meta"), nn.ReLU(),
                        nn.Linear(w2.shape[1], w2.shape[0], device="meta"), nn.ReLU(),
                        nn.Linear(w3.shape[1], w3.shape[0], device="meta")).to_empty(device="cpu")  # no RNG draws
    with torch.no_grad():
        for layer, (w, bias) in zip(net[::2], ((w1, b1), (w2, b2), (w3, b3))):
            layer.weight.copy_(w)
            layer.bias.copy_(bias)
    return net


# ------------------------------------------------------------------------------------------ update
def per_seed_td_loss(q_taken: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``(B,)``: each seed's mean Huber/MSE loss over its own minibatch (``(B, N)`` inputs)."""
    if kind == "huber":
        return F.smooth_l1_loss(q_taken, target, reduction="none").mean(dim=1)
    return F.mse_loss(q_taken, target, reduction="none").mean(dim=1)


def backward(params: Params, x: torch.Tensor, actions: torch.Tensor, target: torch.Tensor,
             kind: str, want_loss: bool = True) -> torch.Tensor | None:
    """Every seed's forward pass on its minibatch ``x`` ``(B, N, n_in)``, its mean TD loss of the
    taken ``actions`` ``(B, N)`` against ``target`` ``(B, N)``, and the gradient of that loss with
    respect to its own parameters, written into ``params.flat.grad``; returns the ``(B,)`` losses
    (None unless ``want_loss``).

    The backward pass of :func:`q_values` written out with ``bmm`` (the products autograd forms,
    as :meth:`agents.dqn.FlatQ.backward` for one seed): autograd's per-operation overhead costs
    more than the arithmetic at these sizes. Seed ``b``'s gradient is that of its own loss alone.
    """
    w1, b1, w2, b2, w3, b3 = params.tensors()
    gw1, gb1, gw2, gb2, gw3, gb3 = params.grads()
    h1 = torch.baddbmm(b1.unsqueeze(1), x, w1).relu_()
    h2 = torch.baddbmm(b2.unsqueeze(1), h1, w2).relu_()
    q = torch.baddbmm(b3.unsqueeze(2), w3, h2.transpose(1, 2)).transpose(1, 2)
    a = actions.unsqueeze(2)
    q_taken = q.gather(2, a).squeeze(2)
    losses = per_seed_td_loss(q_taken, target, kind) if want_loss else None
    diff = q_taken.sub_(target)
    n = diff.shape[1]
    g = diff.clamp_(-1.0, 1.0).mul_(1.0 / n) if kind == "huber" else diff.mul_(2.0 / n)
    dq = torch.zeros_like(q).scatter_(2, a, g.unsqueeze(2))
    # weight gradients are computed contiguous, then copied: a bmm whose output is a strided view
    # of flat.grad falls back from MKL's batched GEMM to a loop over seeds (measured 1.5x slower)
    gw3.copy_(torch.bmm(dq.transpose(1, 2), h2))
    torch.sum(dq, 1, out=gb3)
    dh = relu_backward(torch.bmm(dq, w3), h2)
    gw2.copy_(torch.bmm(h1.transpose(1, 2), dh))
    torch.sum(dh, 1, out=gb2)
    dh = relu_backward(torch.bmm(dh, w2.transpose(1, 2)), h1)
    gw1.copy_(torch.bmm(x.transpose(1, 2), dh))
    torch.sum(dh, 1, out=gb1)
    return losses


#: floats of one activation tensor ``(seeds, batch_size, hidden)`` per block of seeds in an update
#: (1 MiB): blocks whose activations stay in a core's L2 cache. Measured at width 64, minibatch 64:
#: 128 seeds in blocks of 64 update 1.5-1.8x faster than as one block (same numbers, bitwise).
BLOCK_FLOATS = 2**18


def seed_blocks(n_seeds: int, batch_size: int, hidden: int, block_floats: int = BLOCK_FLOATS) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the seeds of an update in consecutive blocks of at most
    ``block_floats // (batch_size * hidden)`` seeds (at least one)."""
    per = max(1, block_floats // max(1, batch_size * hidden))
    return [(a, min(a + per, n_seeds)) for a in range(0, n_seeds, per)]


def update(params: Params, target: Params, opt: FlatAdam, batch: tuple[torch.Tensor, ...],
           config: Config, want_loss: bool = True, block_floats: int = BLOCK_FLOATS) -> torch.Tensor | None:
    """One gradient step for every seed on its own minibatch; returns the ``(B,)`` losses (None
    unless ``want_loss``: only a training phase's last step is logged).

    ``batch`` is ``(obs (B, N, n_obs), actions (B, N) int64, rewards (B, N), next_obs, terminated
    (B, N)[, discount (B, N)])`` (the discount for n-step targets); per seed: TD target, gradient
    (:func:`backward`), ``clip_grad_norm_`` and Adam. The targets and gradients are computed in
    blocks of seeds (:func:`seed_blocks`, cache-sized); a seed's numbers do not depend on the blocks."""
    obs, actions, rewards, next_obs, terminated, *discount = batch
    losses = []
    params.grads()  # the whole batch's gradient buffer, shared by the blocks
    with torch.no_grad():
        for a, b in seed_blocks(actions.shape[0], actions.shape[1], config.hidden, block_floats):
            p, t = params.rows(a, b), target.rows(a, b)
            online = q_values(p, next_obs[a:b]) if config.double_q else None
            gamma = discount[0][a:b] if discount else config.gamma
            y = td_target(rewards[a:b], q_values(t, next_obs[a:b]), terminated[a:b], gamma, online)
            losses.append(backward(p, obs[a:b], actions[a:b], y, config.loss, want_loss))
        clip_grad_norm_per_seed(params, config.max_grad_norm)
    opt.step()
    return torch.cat(losses) if want_loss else None


def _adam(params: Params, lr: float) -> FlatAdam:
    """Adam with the unbatched agent's settings on the stacked parameters: :class:`agents.dqn.FlatAdam`
    (``torch.optim.Adam``'s fused kernel called directly on ``flat``: the same elementwise update in
    one pass over memory, without the optimizer's per-step Python overhead)."""
    params.grads()  # the kernel steps flat with flat.grad: create it (zero) first
    return FlatAdam(params.flat, lr)


def sync_target(params: Params, target: Params, tau: float) -> None:
    with torch.no_grad():
        if tau >= 1.0:
            target.flat.copy_(params.flat)
        else:
            target.flat.mul_(1.0 - tau).add_(params.flat, alpha=tau)


# ------------------------------------------------------------------------------------------ memory
def memory_needed_mb(n_seeds: int, capacity: int, n_obs: int, n_act: int, hidden: int) -> float:
    """MiB for a batch's replay buffers (obs, next_obs, action, reward, terminated: float32 per transition)
    plus its networks (online, target, gradient and two Adam moments)."""
    replay = n_seeds * capacity * (2 * n_obs + 4) * 4
    n_params = n_obs * hidden + hidden + hidden * hidden + hidden + hidden * n_act + n_act
    nets = n_seeds * n_params * 4 * 5
    return (replay + nets) / 2**20


def available_memory_mb() -> float:
    """What this process may still allocate: the smaller of MemAvailable and the RLIMIT_AS headroom."""
    avail = math.inf
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) / 1024
    except OSError:
        pass
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * resource.getpagesize()
        avail = min(avail, (soft - used) / 2**20)
    return avail


def check_memory(n_seeds: int, capacity: int, n_obs: int, n_act: int, hidden: int,
                 max_memory_mb: float | None) -> None:
    """Raise ``ValueError`` (before allocating anything) when the batch would not fit."""
    need = memory_needed_mb(n_seeds, capacity, n_obs, n_act, hidden)
    limit = max_memory_mb if max_memory_mb is not None else 0.8 * available_memory_mb()
    if need > limit:
        per_seed = need / n_seeds
        fit = int(limit // per_seed) if per_seed > 0 else 0
        raise ValueError(
            f"dqn batch of {n_seeds} seeds needs {need:.0f} MiB (replay buffers of {capacity} transitions "
            f"per seed + networks, {per_seed:.1f} MiB per seed) but only {limit:.0f} MiB are allowed; "
            f"use at most {fit} seeds per batch (batch_seeds) or a smaller buffer_size")


# ------------------------------------------------------------------------------------ environments
class _GymEnvs:
    """``B`` gymnasium envs behind :class:`agents.vector_envs.VectorEnv`'s interface (fallback for
    ids without a numpy implementation): same-step reset, ``final_obs`` of ended episodes."""

    def __init__(self, env_id: str, env_kwargs: dict | None, seeds: Sequence[int]) -> None:
        self.envs = [make_env(env_id, env_kwargs) for _ in seeds]
        self.seeds = list(seeds)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.a0 = int(getattr(self.action_space, "start", 0))

    def _o(self, o) -> np.ndarray:
        return np.asarray(o, np.float32).ravel()

    def reset(self) -> np.ndarray:
        return np.stack([self._o(e.reset(seed=s)[0]) for e, s in zip(self.envs, self.seeds)])

    def step(self, actions: np.ndarray):
        n = len(self.envs)
        obs, final = [], []
        rew = np.zeros(n)
        term, trunc = np.zeros(n, bool), np.zeros(n, bool)
        for i, e in enumerate(self.envs):
            o, r, te, tr, _ = e.step(self.a0 + int(actions[i]))
            o = self._o(o)
            rew[i], term[i], trunc[i] = float(r), te, tr
            final.append(o)
            obs.append(self._o(e.reset()[0]) if te or tr else o)
        return np.stack(obs), rew, term, trunc, np.stack(final)

    def close(self) -> None:
        for e in self.envs:
            e.close()


def _vector_kwargs(env_id: str, env_kwargs: dict | None) -> dict | None:
    """kwargs for :func:`vector_envs.make_vector` when the numpy env reproduces
    ``gym.make(env_id, **env_kwargs)``, else None."""
    kw = dict(env_kwargs or {})
    if not vector_envs.supported(env_id) or set(kw) - {"max_episode_steps"}:
        return None
    return {"max_episode_steps": kw.get("max_episode_steps")}


def make_envs(env_id: str, env_kwargs: dict | None, seeds: Sequence[int]):
    """The batch's training envs: the numpy vector env when it exists, else gymnasium envs."""
    kw = _vector_kwargs(env_id, env_kwargs)
    if kw is not None:
        return vector_envs.make_vector(env_id, seeds, **kw)
    return _GymEnvs(env_id, env_kwargs, seeds)


def _evaluate_batched(params: Params, env_id: str, kw: dict, eval_seeds: Sequence[int], episodes: int,
                      device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Greedy evaluation of every seed's network at once: copy ``(b, i)`` of a numpy vector env is
    reset with ``eval_seeds[b] + i`` (gymnasium's ``reset(seed=...)``) and run to the end of its
    first episode, as :func:`agents.common.evaluate_policy` does. Returns ``(B, episodes)`` arrays."""
    B = len(eval_seeds)
    env = vector_envs.make_vector(env_id, [s + i for s in eval_seeds for i in range(episodes)], **kw)
    obs = env.reset()
    ret = np.zeros(B * episodes)
    length = np.zeros(B * episodes, np.int64)
    live = np.ones(B * episodes, bool)
    while live.any():
        with torch.inference_mode():
            x = torch.from_numpy(obs).to(device).view(B, episodes, -1)
            acts = q_values(params, x).argmax(dim=2).reshape(-1).cpu().numpy()
        obs, r, term, trunc, _ = env.step(acts)
        ret += np.where(live, r, 0.0)
        length += live
        live &= ~(term | trunc)
    return ret.reshape(B, episodes), length.reshape(B, episodes)


# -------------------------------------------------------------------------------------------- train
def train_batch(env_id: str, config: Config, seeds: list[int], steps: int, logs: list[EpisodeLog], *,
                env_kwargs: dict | None = None, evaluation: list[Evaluation] | None = None,
                max_memory_mb: float | None = None, device: str | torch.device = "cpu") -> None:
    """Train one DQN run per seed for exactly ``steps`` env steps each, all seeds in one batched
    computation; ``logs[b]`` receives seed ``b``'s episodes and ``evaluation[b]``'s rounds.

    ``max_memory_mb`` bounds the batch's replay buffers and networks (default: 80% of what the
    process may still allocate); a batch that does not fit raises ``ValueError`` before allocation.
    """
    with flush_denormals():
        _train_batch(env_id, config, [int(s) for s in seeds], steps, logs, env_kwargs, evaluation,
                     max_memory_mb, torch.device(device))


def _train_batch(env_id: str, config: Config, seeds: list[int], steps: int, logs: list[EpisodeLog],
                 env_kwargs: dict | None, evaluation: list[Evaluation] | None, max_memory_mb: float | None,
                 device: torch.device) -> None:
    B = len(seeds)
    if B == 0:
        return
    if len(logs) != B or (evaluation is not None and len(evaluation) != B):
        raise ValueError("dqn.train_batch: need one log (and one evaluation, if any) per seed")
    rngs = [np.random.default_rng(s) for s in seeds]
    probe = make_env(env_id, env_kwargs)
    try:
        if not isinstance(probe.action_space, spaces.Discrete):
            raise ValueError(f"dqn: needs a Discrete action space, {env_id} has {probe.action_space!r}")
        n_obs = int(np.prod(probe.observation_space.shape))
        n_act, a0 = int(probe.action_space.n), int(probe.action_space.start)
    finally:
        probe.close()
    capacity = min(config.buffer_size, max(steps, 1))
    check_memory(B, capacity, n_obs, n_act, config.hidden, max_memory_mb)

    envs = make_envs(env_id, env_kwargs, seeds)
    params, target = init_params(n_obs, n_act, config.hidden, rngs)
    params = params.to(device)
    target = target.to(device)
    opt = _adam(params, config.learning_rate)
    # one replay row per transition, agents.dqn.ReplayBuffer's layout: [obs, next_obs, action,
    # reward, terminated, done] (float32; actions are small integers, exact), so a minibatch is one gather
    width = 2 * n_obs + 4
    buf = torch.zeros((B, capacity, width), dtype=torch.float32, device=device)
    row = np.zeros((B, width), np.float32)
    size, pos = 0, 0
    clocks = [EvaluationClock(e) for e in evaluation] if evaluation is not None else None
    eval_kw = _vector_kwargs(env_id, env_kwargs)
    decay = int(config.exploration_fraction * steps)
    seed_rows = torch.arange(B, device=device).view(1, B, 1)

    obs = np.asarray(envs.reset(), np.float32).reshape(B, n_obs)
    ep_ret = np.zeros(B)
    ep_len = np.zeros(B, np.int64)
    losses: np.ndarray | None = None
    actions = np.zeros(B, np.int64)
    for t in range(1, steps + 1):
        eps = linear_schedule(config.exploration_initial_eps, config.exploration_final_eps, decay, t - 1)
        greedy = None
        for b, rng in enumerate(rngs):  # each seed's coin (and random action) from its own stream
            if rng.random() < eps:
                actions[b] = rng.integers(n_act)
            else:
                if greedy is None:
                    with torch.inference_mode():
                        x = torch.from_numpy(obs).to(device).unsqueeze(1)
                        greedy = q_values(params, x).argmax(dim=2).squeeze(1).cpu().numpy()
                actions[b] = greedy[b]
        next_obs, r, term, trunc, final = envs.step(actions)
        next_obs = np.asarray(next_obs, np.float32).reshape(B, n_obs)
        row[:, :n_obs] = obs
        row[:, n_obs:2 * n_obs] = np.asarray(final, np.float32).reshape(B, n_obs)
        row[:, ACTION], row[:, REWARD], row[:, TERMINATED], row[:, DONE] = actions, r, term, np.asarray(term) | trunc
        buf[:, pos] = torch.from_numpy(row).to(device)
        pos = (pos + 1) % capacity
        size = min(size + 1, capacity)
        ep_ret += r
        ep_len += 1
        obs = next_obs
        done = np.flatnonzero(np.asarray(term) | np.asarray(trunc))
        for b in done:
            extras = {"epsilon": eps} if losses is None else {"epsilon": eps, "loss": float(losses[b])}
            logs[b].episode(t, float(ep_ret[b]), int(ep_len[b]), **extras)
            ep_ret[b], ep_len[b] = 0.0, 0
        if t > config.learning_starts:
            if t % config.train_frequency == 0:
                if config.anneal_lr:
                    opt.param_groups[0]["lr"] = config.learning_rate * (1.0 - (t - 1) / steps)
                g, n = config.gradient_steps, config.batch_size
                # each seed's indices from its own rng, as the unbatched agent draws them; then the
                # whole phase's minibatches in one gather, laid out (gradient step, seed, sample)
                idx = np.stack([rng.integers(0, size, size=(g, n)) for rng in rngs], axis=1)
                phase = buf[seed_rows, torch.from_numpy(idx).to(device)]
                if config.n_step == 1:
                    parts = unpack_rows(phase, n_obs)
                else:  # each sample's successors, as agents.dqn.ReplayBuffer.gather takes them
                    ahead, available = window_indices(idx, config.n_step, pos, capacity)
                    window = buf[seed_rows.unsqueeze(-1), torch.from_numpy(ahead).to(device)]
                    parts = unpack_rows(phase, n_obs, window, torch.from_numpy(available).to(device), config.gamma)
                for k in range(g):
                    batch = tuple(x[k] for x in parts)
                    last = update(params, target, opt, batch, config, want_loss=k == g - 1)
                losses = last.cpu().numpy()
            if t % config.target_update_interval == 0:
                sync_target(params, target, config.tau)
        if clocks is not None and clocks[0].due(t):
            _run_evaluations(clocks, t, params, env_id, env_kwargs, eval_kw, logs, a0, device)
    envs.close()


def _run_evaluations(clocks: list[EvaluationClock], t: int, params: Params, env_id: str, env_kwargs: dict | None,
                     eval_kw: dict | None, logs: list[EpisodeLog], a0: int, device: torch.device) -> None:
    """One evaluation round for every seed whose clock is due (all are: same ``every``, lockstep)."""
    due = [b for b, c in enumerate(clocks) if c.due(t)]
    episodes = {clocks[b].evaluation.episodes for b in due}
    if eval_kw is not None and len(episodes) == 1 and len(due) == len(clocks):
        seeds = [clocks[b].next_seed() for b in due]
        with torch.no_grad():
            rets, lens = _evaluate_batched(params, env_id, eval_kw, seeds, episodes.pop(), device)
        for b in due:
            while clocks[b].next_step <= t:
                clocks[b].next_step += clocks[b].evaluation.every
            logs[b].evaluation(t, rets[b].tolist(), lens[b].tolist())
        return
    for b in due:
        net = seed_q_network(params, b)

        def greedy(o: np.ndarray, net=net) -> int:
            with torch.inference_mode():
                return a0 + int(net(torch.as_tensor(np.asarray(o, np.float32).reshape(1, -1))).argmax())

        clocks[b].run(t, greedy, env_id, env_kwargs, logs[b])
