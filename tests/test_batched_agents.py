"""Seed-batched agents (issue 9): independence of the seeds in a batch, equivalence with the
unbatched agent at batch size 1, independence of batch companions, bounded memory."""

import dataclasses

import numpy as np
import pytest
import torch

from agents import dqn, dqn_batched
from agents.common import Evaluation, ListLog, torch_generator_seed
from tests.toy_envs import COUNTING_CARTPOLE, ENV_STEPS

torch.set_num_threads(1)
SMALL = dqn.Config(learning_starts=200, train_frequency=16, gradient_steps=8, batch_size=32, hidden=32)


def _run_batch(seeds, steps, config=SMALL, env_id="CartPole-v1", evaluation=None):
    logs = [ListLog() for _ in seeds]
    dqn_batched.train_batch(env_id, config, list(seeds), steps, logs,
                            evaluation=[evaluation] * len(seeds) if evaluation else None)
    return logs


def _spy(monkeypatch, module):
    """Count ``module.update`` calls and keep the parameters it last saw."""
    seen = {"n": 0}
    original = module.update

    def spy(q, target, opt, batch, config, **kw):
        seen["n"] += 1
        seen["q"] = q
        return original(q, target, opt, batch, config, **kw)

    monkeypatch.setattr(module, "update", spy)
    return seen


def test_initialisation_is_the_unbatched_agents_per_seed():
    seeds = [0, 1, 17]
    params, target = dqn_batched.init_params(4, 2, 32, [np.random.default_rng(s) for s in seeds])
    for b, s in enumerate(seeds):
        gen = torch.Generator().manual_seed(torch_generator_seed(np.random.default_rng(s)))
        ref = dqn.q_network(4, 2, 32, gen)
        mine = dqn_batched.seed_q_network(params, b)
        for p, r in zip(mine.parameters(), ref.parameters()):
            assert torch.equal(p, r)
    assert torch.equal(params.flat, target.flat)


def test_seeds_in_a_batch_do_not_share_randomness():
    seeds = [3, 4, 5, 6]
    params, _ = dqn_batched.init_params(4, 2, 32, [np.random.default_rng(s) for s in seeds])
    for p in params.tensors():  # every layer differs between every pair of seeds
        for i in range(len(seeds)):
            for j in range(i + 1, len(seeds)):
                assert not torch.allclose(p[i], p[j])
    logs = _run_batch(seeds, 1500)
    # exploration: different episode sequences (lengths and end steps) for every seed
    traces = [tuple((r["step"], r["length"]) for r in log.rows) for log in logs]
    assert len(set(traces)) == len(seeds)
    # and the same seed twice in one batch gives the same run twice (no shared stream)
    a, b = _run_batch([9, 9], 800)
    assert a.rows == b.rows


def test_batch_of_one_follows_the_unbatched_agent(monkeypatch):
    steps = 3000
    unbatched_seen = _spy(monkeypatch, dqn)
    ref = ListLog()
    dqn.train("CartPole-v1", SMALL, 11, steps, ref)
    batched_seen = _spy(monkeypatch, dqn_batched)
    (mine,) = _run_batch([11], steps)
    n_updates = (steps // SMALL.train_frequency - SMALL.learning_starts // SMALL.train_frequency) * SMALL.gradient_steps
    assert unbatched_seen["n"] == batched_seen["n"] == n_updates >= 500
    # same episodes (same env steps, same exploration, same greedy actions) and losses to float tolerance
    assert [(r["step"], r["return"], r["epsilon"]) for r in ref.rows] == \
        [(r["step"], r["return"], r["epsilon"]) for r in mine.rows]
    la = np.array([r["loss"] for r in ref.rows if "loss" in r])
    lb = np.array([r["loss"] for r in mine.rows if "loss" in r])
    assert len(la) > 20 and np.allclose(la, lb, rtol=1e-4, atol=1e-6)
    # the networks after all updates agree to float tolerance
    net = dqn_batched.seed_q_network(batched_seen["q"], 0)
    for p, r in zip(net.parameters(), unbatched_seen["q"].parameters()):
        assert torch.allclose(p, r, rtol=1e-3, atol=1e-5)


def test_a_seeds_run_does_not_depend_on_its_batch_companions():
    (alone,) = _run_batch([21], 2000)
    together = _run_batch([5, 21, 8, 13], 2000)
    assert together[1].rows == alone.rows
    assert together[1].rows != together[0].rows


def test_gymnasium_fallback_equals_the_vector_env_path_with_exact_step_accounting():
    cfg = dqn.Config(learning_starts=50, train_frequency=4, gradient_steps=1, batch_size=16, hidden=16)
    ev = Evaluation(250, 2, 99)
    vec = _run_batch([0, 1], 777, cfg, evaluation=ev)
    ENV_STEPS["n"] = 0
    gym_logs = _run_batch([0, 1], 777, cfg, env_id=COUNTING_CARTPOLE, evaluation=ev)  # no numpy version: gym envs
    eval_len = sum(r["length"] for log in gym_logs for r in log.rows if r["mode"] == "eval")
    assert ENV_STEPS["n"] == 2 * 777 + eval_len  # training steps exactly, per seed
    for a, b in zip(vec, gym_logs):
        assert [(r["mode"], r["step"], r["return"]) for r in a.rows] == [(r["mode"], r["step"], r["return"]) for r in b.rows]
        train = [r for r in a.rows if r["mode"] == "train"]
        assert sum(r["length"] for r in train) <= 777 and train[-1]["step"] <= 777
        assert {r["step"] for r in a.rows if r["mode"] == "eval"} == {250, 500, 750}
    # batched evaluation (vector env) equals the unbatched agent's evaluation rows
    ref = ListLog()
    dqn.train("CartPole-v1", cfg, 1, 777, ref, evaluation=ev)
    assert [r for r in ref.rows if r["mode"] == "eval"] == [r for r in vec[1].rows if r["mode"] == "eval"]


def test_a_batch_that_does_not_fit_fails_before_allocating():
    cfg = dqn.Config(buffer_size=1_000_000)
    need = dqn_batched.memory_needed_mb(128, 1_000_000, 4, 2, cfg.hidden)
    assert need == pytest.approx(128 * dqn_batched.memory_needed_mb(1, 1_000_000, 4, 2, cfg.hidden))
    assert need > 128 * 1_000_000 * 44 / 2**20  # at least the transitions themselves
    ENV_STEPS["n"] = 0
    logs = [ListLog() for _ in range(128)]
    with pytest.raises(ValueError, match=r"128 seeds needs .* MiB.* at most \d+ seeds per batch"):
        dqn_batched.train_batch(COUNTING_CARTPOLE, cfg, list(range(128)), 1_000_000, logs, max_memory_mb=1024)
    assert ENV_STEPS["n"] == 0 and all(not log.rows for log in logs)
    # the default limit is what the machine can give: a petabyte-sized batch is refused too
    with pytest.raises(ValueError, match="seeds per batch"):
        dqn_batched.train_batch("CartPole-v1", dqn.Config(buffer_size=10_000_000), list(range(4096)),
                                10_000_000_000, [ListLog() for _ in range(4096)])
    # a batch within the limit runs
    small = _run_batch([1, 2], 300)
    assert all(log.rows for log in small)


def test_batched_update_is_each_seeds_autograd_step():
    """The hand-written bmm backward pass, per-seed clipping and Adam equal, for every seed, the
    autograd + clip_grad_norm_ + torch.optim.Adam step of its own network on its own minibatch."""
    seeds, n, hidden = [3, 4, 5], 24, 16
    gen = torch.Generator().manual_seed(0)
    x, nx = torch.randn(3, n, 4, generator=gen), torch.randn(3, n, 4, generator=gen)
    actions = torch.randint(0, 2, (3, n), generator=gen)
    rewards, term = torch.randn(3, n, generator=gen), (torch.rand(3, n, generator=gen) < 0.3).float()
    for kind, max_norm in (("huber", 10.0), ("mse", 0.05)):
        cfg = dqn.Config(loss=kind, max_grad_norm=max_norm, hidden=hidden, learning_rate=1e-2)
        params, target = dqn_batched.init_params(4, 2, hidden, [np.random.default_rng(s) for s in seeds])
        target.flat.add_(0.1)  # a target network that differs from the online one
        refs = [(dqn_batched.seed_q_network(params, b), dqn_batched.seed_q_network(target, b)) for b in range(3)]
        opts = [torch.optim.Adam(q.parameters(), lr=cfg.learning_rate) for q, _ in refs]
        opt = dqn_batched._adam(params, cfg.learning_rate)
        for _ in range(3):
            losses = dqn_batched.update(params, target, opt, (x, actions, rewards, nx, term), cfg)
            for b, ((q, t), o) in enumerate(zip(refs, opts)):
                with torch.no_grad():
                    y = dqn.td_target(rewards[b], t(nx[b]), term[b], cfg.gamma)
                loss = dqn.td_loss(q(x[b]).gather(1, actions[b, :, None]).squeeze(1), y, kind)
                o.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(q.parameters(), max_norm)
                o.step()
                assert torch.allclose(losses[b], loss.detach(), rtol=1e-5, atol=1e-6)
        for b, (q, _) in enumerate(refs):
            for p, r in zip(dqn_batched.seed_q_network(params, b).parameters(), q.parameters()):
                assert torch.allclose(p, r, rtol=1e-4, atol=1e-6)


def test_batch_of_one_follows_the_unbatched_agent_with_n_step_targets():
    cfg = dqn.Config(learning_starts=200, train_frequency=16, gradient_steps=8, batch_size=32, hidden=32, n_step=3)
    ref = ListLog()
    dqn.train("CartPole-v1", cfg, 11, 2000, ref)
    (mine,) = _run_batch([11], 2000, cfg)
    assert [(r["step"], r["return"]) for r in ref.rows] == [(r["step"], r["return"]) for r in mine.rows]
    la = np.array([r["loss"] for r in ref.rows if "loss" in r])
    lb = np.array([r["loss"] for r in mine.rows if "loss" in r])
    assert len(la) > 10 and np.allclose(la, lb, rtol=1e-4, atol=1e-6)
    # and the n-step targets differ from one-step ones (the option is not ignored)
    one = _run_batch([11], 2000, dataclasses.replace(cfg, n_step=1))[0]
    assert [r.get("loss") for r in one.rows] != [r.get("loss") for r in mine.rows]


def test_update_in_seed_blocks_is_bitwise_the_whole_batch_update():
    """The cache-sized seed blocks of an update (one seed each here, one block by default) give the
    same parameters and losses, bit for bit: a seed's numbers do not depend on its block."""
    assert dqn_batched.seed_blocks(5, 64, 64) == [(0, 5)]
    assert dqn_batched.seed_blocks(130, 64, 64) == [(0, 64), (64, 128), (128, 130)]
    assert dqn_batched.seed_blocks(3, 64, 8192, block_floats=1) == [(0, 1), (1, 2), (2, 3)]
    seeds, n, hidden = [3, 4, 5, 6], 24, 16
    gen = torch.Generator().manual_seed(1)
    batch = (torch.randn(4, n, 4, generator=gen), torch.randint(0, 2, (4, n), generator=gen),
             torch.randn(4, n, generator=gen), torch.randn(4, n, 4, generator=gen),
             (torch.rand(4, n, generator=gen) < 0.3).float())
    for double_q in (False, True):
        cfg = dqn.Config(hidden=hidden, learning_rate=1e-2, double_q=double_q)
        out = []
        for block_floats in (dqn_batched.BLOCK_FLOATS, 1, 2 * n * hidden):
            params, target = dqn_batched.init_params(4, 2, hidden, [np.random.default_rng(s) for s in seeds])
            target.flat.add_(0.1)
            opt = dqn_batched._adam(params, cfg.learning_rate)
            losses = [dqn_batched.update(params, target, opt, batch, cfg, block_floats=block_floats) for _ in range(3)]
            out.append((params.flat.clone(), torch.stack(losses)))
        for flat, losses in out[1:]:
            assert torch.equal(flat, out[0][0]) and torch.equal(losses, out[0][1])
        assert not torch.equal(out[0][0], dqn_batched.init_params(4, 2, hidden, [np.random.default_rng(s) for s in seeds])[0].flat)


def test_batched_dqn_steps_adam_with_the_fused_kernel_directly():
    """The batched agent's optimizer once fell back to ``torch.optim.Adam`` because the buffer had no
    ``.grad`` yet when it was built: the same kernel behind 190 us of Python per step, about 8% of a
    width-64 update (and a 1.8 s import per worker). The optimizer now refuses a buffer without a
    gradient, and the batched agent gives it one first."""
    params, _ = dqn_batched.init_params(4, 2, 8, [np.random.default_rng(s) for s in (0, 1)])
    opt = dqn_batched._adam(params, 1e-3)
    assert opt._torch is None and params.flat.grad is not None
    bare, _ = dqn_batched.init_params(4, 2, 8, [np.random.default_rng(0)])
    with pytest.raises(ValueError, match="give the parameter buffer its .grad"):
        dqn.FlatAdam(bare.flat, 1e-3)
    views = params.tensors()
    assert views is params.tensors()  # cached: the update asks for them several times per step
    params.flat.add_(1.0)  # in-place updates (Adam, target copies) are seen through the cached views
    assert torch.equal(views[1], params.flat[:, params.slices[1][0]:params.slices[1][0] + params.slices[1][1]])
