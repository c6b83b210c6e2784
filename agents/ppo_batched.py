"""Seed-batched PPO (issue 9): the seeds of one setting trained together in one process.

Every seed is still its own run of :func:`agents.ppo.train`, with the same math written out
over a leading seed axis ``B`` (the model is :mod:`agents.dqn_batched`):

* **initialisation** -- seed ``s`` gets ``rng = np.random.default_rng(s)``; its ``n_envs - 1``
  extra env seeds are drawn from ``rng`` and then ``torch.Generator().manual_seed(
  torch_generator_seed(rng))``, as in the unbatched agent, and its networks are built by
  :class:`agents.ppo.Policy` itself from that generator (so the orthogonal init is the unbatched
  agent's by construction). The per-seed tensors are then stacked: layer ``k`` of the actor or
  critic is a weight ``(B, in, out)`` (the transpose of ``nn.Linear.weight``) and a bias
  ``(B, out)``; the Gaussian policy's log std is ``(B, n_act)``; all of them live in one aligned
  ``(B, P)`` buffer (:class:`agents._stacked.Stacked`, shared with the batched DQN);
* **networks** -- one ``torch.baddbmm`` per layer evaluates all ``B`` actors (critics) at once
  (``x_b @ W_b + b_b`` for every seed ``b``: nothing mixes seeds);
* **rollouts** -- ``B * n_envs`` env copies stepped in lockstep, seed ``b`` owning copies
  ``b * n_envs ... (b + 1) * n_envs - 1`` seeded as the unbatched agent seeds its ``n_envs``
  copies (:func:`agents.ppo.make_envs`: the numpy envs of :mod:`agents.vector_envs` for CartPole,
  Acrobot and MountainCar, otherwise gymnasium envs stepped in a loop -- e.g. Pendulum with Box
  actions); actions are sampled with seed ``b``'s ``rng`` by the same calls as
  :func:`agents.ppo.sample_actions` (one ``random(n_envs)`` or ``standard_normal((n_envs,
  n_act))`` per seed and vector step, in seed order); truncation bootstraps the cut step's reward
  with ``gamma * V(final obs)``; GAE is :func:`agents.ppo.gae` (columns are independent);
* **update** -- per epoch, seed ``b``'s minibatch order is ``rng.permutation(size)`` of its own
  ``rng``; the loss of a seed is :func:`agents.ppo.ppo_loss`'s (clipped surrogate, optional
  clipped value loss, per-minibatch advantage normalisation over the seed's own minibatch,
  entropy bonus) as a mean over its own minibatch, and the batch loss is the *sum* of the
  per-seed losses, so seed ``b``'s gradient is exactly the gradient of its own loss;
* **gradient clipping** -- per seed (each seed's global norm over its own parameters, with
  ``clip_grad_norm_``'s formula), :func:`clip_grad_norm_per_seed`;
* **Adam** -- ``torch.optim.Adam(eps=1e-5)`` on the stacked buffer is per-seed exact (elementwise
  moments and step; every seed updates at the same env steps with the same annealed step size);
* **normalisation** -- ``normalize_obs`` / ``normalize_reward`` keep one
  :class:`agents.ppo.RunningMeanStd` per seed, updated with that seed's copies only;
* **logging** -- seed ``b``'s episodes go to ``logs[b]`` at its own env step count
  (``t + i + 1`` for copy ``i``, as in the unbatched agent) with its own last-minibatch
  diagnostics; evaluation rounds through one :class:`EvaluationClock` per seed with the seed's
  deterministic policy (argmax / clipped mean).

So a seed's trajectory does not depend on which other seeds share its batch, and a batch of one
follows :func:`agents.ppo.train` to float tolerance (the two differ only in the BLAS calls:
``baddbmm`` instead of ``addmm``, and the bootstrap value computed for every copy, not only the
truncated ones).

Limits (raised as ``ValueError``, never silently different): the action space must be Discrete
or Box (as in the unbatched agent), and :class:`agents.ppo.Policy`'s actor and critic must be
``nn.Sequential`` stacks of ``nn.Linear`` layers with Tanh/ReLU activations (they are; the check
guards against a later change of the architecture that this module would not reproduce).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents._stacked import Stacked, clip_grad_norm_per_seed
from agents.common import Evaluation, EpisodeLog, EvaluationClock, torch_generator_seed

NAME = "ppo"
__all__ = ["Config", "train_batch", "BatchedPolicy", "init_policy"]

_ACTIVATIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu}


# ---------------------------------------------------------------------------------------- networks
def _mlp_spec(seq: nn.Module) -> tuple[list[nn.Linear], list]:
    """The Linear layers of an ``nn.Sequential`` MLP and the activation after each hidden layer."""
    if not isinstance(seq, nn.Sequential):
        raise ValueError(f"ppo_batched: expected an nn.Sequential MLP in agents.ppo.Policy, found {type(seq).__name__}")
    mods = list(seq)
    linears, acts = [], []
    for k, mod in enumerate(mods):
        if k % 2 == 0:
            if not isinstance(mod, nn.Linear):
                raise ValueError(f"ppo_batched: cannot batch agents.ppo.Policy layer {mod!r}")
            linears.append(mod)
        else:
            if type(mod) not in _ACTIVATIONS:
                raise ValueError(f"ppo_batched: cannot batch agents.ppo.Policy activation {mod!r}")
            acts.append(_ACTIVATIONS[type(mod)])
    if len(mods) % 2 == 0:
        raise ValueError("ppo_batched: agents.ppo.Policy MLP must end with a Linear layer")
    return linears, acts


class BatchedPolicy:
    """``B`` :class:`agents.ppo.Policy` networks stacked along a leading seed axis.

    ``params`` (:class:`Stacked`) holds, in ``Policy.parameters()`` order, every actor layer's
    weight ``(B, in, out)`` and bias ``(B, out)``, then the critic's, then (Box actions) the log
    std ``(B, n_act)``. Inputs are ``(B, N, n_obs)``; seed ``b``'s rows go through its own networks.
    """

    def __init__(self, policies: Sequence[nn.Module]) -> None:
        first = policies[0]
        self.discrete = bool(first.discrete)
        a_lin, self.actor_acts = _mlp_spec(first.actor)
        c_lin, self.critic_acts = _mlp_spec(first.critic)
        self.n_actor, self.n_critic = len(a_lin), len(c_lin)
        tensors = []
        for which in ("actor", "critic"):
            n_layers = len(a_lin) if which == "actor" else len(c_lin)
            for k in range(n_layers):
                layers = [_mlp_spec(getattr(p, which))[0][k] for p in policies]
                tensors.append(torch.stack([lay.weight.detach().T for lay in layers]))
                tensors.append(torch.stack([lay.bias.detach() for lay in layers]))
        if not self.discrete:
            tensors.append(torch.stack([p.log_std.detach() for p in policies]))
        n_expected = sum(p.numel() for p in first.parameters())
        if sum(t[0].numel() for t in tensors) != n_expected:
            raise ValueError("ppo_batched: agents.ppo.Policy has parameters this module does not batch")
        self.params = Stacked(tensors)
        self.params.make_trainable()

    # tensors --------------------------------------------------------------------------------
    def _actor_tensors(self) -> list[torch.Tensor]:
        return self.params.tensors()[:2 * self.n_actor]

    def _critic_tensors(self) -> list[torch.Tensor]:
        return self.params.tensors()[2 * self.n_actor:2 * (self.n_actor + self.n_critic)]

    def log_std(self) -> torch.Tensor:
        """``(B, n_act)`` (Box actions only)."""
        return self.params.tensors()[-1]

    @staticmethod
    def _forward(ts: Sequence[torch.Tensor], acts: Sequence, x: torch.Tensor) -> torch.Tensor:
        n = len(ts) // 2
        for k in range(n):
            w, b = ts[2 * k], ts[2 * k + 1]
            if w.shape[-1] == 1:
                # a one-column output (the value head) is padded with a zero column: CPU baddbmm computes
                # a one-column product for B = 1 by a different kernel (gemv) than for B > 1, and a seed's
                # run must not depend on its batch's size; the padding is no parameter (exact gradients)
                y = torch.baddbmm(torch.cat([b, torch.zeros_like(b)], -1).unsqueeze(1), x,
                                  torch.cat([w, torch.zeros_like(w)], -1))
                x = y[..., :1]
            else:
                x = torch.baddbmm(b.unsqueeze(1), x, w)
            if k < n - 1:
                x = acts[k](x)
        return x

    # the Policy interface over a seed axis -----------------------------------------------------
    def actor(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, n_obs) -> (B, N, n_out)``: logits or Gaussian means."""
        return self._forward(self._actor_tensors(), self.actor_acts, x)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, n_obs) -> (B, N)``."""
        return self._forward(self._critic_tensors(), self.critic_acts, x).squeeze(-1)

    def log_prob_entropy(self, x: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`agents.ppo.Policy.log_prob_entropy`, shapes ``(B, N)``."""
        out = self.actor(x)
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=-1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)
        log_std = self.log_std().unsqueeze(1).expand_as(out)
        z = (actions - out) * torch.exp(-log_std)
        logp = (-0.5 * z * z - log_std - _half_log_2pi()).sum(-1)
        return logp, (0.5 + _half_log_2pi() + log_std).sum(-1)

    def seed_policy(self, b: int, template: nn.Module) -> nn.Module:
        """Seed ``b``'s networks copied into ``template`` (an :class:`agents.ppo.Policy` of the same
        shape, e.g. a fresh one); used by tests to compare with the unbatched agent."""
        ts = [t[b].detach() for t in self.params.tensors()]
        a_lin, _ = _mlp_spec(template.actor)
        c_lin, _ = _mlp_spec(template.critic)
        with torch.no_grad():
            for k, lay in enumerate(a_lin + c_lin):
                lay.weight.copy_(ts[2 * k].T)
                lay.bias.copy_(ts[2 * k + 1])
            if not self.discrete:
                template.log_std.copy_(ts[-1])
        return template


def _half_log_2pi() -> float:
    return getattr(ppo, "_HALF_LOG_2PI", 0.5 * float(np.log(2 * np.pi)))


def init_policy(n_obs: int, space: spaces.Space, config: Config, rngs: Sequence[np.random.Generator]) -> BatchedPolicy:
    """Every seed's :class:`agents.ppo.Policy`, drawn from ``torch.Generator().manual_seed(
    torch_generator_seed(rngs[b]))`` exactly as :func:`agents.ppo.train` draws it, then stacked."""
    policies = [ppo.Policy(n_obs, space, config, torch.Generator().manual_seed(torch_generator_seed(rng)))
                for rng in rngs]
    return BatchedPolicy(policies)


def _adam(params: Stacked, lr: float) -> torch.optim.Optimizer:
    """The unbatched agent's optimiser (``Adam(lr, eps=1e-5, fused=True)``) on the stacked buffer."""
    try:
        return torch.optim.Adam([params.flat], lr=lr, eps=1e-5, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam([params.flat], lr=lr, eps=1e-5)


# ------------------------------------------------------------------------------------------ acting
def sample_actions(policy: BatchedPolicy, obs: torch.Tensor, rngs: Sequence[np.random.Generator]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`agents.ppo.sample_actions` for every seed: ``obs`` ``(B, m, n_obs)`` -> actions
    ``(B, m)`` (or ``(B, m, n_act)``) and float32 log-probs ``(B, m)``; seed ``b``'s draws come from
    ``rngs[b]`` with the unbatched agent's calls. Call under ``torch.inference_mode``."""
    out = policy.actor(obs)
    m = out.shape[1]
    if policy.discrete:
        logp_all = torch.log_softmax(out, dim=-1).numpy()
        probs = np.exp(logp_all.astype(np.float64))
        cdf = np.cumsum(probs, axis=2)
        u = np.stack([rng.random(m) for rng in rngs])
        acts = np.minimum((cdf < u[:, :, None] * cdf[:, :, -1:]).sum(axis=2), probs.shape[2] - 1)
        return acts, np.take_along_axis(logp_all, acts[:, :, None], axis=2)[:, :, 0]
    shape = tuple(out.shape[1:])
    noise = np.stack([rng.standard_normal(shape).astype(np.float32) for rng in rngs])
    log_std = policy.log_std().detach().numpy()[:, None, :]
    acts = out.numpy() + np.exp(log_std) * noise
    logp = (-0.5 * noise * noise - log_std - np.float32(_half_log_2pi())).sum(-1)
    return acts, logp.astype(np.float32)


# ------------------------------------------------------------------------------------------ update
def ppo_losses(policy: BatchedPolicy, obs: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor,
               adv: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, config
               ) -> tuple[torch.Tensor, dict]:
    """:func:`agents.ppo.ppo_loss` per seed: ``(B,)`` losses, each a mean over the seed's own
    minibatch (inputs ``(B, N, ...)``), and ``(B,)`` diagnostics."""
    logp, entropy = policy.log_prob_entropy(obs, actions)
    ratio = (logp - old_logp).exp()
    if config.normalize_advantage and adv.shape[1] > 1:
        adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)).mean(1)
    v = policy.value(obs)
    if config.clip_vloss:
        v_clipped = old_values + (v - old_values).clamp(-config.clip_coef, config.clip_coef)
        vloss = 0.5 * torch.max((v - returns) ** 2, (v_clipped - returns) ** 2).mean(1)
    else:
        vloss = 0.5 * ((v - returns) ** 2).mean(1)
    ent = entropy.mean(1)
    loss = pg - config.ent_coef * ent + config.vf_coef * vloss
    return loss, {"policy_loss": pg, "value_loss": vloss, "entropy": ent}


def _learn(policy: BatchedPolicy, opt: torch.optim.Optimizer, obs: np.ndarray, acts: np.ndarray,
           logp: np.ndarray, vals: np.ndarray, adv: np.ndarray, rngs: Sequence[np.random.Generator],
           config) -> list[dict]:
    """:func:`agents.ppo._learn` for every seed; inputs ``(B, size, ...)`` in the unbatched agent's
    flattening order (step-major, then env copy). Returns each seed's last-minibatch diagnostics."""
    B, size = obs.shape[0], obs.shape[1]
    o, a = torch.from_numpy(np.ascontiguousarray(obs)), torch.from_numpy(np.ascontiguousarray(acts))
    lp, v = torch.from_numpy(np.ascontiguousarray(logp)), torch.from_numpy(np.ascontiguousarray(vals))
    adv_t = torch.from_numpy(np.ascontiguousarray(adv).astype(np.float32))
    ret_t = adv_t + v
    mb = max(1, size // config.n_minibatches)
    rows = torch.arange(B).unsqueeze(1)
    params = policy.params
    info: dict = {}
    for _ in range(config.n_epochs):
        order = torch.from_numpy(np.stack([rng.permutation(size) for rng in rngs]))
        for start in range(0, size, mb):
            idx = order[:, start:start + mb]
            losses, info = ppo_losses(policy, o[rows, idx], a[rows, idx], lp[rows, idx], adv_t[rows, idx],
                                      ret_t[rows, idx], v[rows, idx], config)
            params.zero_grad()
            with warnings.catch_warnings():  # strided leaves into flat.grad: accumulated in place, on purpose
                warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
                losses.sum().backward()  # seed b's gradient is the gradient of its own loss alone
            clip_grad_norm_per_seed(params, config.max_grad_norm)
            opt.step()
    cols = {k: x.detach().numpy().astype(np.float64) for k, x in info.items()}
    return [{k: float(c[b]) for k, c in cols.items()} for b in range(B)]


# -------------------------------------------------------------------------------------------- train
def train_batch(env_id: str, config: Config, seeds: list[int], steps: int, logs: list[EpisodeLog], *,
                env_kwargs: dict | None = None, evaluation: list[Evaluation] | None = None) -> None:
    """Train one PPO run per seed for exactly ``steps`` env steps each (summed over the seed's
    ``n_envs`` copies, as :func:`agents.ppo.train`), all seeds in one batched computation;
    ``logs[b]`` receives seed ``b``'s episodes and ``evaluation[b]``'s rounds."""
    seeds = [int(s) for s in seeds]
    B = len(seeds)
    if B == 0:
        return
    if len(logs) != B or (evaluation is not None and len(evaluation) != B):
        raise ValueError(f"ppo.train_batch: need one log (and one evaluation, if any) per seed; got {B} seeds, "
                         f"{len(logs)} logs" + ("" if evaluation is None else f", {len(evaluation)} evaluations"))
    m, n = config.n_envs, config.n_steps
    rngs = [np.random.default_rng(s) for s in seeds]
    env_seeds: list[int] = []
    for s, rng in zip(seeds, rngs):  # copy 0 of seed s is seeded with s, the others from its rng
        env_seeds += [s] + [int(x) for x in rng.integers(0, 2**31 - 1, size=m - 1)]
    envs = ppo.make_envs(env_id, env_kwargs, env_seeds)
    space = envs.action_space
    if not isinstance(space, (spaces.Discrete, spaces.Box)):
        envs.close()
        raise ValueError(f"ppo: needs a Discrete or Box action space, {env_id} has {space!r}")
    n_obs = int(np.prod(envs.observation_space.shape))
    try:
        policy = init_policy(n_obs, space, config, rngs)
    except BaseException:
        envs.close()
        raise
    opt = _adam(policy.params, config.learning_rate)
    discrete = policy.discrete
    a0 = int(space.start) if discrete else 0
    low, high = (None, None) if discrete else (space.low, space.high)
    obs_rms = [ppo.RunningMeanStd((n_obs,)) for _ in seeds] if config.normalize_obs else None
    ret_rms = [ppo.RunningMeanStd(()) for _ in seeds] if config.normalize_reward else None
    disc_returns = np.zeros(B * m)
    clocks = [EvaluationClock(e) for e in evaluation] if evaluation is not None else None

    def norm(o: np.ndarray) -> np.ndarray:
        """``(B * m, n_obs)`` raw float64 -> ``(B, m, n_obs)`` float32, seed b by its own statistics."""
        o = o.reshape(B, -1, n_obs)
        if obs_rms is None:
            return o.astype(np.float32)
        mean = np.stack([r.mean for r in obs_rms])[:, None, :]
        std = np.sqrt(np.stack([r.var for r in obs_rms])[:, None, :] + 1e-8)
        return np.clip((o - mean) / std, -10, 10).astype(np.float32)

    def update_obs_rms(raw: np.ndarray) -> None:
        for b, r in enumerate(obs_rms):
            r.update(raw[b * m:(b + 1) * m])

    def deterministic_for(b: int):
        ts = [t[b:b + 1].detach() for t in policy.params.tensors()]
        actor_ts = ts[:2 * policy.n_actor]
        stats = None if obs_rms is None else (obs_rms[b].mean.copy(), obs_rms[b].var.copy())

        def act(o: np.ndarray):
            x = np.asarray(o, np.float64).reshape(1, -1)
            x = (x.astype(np.float32) if stats is None
                 else np.clip((x - stats[0]) / np.sqrt(stats[1] + 1e-8), -10, 10).astype(np.float32))
            with torch.inference_mode():
                out = BatchedPolicy._forward(actor_ts, policy.actor_acts, torch.from_numpy(x).unsqueeze(0))[0, 0]
            return a0 + int(out.argmax()) if discrete else np.clip(out.numpy(), low, high)

        return act

    raw = np.asarray(envs.reset(), np.float64).reshape(B * m, n_obs)
    if obs_rms is not None:
        update_obs_rms(raw)
    batch = m * n
    updates = max(1, -(-steps // batch))
    ep_ret, ep_len = np.zeros(B * m), np.zeros(B * m, dtype=np.int64)
    act_shape = () if discrete else tuple(space.shape)
    n_act = 1 if discrete else int(np.prod(act_shape))
    b_obs = np.zeros((n, B, m, n_obs), np.float32)
    b_act = np.zeros((n, B, m) + act_shape, np.int64 if discrete else np.float32)
    b_logp, b_val = np.zeros((n, B, m), np.float32), np.zeros((n, B, m), np.float32)
    b_rew, b_done = np.zeros((n, B * m)), np.zeros((n, B * m))
    t = 0
    infos: list[dict] = [{} for _ in seeds]
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
                acts, logp = sample_actions(policy, ot, rngs)
                b_val[k] = policy.value(ot).numpy()
            b_obs[k], b_act[k], b_logp[k] = obs, acts, logp
            flat_acts = acts.reshape(B * m) if discrete else np.clip(acts.reshape(B * m, n_act), low, high)
            new_raw, rew, term, trunc, final = envs.step(flat_acts)
            new_raw = np.asarray(new_raw, np.float64).reshape(B * m, n_obs)
            ep_ret += rew
            ep_len += 1
            b_rew[k] = rew
            done = np.asarray(term) | np.asarray(trunc)
            b_done[k] = done
            if done.any():
                for j in np.flatnonzero(done):
                    b, i = divmod(int(j), m)
                    logs[b].episode(t + i + 1, float(ep_ret[j]), int(ep_len[j]), **infos[b])
                ep_ret[done], ep_len[done] = 0.0, 0
            if ret_rms is not None:
                disc_returns = disc_returns * config.gamma * (1 - b_done[k]) + b_rew[k]
                for b, r in enumerate(ret_rms):
                    sl = slice(b * m, (b + 1) * m)
                    r.update(disc_returns[sl])
                    b_rew[k, sl] = b_rew[k, sl] / np.sqrt(r.var + 1e-8)
            cut = np.asarray(trunc) & ~np.asarray(term)
            if cut.any():  # truncation bootstraps from the state where the episode was cut
                with torch.inference_mode():
                    fin = norm(np.asarray(final, np.float64).reshape(B * m, n_obs))
                    fv = policy.value(torch.from_numpy(fin)).numpy().reshape(B * m)
                b_rew[k, cut] += config.gamma * fv[cut].astype(np.float64)
            t += m
            raw = new_raw
            if obs_rms is not None:
                update_obs_rms(raw)
            if clocks is not None and any(c.due(t) for c in clocks):
                for b, c in enumerate(clocks):
                    if c.due(t):
                        c.run(t, deterministic_for(b), env_id, env_kwargs, logs[b])
        if used == 0:
            break
        with torch.inference_mode():
            last_v = policy.value(torch.from_numpy(norm(raw))).numpy().reshape(B * m)
        adv = ppo.gae(b_rew[:used], b_val[:used].reshape(used, B * m), b_done[:used], last_v, config.gamma,
                      config.gae_lambda)
        # (used, B, m, ...) -> (B, used * m, ...): each seed's rollout flattened as the unbatched agent does
        per_seed = lambda x: np.swapaxes(x[:used], 0, 1).reshape((B, used * m) + x.shape[3:])
        infos = _learn(policy, opt, per_seed(b_obs), per_seed(b_act), per_seed(b_logp), per_seed(b_val),
                       per_seed(adv.reshape(used, B, m)), rngs, config)
        if used < n:
            break
    envs.close()


# At the bottom, not the top: agents/ppo.py imports ``train_batch`` from this module at its own
# bottom, so either module may be imported first without a circular-import error.
from agents import ppo  # noqa: E402
from agents.ppo import Config  # noqa: E402,F401
