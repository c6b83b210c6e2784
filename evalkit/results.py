"""One load per command: a study's stored state as one object (issue 18; DESIGN.md 7b "one
study-results object per command").

:func:`load` reads the store once -- the stored-run index, the episodes of the catalog's done runs
(one multithreaded ``pyarrow.dataset`` scan), failures, selection -- and joins them with the runs
the study plans into :class:`StudyResults`. Report, figures, audit, sensitivity, CHS and compare
take this object; none of them reads the store again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evalkit import catalog as catalog_mod
from evalkit import store
from evalkit.spec import Study


@dataclass
class StudyResults:
    """Everything stored for a study, loaded once.

    ``catalog``: one row per planned run (:data:`evalkit.catalog.COLUMNS` + ``hp.*``);
    ``episodes``: long episode table (``store.load`` columns) of every done catalog run;
    ``failures``: ``{run_id: failure record}``; ``selection``: ``selection.json`` or None;
    ``orphans``: stored runs that match no planned run (kept on disk, not used);
    ``quarantined``: unreadable files moved to ``quarantine/``.
    """

    study: Study
    study_dir: Path
    catalog: pd.DataFrame
    episodes: pd.DataFrame
    failures: dict = field(default_factory=dict)
    selection: dict | None = None
    orphans: int = 0
    quarantined: int = 0

    def phase(self, phase: str) -> "StudyResults":
        """The same results restricted to one phase (``"tune"`` or ``"eval"``)."""
        cat = self.catalog[self.catalog["phase"] == phase]
        ep = self.episodes[self.episodes["phase"] == phase] if len(self.episodes) else self.episodes
        ids = set(cat["run_id"])
        return dataclasses.replace(self, catalog=cat, episodes=ep,
                                   failures={k: v for k, v in self.failures.items() if k in ids})

    def runs(self, phase: str | None = None, metric: str | None = None, mode: str = "train",
             rung: int | None = None) -> pd.DataFrame:
        """Per-run table, ONE ROW PER PLANNED RUN of ``phase`` (all phases when None), with ``score``,
        ``used`` and ``reason`` (:func:`evalkit.metrics.run_scores` with the catalog; the accounting
        rule of :mod:`evalkit.accounting`). ``rung``: for successive halving, the rung whose budget the
        analysis compares settings at (default: the full budget)."""
        from evalkit import metrics
        cat = self.catalog if phase is None else self.catalog[self.catalog["phase"] == phase]
        ep = self.episodes
        if phase is not None and len(ep):
            ep = ep[ep["phase"] == phase]
        return metrics.run_scores(ep, metric or self.study.metric, mode=mode, catalog=cat, rung=rung)

    @property
    def empty(self) -> bool:
        """True when no planned run is stored."""
        return self.episodes.empty and not (self.catalog["status"] == "done").any()


def load_catalog(study: Study, study_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, int]:
    """The catalog without episodes (what ``evalkit status`` needs): ``(catalog, stored index,
    failures, orphans)``."""
    study_dir = Path(study_dir)
    index = store.stored_index(study_dir)
    failures = store.read_failures(study_dir)
    cat, orphans = catalog_mod.build(study, study_dir, index, failures)
    return _with_rungs(cat), index, failures, orphans


def load(study: Study, study_dir: Path) -> StudyResults:
    """THE one load per command: catalog, episodes of the done runs, failures, selection."""
    study_dir = Path(study_dir)
    cat, index, failures, orphans = load_catalog(study, study_dir)
    done = cat.loc[cat["status"] == "done", "run_id"]
    episodes = store.load(study_dir, index=index[index["run_id"].isin(set(done))])
    if len(cat):  # episode counts from the rows themselves (older run files did not record them)
        counts = episodes.groupby(["run_id", "mode"]).size().unstack("mode", fill_value=0) if len(episodes) else \
            pd.DataFrame(columns=["train", "eval"])
        counts = counts.reindex(columns=["train", "eval"], fill_value=0)
        cat["n_episodes"] = cat["run_id"].map(counts["train"]).fillna(0).astype("int64")
        cat["n_eval_episodes"] = cat["run_id"].map(counts["eval"]).fillna(0).astype("int64")
    return StudyResults(study, study_dir, cat, episodes, failures, catalog_mod.read_selection(study_dir),
                        orphans, catalog_mod.quarantined(study_dir))


def _with_rungs(cat: pd.DataFrame) -> pd.DataFrame:
    """A catalog whose tuning runs carry no rung (a results folder without its study file, where the
    driver's plan is unknown) but have budgets below the full budget: successive-halving runs. Their
    rung is recovered as the rank of their budget among the phase's budgets in that (algorithm, env),
    so ``evalkit X results/STUDY`` answers as ``evalkit X STUDY.toml`` does."""
    if cat.empty or "rung" not in cat.columns or (cat["rung"] >= 0).any():
        return cat
    short = (cat["phase"] == "tune") & (cat["budget"] < cat["full_budget"])
    if not short.any():
        return cat
    cat = cat.copy()
    tune = cat["phase"] == "tune"
    rank = cat[tune].groupby(["algorithm", "env"])["budget"].rank(method="dense").astype("int64") - 1
    cat.loc[tune, "rung"] = rank
    return cat


def ensure(results: StudyResults | None, study: Study, study_dir: Path) -> StudyResults:
    """``results`` when the caller loaded them already (one load per command), else a fresh load
    (library callers that pass only a study and its folder)."""
    return results if results is not None else load(study, study_dir)
