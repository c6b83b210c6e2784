"""evalkit import on files written by the real producers, generated here: SB3's Monitor and
TensorBoard logger, torch's SummaryWriter with CleanRL's tags, rl-zoo3-shaped folders (written with
yaml.dump of an OrderedDict, as rl-zoo3 does), W&B-shaped exports and JSON score files."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import yaml

from evalkit import cli, importers, metrics, spec, store
from evalkit.errors import EvalkitError

pytest.importorskip("stable_baselines3")
pytest.importorskip("tensorboard")


@pytest.fixture
def one_torch_thread():
    """SB3 on two shared cores: one torch thread is several times faster than oversubscribing."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cleanrl_run(root, env, alg, seed, lr, rng, total=3000):
    """A run the way CleanRL's dqn.py logs it (same tags, same hyperparameter table)."""
    from torch.utils.tensorboard import SummaryWriter
    args = {"exp_name": alg, "seed": seed, "torch_deterministic": True, "cuda": False, "track": False,
            "env_id": env, "total_timesteps": total, "learning_rate": lr, "gamma": 0.99}
    run_name = f"{env}__{alg}__{seed}__{1700000000 + int(rng.integers(1_000_000))}"
    writer = SummaryWriter(str(root / "runs" / run_name))
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{k}|{v}|" for k, v in args.items()])))
    step, episodes = 0, []
    while True:
        length = int(rng.integers(9, 60))
        if step + length > total:
            break
        step += length
        ret = float(length) + 1000 * lr
        writer.add_scalar("charts/episodic_return", ret, step)
        writer.add_scalar("charts/episodic_length", length, step)
        episodes.append((step, ret, length))
        if step % 7 == 0:
            writer.add_scalar("losses/td_loss", 0.5, step)
    writer.close()
    return pd.DataFrame(episodes, columns=["step", "return", "length"])


@pytest.fixture(scope="module")
def cleanrl_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("cleanrl")
    rng = np.random.default_rng(1)
    written = {}
    for alg in ("dqn", "c51"):
        for lr in (0.0001, 0.00025, 0.001):
            for seed in (1, 2, 3):
                written[(alg, lr, seed)] = cleanrl_run(root, "CartPole-v1", alg, seed, lr, rng)
    return root, written


def test_cleanrl_tensorboard_runs_with_hyperparameters_feed_sensitivity_audit_and_report(cleanrl_sweep, tmp_path, capsys):
    root, written = cleanrl_sweep
    assert cli.main(["import", str(root / "runs"), "--name", "cleanrl", "--root", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "imported 18 new and 0 updated runs from 18 sources (18 tensorboard)" in out
    table = store.load(tmp_path / "cleanrl")
    assert set(table["hp.learning_rate"]) == {0.0001, 0.00025, 0.001} and set(table["hp.gamma"]) == {0.99}
    assert "hp.seed" not in table and "hp.exp_name" not in table and "hp.track" not in table
    for (alg, lr, seed), df in written.items():
        run = table[(table["algorithm"] == alg) & (table["hp.learning_rate"] == lr) & (table["seed"] == seed)]
        assert run["step"].tolist() == df["step"].tolist()
        assert np.allclose(run["return"], df["return"], rtol=1e-6)  # float32 in the event file
        assert run["length"].tolist() == df["length"].tolist()
        assert run["budget"].iloc[0] == 3000 and run["env"].iloc[0] == "CartPole-v1"
    study = spec.study_from_store(tmp_path / "cleanrl")
    assert [a.sweep[0].name for a in study.algorithms] == ["learning_rate", "learning_rate"]
    assert cli.main(["sensitivity", str(tmp_path / "cleanrl"), "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "dqn" in out and "c51" in out
    assert cli.main(["audit", str(tmp_path / "cleanrl"), "--reps", "50"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the terminal output wraps at 100 columns
    assert "imported data: the audit can check" in out and "cannot check budget" in out and "learning_rate in [0.0001, 0.001] (3 values)" in out
    assert cli.main(["report", str(tmp_path / "cleanrl"), "--reps", "100", "--text-only"]) == 0
    assert "CartPole-v1" in capsys.readouterr().out


def test_sweep_imported_as_stage_one_and_final_runs_as_stage_two_feed_chs(cleanrl_sweep, tmp_path, capsys):
    root, _ = cleanrl_sweep
    rng = np.random.default_rng(5)
    for alg in ("dqn", "c51"):
        for seed in (11, 12, 13):
            cleanrl_run(tmp_path / "final", "CartPole-v1", alg, seed, 0.001, rng)
    base = ["--name", "chs", "--root", str(tmp_path / "r")]
    assert cli.main(["import", str(root / "runs"), *base, "--phase", "tune", "--workers", "1"]) == 0
    assert cli.main(["import", str(tmp_path / "final" / "runs"), *base]) == 0
    capsys.readouterr()
    assert cli.main(["chs", str(tmp_path / "r" / "chs"), "--reps", "100"]) == 0
    out = capsys.readouterr().out
    assert "CHS score of the stage-2 runs" in out and "dqn" in out and "c51" in out
    assert cli.main(["sensitivity", str(tmp_path / "r" / "chs"), "--reps", "50"]) == 0
    assert "on the tune runs" in " ".join(capsys.readouterr().out.split())  # the imported sweep, not stage 2
    assert cli.main(["audit", str(tmp_path / "r" / "chs"), "--reps", "50"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the terminal output wraps at 100 columns
    assert "seeds (recorded seeds of tuning and evaluation runs)" in out and "it cannot check" not in out
    assert "[pass] seeds 3 evaluation seeds, disjoint from 3 tuning seeds" in out


def test_reimport_adds_only_new_runs_and_rereads_changed_ones(cleanrl_sweep, tmp_path, capsys):
    root, _ = cleanrl_sweep
    s1 = importers.import_path(root / "runs", "again", tmp_path)
    s2 = importers.import_path(root / "runs", "again", tmp_path)
    assert (s1.added, s1.unchanged) == (18, 0) and (s2.added, s2.replaced, s2.unchanged, s2.sources) == (0, 0, 18, 0)
    extra = root.parent / "extra"
    cleanrl_run(extra, "CartPole-v1", "dqn", 4, 0.001, np.random.default_rng(9))
    s3 = importers.import_path(extra / "runs", "again", tmp_path)
    assert (s3.added, s3.unchanged) == (1, 0)
    assert store.load(tmp_path / "again")["run_id"].nunique() == 19


def test_sb3_monitor_and_tensorboard_logger(tmp_path, one_torch_thread):
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import HParam
    from stable_baselines3.common.monitor import Monitor

    class RecordHyperparameters(BaseCallback):  # SB3's documented way to log hyperparameters
        def _on_training_start(self) -> None:
            hp = {"learning_rate": self.model.learning_rate, "n_steps": self.model.n_steps}
            self.logger.record("hparams", HParam(hp, {"rollout/ep_rew_mean": 0}), exclude=("stdout", "log", "json", "csv"))

        def _on_step(self) -> bool:
            return True
    logs = tmp_path / "logs"
    (logs / "ppo").mkdir(parents=True)
    env = Monitor(gym.make("CartPole-v1"), str(logs / "ppo" / "seed3"))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=3, device="cpu",
                tensorboard_log=str(logs / "tb" / "CartPole-v1"))
    model.learn(320, callback=RecordHyperparameters())
    env.close()
    written = pd.read_csv(logs / "ppo" / "seed3.monitor.csv", skiprows=1)
    assert len(written) >= 5
    # Monitor: env from its header, algorithm and seed from the path
    s = importers.import_path(logs / "ppo", "sb3", tmp_path / "r", pattern="{algorithm}/seed{seed}")
    assert s.added == 1 and s.formats == {"monitor": 1}
    run = store.load(tmp_path / "r" / "sb3")
    assert run["env"].iloc[0] == "CartPole-v1" and run["algorithm"].iloc[0] == "ppo" and run["seed"].iloc[0] == 3
    assert run["return"].tolist() == written["r"].tolist() and run["length"].tolist() == written["l"].tolist()
    assert run["step"].tolist() == written["l"].cumsum().tolist()
    # the SB3 TensorBoard logger: rollout/ep_rew_mean, env and seed only from the path
    with pytest.raises(EvalkitError, match=r"PPO_1: algorithm, env, seed not recorded in the files; give --pattern"):
        importers.import_path(logs / "tb", "tb", tmp_path / "r")
    s = importers.import_path(logs / "tb", "tb", tmp_path / "r", pattern="{env}/{algorithm}_{run}")
    assert s.added == 1 and any("rollout/ep_rew_mean" in n for n in s.notes)
    tb = store.load(tmp_path / "r" / "tb")
    tbparse = pytest.importorskip("tbparse")  # an independent reader of the same file
    ref = tbparse.SummaryReader(str(logs / "tb" / "CartPole-v1" / "PPO_1")).scalars
    ref = ref[ref["tag"] == "rollout/ep_rew_mean"]
    assert tb["step"].tolist() == ref["step"].tolist() and np.allclose(tb["return"], ref["value"])
    assert (tb["algorithm"].iloc[0], tb["env"].iloc[0], tb["seed"].iloc[0]) == ("PPO", "CartPole-v1", 1)
    assert (tb["hp.learning_rate"].iloc[0], tb["hp.n_steps"].iloc[0]) == (0.0003, 64)  # from SB3's HParam record
    # the mean of the last 100 Monitor episodes at the last logging step
    last = tb["step"].max()
    done = written[written["l"].cumsum() <= last]["r"]
    assert tb[tb["step"] == last]["return"].iloc[0] == pytest.approx(done.tail(100).mean(), rel=1e-5)


def zoo_run(logs, algo, env, n, seed, config, total=192):
    """An rl-zoo3 run folder: config.yml/args.yml written as rl-zoo3 writes them (yaml.dump of an
    OrderedDict), monitor files of a 2-env VecEnv and EvalCallback's evaluations.npz from SB3 itself."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    run_dir = logs / algo / f"{env}_{n}"
    (run_dir / env).mkdir(parents=True)
    with open(run_dir / env / "config.yml", "w") as f:
        yaml.dump(OrderedDict(sorted({**config, "n_timesteps": total, "policy": "MlpPolicy"}.items())), f)
    args = {"algo": algo, "env": env, "seed": seed, "n_timesteps": -1, "log_folder": str(logs), "eval_freq": 64}
    with open(run_dir / env / "args.yml", "w") as f:
        yaml.dump(OrderedDict(sorted(args.items())), f)
    venv = make_vec_env(env, n_envs=2, seed=seed, monitor_dir=str(run_dir))
    eval_env = make_vec_env(env, n_envs=1, seed=seed + 100)
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", n_epochs=1, batch_size=32, **config)
    model.learn(total, callback=EvalCallback(eval_env, eval_freq=32, n_eval_episodes=2, log_path=str(run_dir),
                                             verbose=0))
    venv.close()
    return run_dir


def test_rl_zoo3_folders_with_ordered_dict_yaml(tmp_path, one_torch_thread):
    logs = tmp_path / "logs"
    dirs = [zoo_run(logs, "ppo", "CartPole-v1", n, seed, {"n_steps": ns, "learning_rate": 0.0003})
            for n, (seed, ns) in enumerate([(11, 32), (12, 48)], start=1)]
    text = (dirs[0] / "CartPole-v1" / "config.yml").read_text()
    assert "!!python/object/apply:collections.OrderedDict" in text
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(text)  # plain SafeLoader refuses the tag: our loader maps exactly that one
    s = importers.import_path(logs, "zoo", tmp_path / "r")
    assert s.added == 2 and s.formats == {"zoo": 2}
    table = store.load(tmp_path / "r" / "zoo")
    assert set(table["hp.n_steps"]) == {32, 48} and set(table["hp.policy"]) == {"MlpPolicy"}
    assert sorted(table.drop_duplicates("run_id")["seed"]) == [11, 12]
    assert sorted(table.drop_duplicates("run_id")["seed_index"]) == [1, 2]  # the folder's run index
    for d, seed in zip(dirs, (11, 12)):
        run = table[table["seed"] == seed]
        ev = np.load(d / "evaluations.npz")
        got = run[run["mode"] == "eval"]
        assert got["return"].tolist() == ev["results"].reshape(-1).tolist()
        assert got["step"].tolist() == np.repeat(ev["timesteps"], 2).tolist()
        m0, m1 = (pd.read_csv(d / f"{i}.monitor.csv", skiprows=1) for i in (0, 1))
        train = run[run["mode"] == "train"]
        assert len(train) == len(m0) + len(m1) and sorted(train["return"]) == sorted([*m0["r"], *m1["r"]])
        # lockstep VecEnv: 2 x the sub-environment's own cumulative steps
        assert set(2 * m0["l"].cumsum()) <= set(train["step"])
    scores = metrics.run_scores(table, "final", mode="eval")
    assert scores["score"].notna().all()


def test_yaml_with_any_other_python_tag_is_refused_without_running_it(tmp_path):
    logs = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    (logs / "CartPole-v1").mkdir(parents=True)
    canary = tmp_path / "pwned"
    (logs / "CartPole-v1" / "config.yml").write_text(f"!!python/object/apply:os.system ['touch {canary}']\n")
    np.savez(logs / "evaluations.npz", timesteps=np.array([10]), results=np.array([[1.0]]))
    with pytest.raises(EvalkitError, match=r"config.yml: expected plain YAML .*could not determine a constructor"):
        importers.import_path(tmp_path / "logs", "x", tmp_path / "r")
    assert not canary.exists() and not (tmp_path / "r" / "x").exists()


def test_wandb_chart_export_with_run_folder_configs(tmp_path):
    runs = {f"CartPole-v1__dqn__{seed}__17000000{seed}": seed for seed in (1, 2)}
    steps = [100, 150, 230, 300, 420]
    header = ["Step"]
    for name in runs:
        header += [f"{name} - charts/episodic_return", f"{name} - charts/episodic_return__MIN",
                   f"{name} - charts/episodic_return__MAX"]
    lines = [",".join(f'"{h}"' for h in header)]
    expected = {}
    for i, step in enumerate(steps):
        row = [str(step)]
        for name, seed in runs.items():
            value = "" if (i + seed) % 3 == 0 else str(10.0 * seed + i)  # W&B leaves cells empty
            if value:
                expected.setdefault(seed, []).append((step, float(value)))
            row += [value, value, value]
        lines.append(",".join(row))
    (tmp_path / "export.csv").write_text("\n".join(lines) + "\n")
    for seed, lr in ((1, 0.001), (2, 0.01)):
        files = tmp_path / "wandb" / f"run-20240101_0000{seed}-abc{seed}" / "files"
        files.mkdir(parents=True)
        (files / "config.yaml").write_text(
            "wandb_version: 1\n\n_wandb:\n  desc: null\n  value:\n    cli_version: 0.16.0\n    python_version: 3.11.7\n"
            f"exp_name:\n  desc: null\n  value: dqn\nseed:\n  desc: null\n  value: {seed}\n"
            f"env_id:\n  desc: null\n  value: CartPole-v1\nlearning_rate:\n  desc: null\n  value: {lr}\n"
            "buffer_size:\n  value: 10000\n")
        (files / "wandb-summary.json").write_text(json.dumps({"charts/episodic_return": 3.0}))
    s = importers.import_path(tmp_path, "wb", tmp_path / "r")
    assert s.added == 2 and s.formats == {"wandb": 1}
    table = store.load(tmp_path / "r" / "wb")
    for seed, rows in expected.items():
        run = table[table["seed"] == seed]
        assert list(zip(run["step"], run["return"])) == rows
        assert run["hp.learning_rate"].iloc[0] == {1: 0.001, 2: 0.01}[seed] and run["hp.buffer_size"].iloc[0] == 10000
    assert not any(c.startswith("hp._wandb") or c == "hp.wandb_version" for c in table.columns)


def test_json_score_files_with_human_and_random_references(tmp_path, capsys):
    rng = np.random.default_rng(4)
    tasks = ["Pong", "Breakout", "Seaquest"]
    human = {"Pong": 14.6, "Breakout": 30.5, "Seaquest": 42054.7}
    random_ = {"Pong": -20.7, "Breakout": 1.7, "Seaquest": 68.4}
    raw = {}
    for alg in ("DQN", "C51"):
        raw[alg] = {t: (random_[t] + rng.uniform(0, 2, 5) * (human[t] - random_[t])).tolist() for t in tasks}
        (tmp_path / "scores" / alg).parent.mkdir(exist_ok=True)
        (tmp_path / "scores" / f"{alg}.json").write_text(json.dumps(raw[alg]))
    (tmp_path / "human.json").write_text(json.dumps(human))
    (tmp_path / "random.json").write_text(json.dumps(random_))
    ref = f"{tmp_path / 'human.json'},{tmp_path / 'random.json'}"
    assert cli.main(["import", str(tmp_path / "scores"), "--name", "atari", "--root", str(tmp_path / "r"),
                     "--reference", ref]) == 0
    runs = metrics.run_scores(store.load(tmp_path / "r" / "atari"))
    matrices, envs = metrics.score_matrices(runs)
    for alg in ("DQN", "C51"):
        want = np.array([[(raw[alg][t][i] - random_[t]) / (human[t] - random_[t]) for t in envs] for i in range(5)])
        assert np.allclose(matrices[alg], want)
    table = store.load(tmp_path / "r" / "atari")
    assert np.allclose(sorted(table["raw_score"]), sorted(x for a in raw.values() for v in a.values() for x in v))
    # the same references as one CSV give the same scores
    (tmp_path / "refs.csv").write_text("task,random,human\n" + "".join(f"{t},{random_[t]},{human[t]}\n" for t in tasks))
    importers.import_path(tmp_path / "scores", "atari_csv", tmp_path / "r", reference=str(tmp_path / "refs.csv"))
    again, _ = metrics.score_matrices(metrics.run_scores(store.load(tmp_path / "r" / "atari_csv")))
    assert all(np.allclose(again[a], matrices[a]) for a in matrices)
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path / "r" / "atari"), "--reps", "200", "--text-only"]) == 0
    assert "Pong" in capsys.readouterr().out
    # a task without a reference is named
    del human["Seaquest"], random_["Seaquest"]
    (tmp_path / "human.json").write_text(json.dumps(human))
    (tmp_path / "random.json").write_text(json.dumps(random_))
    with pytest.raises(EvalkitError, match="no reference scores for task 'Seaquest'"):
        importers.import_path(tmp_path / "scores", "atari2", tmp_path / "r", reference=ref)
