"""TensorBoard event files (CleanRL and Stable-Baselines3 layouts), read with TensorBoard's own reader.

The reader is TensorBoard's own: ``event_file_loader.RawEventFileLoader`` (its record reader, with
CRC checks) and its ``Event`` protobuf, i.e. ``LegacyEventFileLoader`` plus a count of the bytes
read. Every event is kept (``EventAccumulator`` keeps only 10,000 scalars per tag by default
through reservoir sampling, which would drop episodes).

Layouts, chosen by the tags a run has (``--tag`` overrides the return tag):

* CleanRL: ``charts/episodic_return`` (and ``charts/episodic_length``) at ``global_step``, one point per
  finished episode; its hyperparameter table (``writer.add_text("hyperparameters", "|param|value|...")``)
  gives ``exp_name`` (the algorithm), ``env_id``, ``seed`` and every other argument;
* Stable-Baselines3: ``rollout/ep_rew_mean`` (and ``rollout/ep_len_mean``) every ``log_interval``: the
  mean return of the last 100 episodes, **not** single episodes (said in the output); ``eval/mean_reward``
  of ``EvalCallback`` becomes evaluation rows; ``HParam`` records give hyperparameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from evalkit.importers.records import Episodes, ImportProblem, RunRecord, text_value

CLEANRL = ("charts/episodic_return", "charts/episodic_length")
CLEANRL_EVAL = ("eval/episodic_return", None)
SB3 = ("rollout/ep_rew_mean", "rollout/ep_len_mean")
SB3_EVAL = ("eval/mean_reward", "eval/mean_ep_length")
SB3_NOTE = ("SB3 TensorBoard logs hold rollout/ep_rew_mean, the mean return of the last 100 episodes at each "
            "logging step, not single episodes: each row is one such mean (import the Monitor CSVs for episodes)")
# CleanRL arguments that are bookkeeping, not hyperparameters
NOT_HYPERPARAMETERS = {"exp_name", "seed", "env_id", "torch_deterministic", "cuda", "track", "wandb_project_name",
                       "wandb_entity", "capture_video", "save_model", "upload_model", "hf_entity"}
INSTALL = 'reading TensorBoard event files needs the tensorboard package: pip install "rl-evalkit[import]"'


def _loader(path: Path):
    try:
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        raise ImportProblem(path, INSTALL) from None
    return event_file_loader.RawEventFileLoader(str(path)), event_pb2.Event


def events(path: Path) -> Iterator:
    """Every ``Event`` protobuf of one event file, as written.

    TensorBoard's loader stops quietly at the first corrupt or truncated record (a live run may
    still be writing it); an import must not drop the rest quietly, so the bytes read are counted
    (each record: 12-byte header, data, 4-byte CRC) and a file not read to its end is an error.
    """
    loader, event_cls = _loader(path)
    done = 0
    try:
        for record in loader.Load():
            done += len(record) + 16
            yield event_cls.FromString(record)
    except ImportProblem:
        raise
    except Exception as exc:  # DecodeError, OSError...
        raise ImportProblem(path, f"expected a TensorBoard event file ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:120]})") from None
    size = Path(path).stat().st_size
    if done != size:
        raise ImportProblem(path, f"corrupt or truncated record at byte {done} of {size} (TensorBoard's reader "
                            f"stops there); a run still being written can be imported when it has finished")


def read_scalars(paths: list[Path], wanted: frozenset[str]) -> tuple[dict[str, tuple[list[int], list[float]]],
                                                                     dict[str, str], dict, set[str]]:
    """``{tag: (steps, values)}`` of the ``wanted`` scalar tags, text summaries ``{tag: text}``,
    HParams values, and every scalar tag seen (for messages). Other tags are only named, not
    decoded: a CleanRL run logs losses and SPS as often as returns."""
    scalars: dict[str, tuple[list[int], list[float]]] = {t: ([], []) for t in wanted}
    texts: dict[str, str] = {}
    hparams: dict = {}
    seen: set[str] = set()
    for path in paths:
        for event in events(path):
            for v in event.summary.value:
                tag = v.tag
                s = scalars.get(tag)
                if s is not None:
                    if v.HasField("simple_value"):
                        s[0].append(event.step)
                        s[1].append(v.simple_value)
                    elif v.HasField("tensor"):
                        _tensor(v, event.step, scalars, texts, hparams)
                elif tag not in seen:
                    seen.add(tag)
                if s is None and (v.HasField("tensor") and v.tensor.string_val
                                  or v.metadata.plugin_data.plugin_name == "hparams"):  # hparams: metadata only
                    _tensor(v, event.step, scalars, texts, hparams)
    return {t: s for t, s in scalars.items() if s[0]}, texts, hparams, seen | {t for t, s in scalars.items() if s[0]}


def _tensor(v, step: int, scalars: dict, texts: dict, hparams: dict) -> None:
    plugin = v.metadata.plugin_data.plugin_name
    t = v.tensor
    if plugin == "hparams":
        hparams.update(_hparams(v.metadata.plugin_data.content))
    elif t.string_val:
        texts[v.tag] = t.string_val[0].decode("utf-8", "replace")
    elif v.tag in scalars and plugin in ("scalars", "") and t.dtype in (1, 2):  # DT_FLOAT/DOUBLE tensors (TF2)
        from tensorboard.util import tensor_util
        a = tensor_util.make_ndarray(t)
        if a.size == 1:
            s = scalars.setdefault(v.tag, ([], []))
            s[0].append(step)
            s[1].append(float(a.reshape(-1)[0]))


def _hparams(content: bytes) -> dict:
    """Hyperparameters of an ``HParam`` record (TensorBoard's hparams plugin protobuf)."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if not data.HasField("session_start_info"):
        return {}
    out = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            f = value.number_value
            out[name] = int(f) if float(f).is_integer() else f
        elif kind in ("string_value", "bool_value"):
            out[name] = getattr(value, kind)
    return out


def cleanrl_hyperparameters(text: str) -> dict:
    """CleanRL's markdown table ``|param|value|`` as a dict of parsed values."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("param", "") or set(cells[0]) <= {"-", ":"}:
            continue
        value = text_value(cells[1])
        if value is not None:
            out[cells[0]] = value
    return out


def _series(scalars: dict, tags: tuple[str, str | None], mode: str) -> Episodes | None:
    ret_tag, len_tag = tags
    if ret_tag not in scalars:
        return None
    steps, values = scalars[ret_tag]
    steps_a = np.asarray(steps, np.int64)
    length = None
    if len_tag and len_tag in scalars:
        ls, lv = scalars[len_tag]
        # lengths are logged at the same steps as returns, in the same order
        if len(ls) == len(steps) and list(ls) == list(steps):
            length = np.rint(np.asarray(lv, float)).astype(np.int64)
    return Episodes.of(steps_a, np.asarray(values, float), length, mode)


def read_tensorboard(paths: list[Path], source: str, tag: str | None = None) -> list[RunRecord]:
    """One run from the event files of one run folder."""
    wanted = frozenset(t for pair in (CLEANRL, CLEANRL_EVAL, SB3, SB3_EVAL) for t in pair if t) | ({tag} if tag else set())
    scalars, texts, hparams, seen = read_scalars(paths, wanted)
    notes: tuple[str, ...] = ()
    if tag is not None:
        if tag not in scalars:
            raise ImportProblem(source, f"--tag {tag!r} not found; tags here: {', '.join(sorted(seen)[:12]) or 'none'}")
        lengths = {CLEANRL[0]: CLEANRL[1], SB3[0]: SB3[1], SB3_EVAL[0]: SB3_EVAL[1]}
        layouts = [((tag, lengths.get(tag)), "eval" if tag.startswith("eval/") else "train")]
        if tag in (SB3[0], SB3_EVAL[0]):
            notes = (SB3_NOTE,)
    elif CLEANRL[0] in scalars:
        layouts = [(CLEANRL, "train"), (CLEANRL_EVAL, "eval")]
    elif SB3[0] in scalars or SB3_EVAL[0] in scalars:
        layouts, notes = [(SB3, "train"), (SB3_EVAL, "eval")], (SB3_NOTE,) if SB3[0] in scalars else ()
    else:
        raise ImportProblem(source, f"no episodic return tag ({CLEANRL[0]} or {SB3[0]}); tags here: "
                            f"{', '.join(sorted(seen)[:12]) or 'none'}; name one with --tag")
    parts = [e for e in (_series(scalars, tags, mode) for tags, mode in layouts) if e is not None]
    episodes = Episodes.concat(parts)
    hp = cleanrl_hyperparameters(texts.get("hyperparameters/text_summary", ""))
    config = {k: v for k, v in {**hparams, **hp}.items() if k not in NOT_HYPERPARAMETERS}
    budget = hp.get("total_timesteps") if isinstance(hp.get("total_timesteps"), int) else None
    seed = hp.get("seed") if isinstance(hp.get("seed"), int) and not isinstance(hp.get("seed"), bool) else None
    return [RunRecord(source=source, episodes=episodes, algorithm=_str(hp.get("exp_name")), env=_str(hp.get("env_id")),
                      seed=seed, config=config, budget=budget, notes=notes)]


def _str(v: object) -> str | None:
    return str(v) if isinstance(v, str) and v else None
