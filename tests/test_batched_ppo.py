"""Seed-batched PPO (issue 9): a batch of one follows agents.ppo.train, seeds in a batch are
independent of each other and of their batch companions, runs are deterministic, Box actions."""

import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import ppo, ppo_batched
from agents.common import Evaluation, ListLog, torch_generator_seed
from tests.toy_envs import COUNTING_CARTPOLE, ENV_STEPS

torch.set_num_threads(1)
# small enough for seconds per run, and exercising several minibatches, the entropy bonus and annealing
SMALL = ppo.Config(n_envs=4, n_steps=64, n_minibatches=4, n_epochs=4, ent_coef=0.01, hidden=32)


def _run_batch(seeds, steps, config=SMALL, env_id="CartPole-v1", evaluation=None, env_kwargs=None):
    logs = [ListLog() for _ in seeds]
    ppo_batched.train_batch(env_id, config, list(seeds), steps, logs, env_kwargs=env_kwargs,
                            evaluation=[evaluation] * len(seeds) if evaluation else None)
    return logs


def _spy(monkeypatch, module):
    """Count ``module._learn`` calls and keep the policy it last saw."""
    seen = {"n": 0}
    original = module._learn

    def spy(policy, *args):
        seen["n"] += 1
        seen["policy"] = policy
        return original(policy, *args)

    monkeypatch.setattr(module, "_learn", spy)
    return seen


def _fresh_policy(n_obs, space, config):
    return ppo.Policy(n_obs, space, config, torch.Generator().manual_seed(0))


def _key(rows, extras=()):
    return [(r["mode"], r["step"], r["return"], r["length"]) + tuple(r.get(k) for k in extras) for r in rows]


def _compare_with_unbatched(monkeypatch, env_id, config, seed, steps, env_kwargs=None, evaluation=None):
    """Run agents.ppo.train and a batch of one from the same seed; returns both logs and both final
    policies (the unbatched one ``None`` if agents.ppo no longer routes its updates through
    ``_learn(policy, ...)`` with an ``nn.Module`` policy: then only the logs are compared)."""
    ref_seen = _spy(monkeypatch, ppo) if hasattr(ppo, "_learn") else {}
    ref = ListLog()
    ppo.train(env_id, config, seed, steps, ref, env_kwargs=env_kwargs, evaluation=evaluation)
    mine_seen = _spy(monkeypatch, ppo_batched)
    (mine,) = _run_batch([seed], steps, config, env_id, evaluation, env_kwargs)
    assert mine_seen["n"] >= 3 and ref_seen.get("n", mine_seen["n"]) == mine_seen["n"]
    ref_policy = ref_seen.get("policy")
    if not isinstance(ref_policy, torch.nn.Module):
        ref_policy = None
    batched = mine_seen["policy"]
    n_obs = batched.params.tensors()[0].shape[1]
    mine_policy = batched.seed_policy(0, _fresh_policy(n_obs, _space(env_id, env_kwargs), config))
    return ref, mine, ref_policy, mine_policy


def _space(env_id, env_kwargs=None):
    from agents.common import make_env
    env = make_env(env_id, env_kwargs)
    try:
        return env.action_space
    finally:
        env.close()


def _assert_close_policies(a, b, rtol=1e-4, atol=1e-5):
    if a is None:
        return
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.shape == q.shape, name
        assert torch.allclose(p, q, rtol=rtol, atol=atol), (name, float((p - q).abs().max()))


# -------------------------------------------------------------------------------- batch of one
def test_initialisation_is_the_unbatched_agents_per_seed():
    seeds = [0, 1, 17]
    space = _space("CartPole-v1")
    rngs = [np.random.default_rng(s) for s in seeds]
    for rng in rngs:  # train draws the extra env seeds before the torch seed
        rng.integers(0, 2**31 - 1, size=SMALL.n_envs - 1)
    batched = ppo_batched.init_policy(4, space, SMALL, rngs)
    for b, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        rng.integers(0, 2**31 - 1, size=SMALL.n_envs - 1)
        ref = ppo.Policy(4, space, SMALL, torch.Generator().manual_seed(torch_generator_seed(rng)))
        mine = batched.seed_policy(b, _fresh_policy(4, space, SMALL))
        for p, r in zip(mine.parameters(), ref.parameters()):
            assert torch.equal(p, r)
    for p in batched.params.tensors()[::2]:  # every weight differs between every pair of seeds
        for i in range(len(seeds)):
            for j in range(i + 1, len(seeds)):
                assert not torch.allclose(p[i], p[j])


@pytest.mark.parametrize("config", [SMALL, ppo.Config()], ids=["small", "defaults"])
def test_batch_of_one_follows_the_unbatched_agent(monkeypatch, config):
    steps = max(3000, 3 * config.n_envs * config.n_steps)  # a few thousand steps, at least 3 updates
    ref, mine, ref_policy, mine_policy = _compare_with_unbatched(monkeypatch, "CartPole-v1", config, 11, steps)
    # same episodes: same env steps, returns and lengths (same sampled actions)
    assert len(ref.rows) > 20 and _key(ref.rows) == _key(mine.rows)
    # same per-update diagnostics (last minibatch's losses) to float tolerance
    for k in ("policy_loss", "value_loss", "entropy"):
        la = np.array([r[k] for r in ref.rows if k in r])
        lb = np.array([r[k] for r in mine.rows if k in r])
        assert len(la) == len(lb) > 10 and np.allclose(la, lb, rtol=1e-4, atol=1e-6), k
    # and the networks after all updates agree to float tolerance
    _assert_close_policies(ref_policy, mine_policy)


def test_batch_of_one_with_normalisation_truncation_and_evaluation(monkeypatch):
    # a 25-step time limit truncates often (the bootstrap path); obs/reward normalisation, no value
    # clipping, raw advantages; evaluation rounds must match the unbatched agent's too
    cfg = ppo.Config(n_envs=3, n_steps=40, n_minibatches=2, n_epochs=3, hidden=16, normalize_obs=True,
                     normalize_reward=True, clip_vloss=False, normalize_advantage=False, anneal_lr=False)
    ev = Evaluation(600, 2, 99)
    ref, mine, ref_policy, mine_policy = _compare_with_unbatched(
        monkeypatch, "CartPole-v1", cfg, 4, 2000, env_kwargs={"max_episode_steps": 25}, evaluation=ev)
    train = [r for r in ref.rows if r["mode"] == "train"]
    assert sum(r["length"] == 25 for r in train) > 20  # truncations happened
    assert [r["step"] for r in ref.rows if r["mode"] == "eval" and r["episode"] == 0] == [600, 1200, 1800]
    assert _key(ref.rows) == _key(mine.rows)
    _assert_close_policies(ref_policy, mine_policy)


def test_batch_of_one_follows_the_unbatched_agent_with_box_actions(monkeypatch):
    cfg = ppo.Config(n_envs=2, n_steps=100, n_minibatches=2, n_epochs=2, hidden=16, normalize_obs=True,
                     normalize_reward=True, gamma=0.9, init_log_std=-0.5)
    ref, mine, ref_policy, mine_policy = _compare_with_unbatched(monkeypatch, "Pendulum-v1", cfg, 3, 800)
    assert len(ref.rows) == len(mine.rows) == 4  # 2 copies x 400 steps, 200-step limit
    assert [(r["step"], r["length"]) for r in ref.rows] == [(r["step"], r["length"]) for r in mine.rows]
    assert np.allclose([r["return"] for r in ref.rows], [r["return"] for r in mine.rows], rtol=1e-5, atol=1e-4)
    _assert_close_policies(ref_policy, mine_policy)  # (includes the log std)


# ------------------------------------------------------------------------------- independence
def test_seeds_in_a_batch_are_independent_and_do_not_depend_on_their_companions():
    steps = 1500
    together = _run_batch([5, 21, 8, 13], steps)
    traces = [tuple((r["step"], r["length"]) for r in log.rows) for log in together]
    assert len(set(traces)) == 4  # different trajectories for every seed
    (alone,) = _run_batch([21], steps)
    # batch membership does not change a seed's run: same episodes, same losses (float tolerance)
    assert _key(together[1].rows) == _key(alone.rows)
    for k in ("policy_loss", "value_loss", "entropy"):
        assert np.allclose([r.get(k, 0.0) for r in together[1].rows], [r.get(k, 0.0) for r in alone.rows],
                           rtol=1e-5, atol=1e-7)
    # the same seed twice in one batch gives the same run twice (no shared stream)
    a, b = _run_batch([9, 9], 800)
    assert a.rows == b.rows


def test_a_seeds_networks_give_the_same_bits_in_any_batch():
    # (the value head has one output column: CPU baddbmm would take another kernel at B = 1)
    space = _space("CartPole-v1")
    seeds = [4, 5, 6, 7]
    big = ppo_batched.init_policy(4, space, SMALL, [np.random.default_rng(s) for s in seeds])
    one = ppo_batched.init_policy(4, space, SMALL, [np.random.default_rng(6)])
    x = torch.randn(4, 256, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(big.value(x)[2], one.value(x[2:3])[0])
        assert torch.equal(big.actor(x)[2], one.actor(x[2:3])[0])


def test_two_calls_give_bitwise_identical_logs():
    ev = Evaluation(500, 2, 7)
    first = _run_batch([1, 2, 3], 1000, evaluation=ev)
    second = _run_batch([1, 2, 3], 1000, evaluation=ev)
    assert [log.rows for log in first] == [log.rows for log in second]
    assert all(any(r["mode"] == "eval" for r in log.rows) for log in first)


def test_gymnasium_fallback_equals_the_vector_env_path_with_exact_step_accounting():
    cfg = ppo.Config(n_envs=3, n_steps=16, n_epochs=2, hidden=16)
    ev = Evaluation(250, 2, 99)
    steps = 700  # not a multiple of n_envs: the last partial vector step is not taken
    vec = _run_batch([0, 1], steps, cfg, evaluation=ev)
    ENV_STEPS["n"] = 0
    gym_logs = _run_batch([0, 1], steps, cfg, env_id=COUNTING_CARTPOLE, evaluation=ev)  # no numpy version
    eval_len = sum(r["length"] for log in gym_logs for r in log.rows if r["mode"] == "eval")
    assert ENV_STEPS["n"] == 2 * (steps - steps % 3) + eval_len  # per seed, whole vector steps within the budget
    for a, b in zip(vec, gym_logs):
        assert _key(a.rows) == _key(b.rows)
        assert max(r["step"] for r in a.rows if r["mode"] == "train") <= steps
        assert {r["step"] for r in a.rows if r["mode"] == "eval"} == {252, 501}  # first vector step at/after 250, 500


# ---------------------------------------------------------------------------------- Box, errors
def test_box_actions_on_pendulum_smoke():
    cfg = ppo.Config(n_envs=2, n_steps=128, n_epochs=2, normalize_obs=True, normalize_reward=True, gamma=0.9)
    logs = _run_batch([0, 1], 1200, cfg, env_id="Pendulum-v1", evaluation=Evaluation(1200, 1, 7))
    for log in logs:
        train = [r for r in log.rows if r["mode"] == "train"]
        assert len(train) == 6 and all(r["length"] == 200 for r in train)  # 2 copies x 600 steps
        assert [r["mode"] for r in log.rows].count("eval") == 1 and np.isfinite(log.returns()).all()
    assert logs[0].returns().tolist() != logs[1].returns().tolist()


_MULTI_BINARY = "EvalkitTest/PPOBatchedMultiBinary-v0"


class _MultiBinaryEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.MultiBinary(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


if _MULTI_BINARY not in gym.registry:
    gym.register(id=_MULTI_BINARY, entry_point=_MultiBinaryEnv, max_episode_steps=10)


def test_clear_errors():
    with pytest.raises(ValueError, match="one log"):
        ppo_batched.train_batch("CartPole-v1", SMALL, [1, 2, 3], 100, [ListLog(), ListLog()])
    with pytest.raises(ValueError, match="one evaluation"):
        ppo_batched.train_batch("CartPole-v1", SMALL, [1, 2], 100, [ListLog(), ListLog()],
                                evaluation=[Evaluation(50, 1, 0)])
    with pytest.raises(ValueError, match="Discrete or Box"):
        ppo_batched.train_batch(_MULTI_BINARY, SMALL, [1], 100, [ListLog()])
    ppo_batched.train_batch("CartPole-v1", SMALL, [], 100, [])  # nothing to do


LEAD_LINE = "from agents.ppo_batched import train_batch  # noqa: E402,F401  (seed-batched PPO)"


def test_either_module_may_be_imported_first(tmp_path):
    # agents/ppo.py re-exports train_batch at its bottom (how the runner finds batching); with that
    # line in place, importing agents.ppo_batched first or agents.ppo first must both work
    root = Path(__file__).parents[1]
    shutil.copytree(root / "agents", tmp_path / "agents", ignore=shutil.ignore_patterns("__pycache__"))
    ppo_py = tmp_path / "agents" / "ppo.py"
    if "agents.ppo_batched import train_batch" not in ppo_py.read_text():
        ppo_py.write_text(ppo_py.read_text() + "\n\n" + LEAD_LINE + "\n")
    code = ("import sys\n"
            "import agents.ppo_batched, agents.ppo\n"
            "assert agents.ppo.train_batch is agents.ppo_batched.train_batch\n"
            "for k in [k for k in sys.modules if k == 'agents' or k.startswith('agents.')]: del sys.modules[k]\n"
            "import agents.ppo as p\n"
            "assert p.train_batch is sys.modules['agents.ppo_batched'].train_batch\n"
            "assert p.__file__.startswith(sys.argv[1])\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=tmp_path)
