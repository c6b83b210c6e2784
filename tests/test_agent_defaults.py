"""Issue 21: one hyperparameter vocabulary, per-env tuned defaults, automatic seed blocks."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from agents import a2c, dqn, ppo, reinforce
from agents.common import RENAMED, hyperparameters
from evalkit import cli, registry, spec

DEEP = (dqn, ppo, a2c, reinforce)

STUDY = """
name = "defaults"
seed = 3
runs = {runs}
{extra}
[envs.{env}]
steps = 1000
[algorithms.x]
agent = "{agent}"
{config}
"""


def study(write_study, agent="dqn", env="CartPole-v1", config="", runs=2, extra="", name="s.toml"):
    return spec.load_study(write_study(STUDY.format(agent=agent, env=env, config=config, runs=runs, extra=extra),
                                       name))


# ---------------------------------------------------------------- one vocabulary

def test_no_builtin_agent_uses_an_old_name_and_shared_names_agree():
    for name in registry.builtin_names():
        info = registry.resolve_agent(name)
        assert not set(info.hyperparameters) & set(RENAMED), name
    for mod in DEEP:  # the optimizer step size and the shared knobs have one name everywhere
        fields = set(hyperparameters(mod.Config))
        assert {"learning_rate", "gamma", "hidden", "max_grad_norm"} <= fields, mod.NAME
    for mod in (ppo, a2c, reinforce):
        assert {"ent_coef", "normalize_advantage"} <= set(hyperparameters(mod.Config)), mod.NAME


@pytest.mark.parametrize("agent,line,old,new", [
    ("a2c", "config = { lr = 1e-3 }", "lr", "learning_rate"),
    ("reinforce", "config = { value_lr = 1e-3 }", "value_lr", "value_learning_rate"),
    ("ppo", "config = { norm_adv = false }", "norm_adv", "normalize_advantage"),
    ("a2c", "sweep = { normalize_advantages = [true, false] }", "normalize_advantages", "normalize_advantage"),
])
def test_an_old_name_is_refused_with_a_one_line_hint(write_study, capsys, agent, line, old, new):
    path = write_study(STUDY.format(agent=agent, env="CartPole-v1", config=line, runs=2, extra=""))
    assert cli.main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{new}'" in err and f"old name '{old}'" in err, err


# ---------------------------------------------------------------- per-env defaults

@pytest.mark.parametrize("mod", DEEP)
def test_env_defaults_are_valid_configs_of_the_agent(mod):
    import gymnasium as gym
    info = hyperparameters(mod.Config)
    for env_id, overrides in mod.ENV_DEFAULTS.items():
        assert env_id in gym.registry, env_id
        assert env_id in mod.ENV_DEFAULTS_SOURCE, env_id
        mod.Config(**overrides)  # every key is a field
        for k, v in overrides.items():
            h = info[k]
            assert h.choices is None or v in h.choices, (env_id, k)
            assert (h.low is None or v >= h.low) and (h.high is None or v <= h.high), (env_id, k)


def test_a_study_without_config_gets_the_env_defaults_and_the_study_config_wins(write_study):
    plain = spec.expand(study(write_study))[0]
    expected = {**{f.name: f.default for f in dataclasses.fields(dqn.Config)}, **dqn.ENV_DEFAULTS["CartPole-v1"]}
    assert plain.config == expected
    assert plain.config["hidden"] == 128 and plain.config["train_frequency"] == 4
    over = spec.expand(study(write_study, config="config = { hidden = 64 }", name="o.toml"))[0]
    assert over.config == {**expected, "hidden": 64}
    assert over.run_id != plain.run_id  # the resolved config is what the id hashes
    # an env the agent ships nothing for: the Config defaults
    other = spec.expand(study(write_study, env="Pendulum-v1", agent="reinforce", name="p.toml"))[0]
    assert other.config == {f.name: f.default for f in dataclasses.fields(reinforce.Config)}


def test_ppo_pendulum_defaults_are_the_tuned_setting(write_study):
    run = spec.expand(study(write_study, agent="ppo", env="Pendulum-v1"))[0]
    assert run.config["n_envs"] == 4 and run.config["gamma"] == 0.9 and run.config["clip_vloss"] is False


def test_lunarlander_defaults_are_rl_zoo3s_with_dqn_step_size_annealed(write_study):
    # issue 21 item 5 (README, LunarLander): rl-zoo3's settings; DQN's constant step size let the
    # last greedy evaluation fall (IQM 229 @250k -> 155 @300k over 10 seeds), so it is annealed to 0
    d = spec.expand(study(write_study, env="LunarLander-v3"))[0].config
    assert d["anneal_lr"] is True and d["learning_rate"] == 6.3e-4 and d["hidden"] == 256
    assert d["train_frequency"] == 4 and d["gradient_steps"] == 4 and d["target_update_interval"] == 250
    p = spec.expand(study(write_study, agent="ppo", env="LunarLander-v3", name="l.toml"))[0].config
    assert (p["n_envs"], p["n_steps"], p["gamma"], p["gae_lambda"], p["ent_coef"]) == (16, 1024, 0.999, 0.98, 0.01)


def test_agents_command_shows_the_env_defaults(capsys):
    assert cli.main(["agents", "dqn", "--env", "CartPole-v1"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.strip().startswith("*hidden"))
    assert "= 128" in line and "tuned per env" in out
    assert cli.main(["agents", "dqn", "--env", "Pendulum-v1"]) == 0
    out = capsys.readouterr().out
    assert "generic defaults" in out and "*" not in "".join(l[3] for l in out.splitlines() if len(l) > 3)
    assert cli.main(["agents", "dqn", "--env", "NoSuchEnv-v9"]) == 2
    assert "NoSuchEnv-v9" in capsys.readouterr().err


# ---------------------------------------------------------------- automatic seed blocks

@pytest.mark.parametrize("n", [8, 32, 128])
def test_auto_blocks_never_batch_where_batching_was_measured_slower(n):
    # DQN at rl-zoo3's width 256: measured 0.7x through evalkit run -> unbatched by default
    assert dqn.batch_block({"hidden": 256}, n)[0] == 1
    assert dqn.batch_block({"hidden": 1024}, n)[0] == 1
    # PPO at its default width: 4.2x per process -> blocks of 8
    assert ppo.batch_block({"hidden": 64}, n)[0] == 8
    assert ppo.batch_block({"hidden": 256}, n)[0] == 1
    # DQN at width 64, where batching helps: blocks from 16 seeds on
    assert dqn.batch_block({"hidden": 64}, n)[0] == {8: 1, 32: 16, 128: 32}[n]
    assert dqn.batch_block({"hidden": 64}, 16)[0] == 8 and dqn.batch_block({"hidden": 128}, 32)[0] == 8


def test_auto_block_is_a_pure_function_of_the_study_and_is_printed_in_dry_run(write_study, capsys):
    s = study(write_study, config="config = { hidden = 64 }", runs=32)
    runs = spec.expand(s)
    assert {r.batch for r in runs} == {16} and [r.run_id for r in runs] == [r.run_id for r in spec.expand(s)]
    wide = spec.expand(study(write_study, config="config = { hidden = 256 }", runs=32, name="w.toml"))
    assert {r.batch for r in wide} == {1}
    forced = spec.expand(study(write_study, config="config = { hidden = 256 }", runs=32, extra="batch_seeds = 4",
                               name="f.toml"))
    assert {r.batch for r in forced} == {4}
    path = write_study(STUDY.format(agent="dqn", env="CartPole-v1", config="config = { hidden = 256 }", runs=32,
                                    extra=""), "d.toml")
    assert cli.main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "seed blocks: x on CartPole-v1 (default): 1 seed per process (dqn hidden 256" in out


def test_agents_without_a_block_table_keep_the_fallback(write_study):
    s = study(write_study, agent="tests.fake_batched:train", config="config = { mean = 1.0 }", runs=5)
    mod = importlib.import_module("tests.fake_batched")
    assert not hasattr(mod, "batch_block")
    assert {r.batch for r in spec.expand(s)} == {spec.DEFAULT_BATCH}


# ---------------------------------------------------------------- orphans named

def test_status_names_orphans_and_what_changed(write_study, tmp_path):
    from evalkit import runner, status
    text = STUDY.format(agent="tests.fake_batched:train", env="CartPole-v1", config="config = {{ mean = {m} }}",
                        runs=2, extra="batch_seeds = 1")
    first = spec.load_study(write_study(text.format(m="1.0"), "a.toml"))
    runner.run_study(first, tmp_path, runner.Options(backend="serial", progress=False))
    second = spec.load_study(write_study(text.format(m="2.0"), "a.toml"))
    table = status.study_status(second, spec.results_dir(second, tmp_path))
    assert table.attrs["orphans"] == 2
    assert table.attrs["orphan_groups"] == ["x on CartPole-v1 (eval): 2 -- mean 1.0 -> 2.0"]
    assert "  x on CartPole-v1 (eval): 2 -- mean 1.0 -> 2.0" in status.render(table)


def test_orphans_of_a_renamed_hyperparameter_say_so(write_study):
    from evalkit import status
    runs = spec.expand(study(write_study, agent="a2c", config="config = { learning_rate = 1e-3 }"))
    old = [{"algorithm": r.algorithm, "env": r.env, "phase": r.phase, "seed_index": r.seed_index, "steps": r.steps,
            "config": {**{k: v for k, v in r.config.items() if k not in ("learning_rate", "normalize_advantage")},
                       "lr": 1e-3, "normalize_advantages": False}} for r in runs]
    assert status.orphan_groups(old, runs) == [
        "x on CartPole-v1 (eval): 2 -- renamed lr -> learning_rate; renamed normalize_advantages -> normalize_advantage"]
