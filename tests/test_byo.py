"""Bring your own algorithm: import-path agents, command templates, plugins (issue 10)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from evalkit import command, registry, runner, spec, store
from evalkit.errors import EvalkitError, StudyError

SCRIPT_JSONL = """
import argparse, json
p = argparse.ArgumentParser()
p.add_argument('--seed', type=int); p.add_argument('--steps', type=int); p.add_argument('--log')
p.add_argument('--scale', type=float, default=1.0); p.add_argument('--tag', default='')
a = p.parse_args()
with open(a.log, 'w') as f:
    for i in range(5):
        f.write(json.dumps({'step': (i + 1) * a.steps // 5, 'return': a.scale * (a.seed % 7 + i), 'length': 3,
                            'loss': 0.5}) + '\\n')
    f.write(json.dumps({'step': a.steps, 'return': 99.0, 'length': 3, 'mode': 'eval'}) + '\\n')
print('tag:' + a.tag)
"""

STUDY = """
name = "byo"
seed = 5
runs = 2
[envs.CartPole-v1]
steps = 100
[algorithms.mine]
command = "{{python}} {script} --seed {{seed}} --steps {{steps}} --log {{log}} --scale {{scale}} {extra}"
hyperparameters = {{ scale = {{ type = "float", default = 2.0, low = 0, high = 10 }}, tag = {{ type = "str", default = "x" }} }}
{more}
"""


def write_script(tmp_path: Path, body: str, name: str = "algo.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def run_serial(path: Path, root: Path, **kw) -> runner.Summary:
    return runner.run_study(spec.load_study(path), root, runner.Options(backend="serial", progress=False, **kw))


def test_command_template_run_is_stored_like_any_run(write_study, tmp_path):
    script = write_script(tmp_path, SCRIPT_JSONL)
    path = write_study(STUDY.format(script=script, extra="", more=""))
    summary = run_serial(path, tmp_path)
    assert summary.ok and summary.completed == 2
    table = store.load(tmp_path / "byo")
    train = table[table["mode"] == "train"]
    assert len(train) == 10 and set(table[table["mode"] == "eval"]["return"]) == {99.0}
    assert (train["hp.scale"] == 2.0).all() and "loss" in table.columns
    first = train[train["seed_index"] == 0].sort_values("step")
    assert first["return"].tolist() == [2.0 * (first["seed"].iloc[0] % 7 + i) for i in range(5)]


def test_hostile_value_stays_one_argument():
    argv = command.build_argv("prog --tag {tag} --lr {lr}", {"tag": "1; rm -rf ~", "lr": "$(reboot)"})
    assert argv == ["prog", "--tag", "1; rm -rf ~", "--lr", "$(reboot)"]


def test_hostile_value_reaches_the_program_verbatim(write_study, tmp_path):
    script = write_script(tmp_path, SCRIPT_JSONL)
    canary = tmp_path / "canary"
    path = write_study(STUDY.format(script=script, extra="--tag {tag}",
                                    more=f'config = {{ tag = "1; touch {canary}" }}'))
    assert run_serial(path, tmp_path).ok
    assert not canary.exists()


def test_crashing_program_is_a_failed_run_with_its_output_kept(write_study, tmp_path):
    script = write_script(tmp_path, "import sys\nprint('about to fail')\nsys.exit(3)\n")
    path = write_study(STUDY.format(script=script, extra="", more=""))
    summary = run_serial(path, tmp_path, retries=0)
    assert len(summary.failed) == 2
    record = next(iter(store.read_failures(tmp_path / "byo").values()))
    assert "exited with status 3" in record["error"] and "about to fail" in record["output"]


def test_malformed_log_lines_fail_with_the_line_number(write_study, tmp_path):
    script = write_script(tmp_path, """
        import sys
        log = sys.argv[sys.argv.index('--log') + 1]
        open(log, 'w').write('{"step": 1, "return": 2}\\nnot json\\n')
    """)
    path = write_study(STUDY.format(script=script, extra="", more=""))
    summary = run_serial(path, tmp_path, retries=0)
    assert len(summary.failed) == 2
    record = next(iter(store.read_failures(tmp_path / "byo").values()))
    assert "malformed episode log" in record["error"] and "log:2" in record["error"]


def test_hanging_program_is_stopped_by_the_timeout(write_study, tmp_path):
    script = write_script(tmp_path, "import time\ntime.sleep(60)\n")
    path = write_study(STUDY.format(script=script, extra="", more="resources = { timeout_s = 1 }"))
    summary = run_serial(path, tmp_path, retries=0)
    assert len(summary.failed) == 2
    record = next(iter(store.read_failures(tmp_path / "byo").values()))
    assert record["cause"] == "timeout"


def test_stdout_pattern_reporting(write_study, tmp_path):
    script = write_script(tmp_path, "for i in range(4):\n    print(f'ep step={(i+1)*10} R={i*1.5}')\n")
    more = 'log_format = "stdout"\nlog_pattern = "step=(?P<step>\\\\d+) R=(?P<ret>\\\\S+)"'
    path = write_study(STUDY.format(script=script, extra="", more=more))
    assert run_serial(path, tmp_path).ok
    table = store.load(tmp_path / "byo")
    assert sorted(table[table["seed_index"] == 0]["return"]) == [0.0, 1.5, 3.0, 4.5]


@pytest.mark.parametrize("template,fragment", [
    ("{python} x.py --lr {lr}", "unknown placeholder {lr}"),
    ("{python} x.py --seed {}", "empty placeholder"),
    ("{python} 'x.py", "No closing quotation"),
    ("   ", "non-empty command"),
])
def test_wrong_placeholders_are_rejected_before_running(write_study, template, fragment):
    text = STUDY.format(script="x", extra="", more="").splitlines()
    text = "\n".join(f'command = "{template}"' if line.startswith("command") else line for line in text)
    with pytest.raises(StudyError, match="algorithms.mine.command") as info:
        spec.load_study(write_study(text))
    assert fragment in str(info.value)


def test_import_path_agent_with_a_bad_signature_is_rejected(write_study, tmp_path, monkeypatch):
    (tmp_path / "badagent.py").write_text("def train(x):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = "name='b'\n[envs.CartPole-v1]\nsteps=10\n[algorithms.x]\nagent='badagent:train'\n"
    with pytest.raises(StudyError, match=r"algorithms\.x\.agent.*train\(env_id, config, seed, steps, log"):
        spec.load_study(write_study(text))


def test_plugin_agents_are_found_through_entry_points(tmp_path, monkeypatch):
    pkg = tmp_path / "myplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "agent.py").write_text(textwrap.dedent('''
        """A plugin agent."""
        from dataclasses import dataclass
        from agents.common import hp

        @dataclass(frozen=True)
        class Config:
            alpha: float = hp(0.5, low=0, high=1, help="a knob")

        def train(env_id, config, seed, steps, log, *, env_kwargs=None, evaluation=None):
            log.episode(steps, config.alpha, steps)
    '''))
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evalkit.agents]\nplugged = myplugin.agent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.plugin_entry_points.cache_clear()
    try:
        info = registry.resolve_agent("plugged")
        assert info.kind == "plugin" and "alpha" in info.hyperparameters
        assert "plugged" in [a.name for a in registry.list_agents()]
    finally:
        registry.plugin_entry_points.cache_clear()


def test_unknown_agent_lists_the_known_ones():
    with pytest.raises(EvalkitError, match="known agents: .*random"):
        registry.resolve_agent("nonexistent")
