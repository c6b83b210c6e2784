"""evalkit import: long tables and rliable-style score matrices become study stores every analysis reads."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.dataset as ds

from evalkit import cli, importer, metrics, spec, store


def test_csv_long_table_with_hyperparameters_and_phases(tmp_path):
    path = tmp_path / "logs.csv"
    rows = ["algorithm,env,seed,step,return,length,hp.lr,phase"]
    for alg in ("a", "b"):
        for seed in range(3):
            for lr in (0.1, 0.01):
                rows += [f"{alg},E1,{seed},{s},{s / 10 + lr},5,{lr},tune" for s in (10, 20)]
            rows += [f"{alg},E1,{seed},{s},{s / 10},5,0.1,eval" for s in (10, 20)]
    path.write_text("\n".join(rows) + "\n")
    assert importer.import_file(path, "logs", tmp_path) == 2 * 3 * 3
    table = store.load(tmp_path / "logs")
    assert set(table["phase"]) == {"tune", "eval"} and set(table["hp.lr"]) == {0.1, 0.01}
    runs = metrics.run_scores(table)
    assert runs.groupby(["algorithm", "phase"]).size().to_dict() == {("a", "eval"): 3, ("a", "tune"): 6,
                                                                       ("b", "eval"): 3, ("b", "tune"): 6}
    study = spec.study_from_store(tmp_path / "logs")
    assert [a.name for a in study.algorithms] == ["a", "b"] and study.algorithms[0].sweep[0].name == "lr"
    # hive-partitioned Parquet: pyarrow reads the same store
    assert ds.dataset(tmp_path / "logs" / "runs", format="parquet", partitioning="hive").count_rows() == len(table)


def test_npz_and_json_score_matrices(tmp_path, capsys):
    rng = np.random.default_rng(0)
    scores = {"dqn": rng.normal(size=(5, 3)), "ppo": rng.normal(1, size=(5, 3))}
    np.savez(tmp_path / "s.npz", tasks=np.array(["Pong", "Breakout", "Seaquest"]), **scores)
    assert cli.main(["import", str(tmp_path / "s.npz"), "--name", "atari", "--root", str(tmp_path)]) == 0
    runs = metrics.run_scores(store.load(tmp_path / "atari"))
    matrices, envs = metrics.score_matrices(runs)
    assert envs == ["Breakout", "Pong", "Seaquest"]
    assert np.allclose(matrices["dqn"][:, 1], scores["dqn"][:, 0])  # Pong column
    (tmp_path / "s.json").write_text(json.dumps({"tasks": ["x"], "scores": {"a": [[1.0], [2.0]]}}))
    assert importer.import_file(tmp_path / "s.json", "js", tmp_path) == 2
    assert cli.main(["report", str(tmp_path / "atari"), "--reps", "200"]) == 0
    assert "Pong" in capsys.readouterr().out
