"""Security: data never executes, names never escape the results folder, Ray stays on loopback (issue 12)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from evalkit import importer, spec, store
from evalkit.errors import EvalkitError, StudyError

BASE = """
name = "{name}"
[envs.CartPole-v1]
steps = 10
[algorithms.{alg}]
agent = "random"
"""


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/evalkit-pwned",))


def test_npz_with_a_pickle_payload_is_refused_without_running_it(tmp_path):
    canary = Path("/tmp/evalkit-pwned")
    canary.unlink(missing_ok=True)
    path = tmp_path / "scores.npz"
    np.savez(path, dqn=np.array([_Boom()], dtype=object))
    with pytest.raises(EvalkitError, match="refused: the file needs pickle"):
        importer.import_file(path, "x", tmp_path)
    assert not canary.exists()


def test_a_pickle_disguised_as_json_is_just_bad_json(tmp_path):
    path = tmp_path / "scores.json"
    path.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(EvalkitError, match="expected JSON"):
        importer.import_file(path, "x", tmp_path)


@pytest.mark.parametrize("payload", ["=cmd|' /C calc'!A0", "<script>alert(1)</script>", "../../etc", "a/b"])
def test_csv_payloads_in_names_are_refused(tmp_path, payload):
    path = tmp_path / "runs.csv"
    path.write_text(f'algorithm,env,run,step,return\n"{payload}",CartPole-v1,0,1,1.0\n')
    with pytest.raises(EvalkitError, match="column 'algorithm'"):
        importer.import_file(path, "x", tmp_path)


def test_csv_payloads_in_values_are_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("algorithm,env,run,step,return\na,CartPole-v1,0,1,=1+1\n")
    with pytest.raises(EvalkitError, match="column 'return' row 2: expected a number"):
        importer.import_file(path, "x", tmp_path)


def test_loading_a_store_reads_data_only(tmp_path):
    importer.import_file(_csv(tmp_path), "ok", tmp_path)
    table = store.load(tmp_path / "ok")
    assert len(table) == 2 and table["return"].tolist() == [1.0, 2.0]


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "good.csv"
    path.write_text("algorithm,env,run,step,return\na,CartPole-v1,0,1,1.0\na,CartPole-v1,0,2,2.0\n")
    return path


@pytest.mark.parametrize("name,alg,key", [("../escape", "a", "name"), ("a/b", "a", "name"), ("ok", "..", "algorithms.."),
                                          ("ok", "x.y/../../z", None), (".hidden", "a", "name")])
def test_names_that_would_leave_the_results_folder_are_rejected(write_study, name, alg, key):
    text = BASE.format(name=name, alg=f'"{alg}"')
    with pytest.raises(StudyError, match="path separators"):
        spec.load_study(write_study(text))


def test_import_name_cannot_escape_the_root(tmp_path):
    with pytest.raises(EvalkitError, match="--name"):
        importer.import_file(_csv(tmp_path), "../../outside", tmp_path)


def _listening_sockets(pids: set[int]) -> list[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                out.append(parts[1].split(":")[0])
    return out


@pytest.mark.ray
def test_embedded_ray_listens_on_loopback_only(ray_instance):
    assert ray_instance.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gcs_server" in cmd or b"raylet" in cmd or b"ray::" in cmd or int(pid) == os.getpid():
            pids.add(int(pid))
    addresses = _listening_sockets(pids)
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    assert addresses and set(addresses) <= loopback, addresses
