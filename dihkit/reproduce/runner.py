"""Run an experiment's jobs in order, skipping finished ones and resuming an interrupted one,
and rewrite the results after each.

Layout of the output folder::

    OUT/teachers/ARCH/                   the teacher (CE), trained once per experiment
    OUT/teachers/ARCH-heads-KIND/        its heads (when a column needs a cohort)
    OUT/students/TEACHER-STUDENT/COLUMN/seed-N/   one student run
    OUT/students/STUDENT/COLUMN/seed-N/  a teacher-free run, shared by every row with STUDENT
    OUT/target-cache/                    cached teacher targets (``cached_targets`` > 0)
    OUT/results.json, results.csv, results.md, environment.json
    OUT/experiment.json                  which experiment and profile the folder holds

An output folder belongs to one experiment under one profile: ``experiment.json``, written
(atomically) before the first job, records them, and a run of another experiment or profile
into that folder is refused before it trains anything (a folder from before the record is
recognised by its ``results.json``). Runs of different ``--pairs`` of the same experiment add
rows: the record keeps every pair run there, and the results cover them all.

Each finished job leaves ``reproduce.json`` (its settings and result) in its folder; a later run
with the same settings reads it back instead of training, one with other settings is refused.
A job whose checkpoint is damaged (an unfinished job's ``last.pt``, or the ``best.pt`` of a
teacher or heads job that later jobs read) is started again from scratch, and the log says so.
Under ``torchrun`` every rank runs every job (the training loop shards the data), and only
rank 0 writes these files.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dihkit.data.datasets import Dataset, load_dataset, per_class_subset
from dihkit.errors import CheckpointError, ConfigError
from dihkit.files import UnreadableFileError, read_json, write_json_atomic
from dihkit.reproduce.config import Experiment
from dihkit.reproduce.environment import environment_record
from dihkit.reproduce.plan import Job, Resolved, pair_key, plan_jobs
from dihkit.reproduce.report import write_report
from dihkit.runs.cache import CHECKPOINTS
from dihkit.runs.pipeline import distill, train_heads, train_model
from dihkit.training import distributed, run_folder
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.history import FitResult
from dihkit.training.identity import identity_differences, train_settings, without_neutral
from dihkit.training.runtime import resolve_device

MARKER = "reproduce.json"
RECORD = "experiment.json"
SETTINGS = ("config", "teacher_training", "heads_training")  # a spec's training settings
RESULT_KEYS = ("test_acc_best", "test_acc_last", "best_epoch", "best_val_acc")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def job_spec(job: Job, resolved: Resolved, experiment: Experiment) -> dict[str, Any]:
    """Everything that decides a job's result, as JSON values (compared on a rerun); its
    training settings are those of a run's identity
    (:func:`dihkit.training.identity.train_settings`)."""
    spec = dataclasses.asdict(job)
    spec.pop("pairs")  # which rows a run fills does not change it
    spec["config"] = train_settings(job.config)
    data = dataclasses.asdict(resolved.data)
    data.pop("teacher_train_per_class" if job.kind == "student" else "train_per_class")
    spec["data"] = data
    if job.kind == "heads":
        spec["head_options"] = resolved.head_options
    if job.teacher is not None or job.kind == "heads":
        spec["teacher_training"] = train_settings(resolved.teacher)
        if experiment.needs_heads:
            spec["heads_training"] = {**train_settings(resolved.heads), **resolved.head_options}
    return _plain(spec)


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored spec as :func:`job_spec` writes it now: markers written before the one run
    identity kept ``eval_batch_size`` among the training settings, which changes no result."""
    return {
        key: without_neutral(value) if key in SETTINGS and isinstance(value, dict) else value
        for key, value in spec.items()
    }


def _well_formed(marker: Any) -> bool:
    """Whether a marker read back holds a spec and a result with the numbers the report uses."""
    if not isinstance(marker, dict):
        return False
    spec, result = marker.get("spec"), marker.get("result")
    return (
        isinstance(spec, dict)
        and isinstance(result, dict)
        and all(key in result for key in RESULT_KEYS)
    )


def finished_job(
    folder: Path, spec: dict[str, Any], log: Callable[[str], None] = print
) -> dict[str, Any] | None:
    """The stored result of a finished job with these settings; a :class:`ConfigError` naming
    every differing setting if the folder holds a job with other settings; None if it has not
    finished, or if its marker is damaged (said through ``log``: the job runs again and
    resumes from its ``last.pt``)."""
    try:
        stored = read_json(folder / MARKER)
    except UnreadableFileError as exc:
        if not exc.missing:
            log(f"reproduce: {exc}; running that job again (it resumes from its last.pt)")
        return None
    if not _well_formed(stored):
        log(f"reproduce: {folder / MARKER} is damaged; running that job again")
        return None
    result = stored["result"]
    changed = identity_differences(_comparable(stored["spec"]), spec)
    if changed:
        raise ConfigError(
            f"{folder} holds a finished run with other settings ({'; '.join(changed)}); "
            "use another --out folder for the new settings (no result is overwritten)"
        )
    return result


def damaged_checkpoint(folder: Path, patterns: Sequence[str] = CHECKPOINTS) -> Path | None:
    """The first checkpoint under ``folder`` matching ``patterns`` that does not load (damaged,
    truncated, not a dihkit checkpoint); None when every one loads."""
    for pattern in patterns:
        for path in sorted(folder.glob(pattern)):
            try:
                load_checkpoint(path)
            except CheckpointError:
                return path
    return None


def folder_owner(out: Path) -> dict[str, Any] | None:
    """What ``out`` holds: its ``experiment.json`` (``experiment``, ``profile``, ``pairs``), or
    for a folder written before that record, the experiment and profile of its
    ``results.json``; None for a new folder (or one whose files name no experiment)."""
    for name in (RECORD, "results.json"):
        try:
            stored = read_json(out / name)
        except UnreadableFileError:
            continue
        if (
            isinstance(stored, dict)
            and isinstance(stored.get("experiment"), str)
            and isinstance(stored.get("profile"), str)
        ):
            pairs = stored.get("pairs") if name == RECORD else None
            if not (isinstance(pairs, list) and all(isinstance(p, str) for p in pairs)):
                pairs = []
            return {
                "experiment": stored["experiment"],
                "profile": stored["profile"],
                "pairs": pairs,
            }
    return None


def check_folder_owner(out: Path, experiment: str, profile: str) -> dict[str, Any] | None:
    """:func:`folder_owner` of ``out``; a :class:`ConfigError` naming both experiments and the
    fix if it holds another experiment or another profile."""
    owner = folder_owner(out)
    if owner is not None and (owner["experiment"], owner["profile"]) != (experiment, profile):
        raise ConfigError(
            f"{out} holds the results of experiment {owner['experiment']} (profile "
            f"{owner['profile']}), not {experiment} (profile {profile}); give this run another "
            "--out folder (one folder per experiment and profile)"
        )
    return owner


def _result_record(result: FitResult) -> dict[str, Any]:
    return {
        "test_acc_best": result.test_acc_best,
        "test_acc_last": result.test_acc_last,
        "best_epoch": result.best_epoch,
        "best_val_acc": result.best_val_acc,
        "test_member_acc_best": result.test_member_acc_best,
        "epochs_run": len(result.history),
        "train_seconds": sum(r.seconds for r in result.history),
    }


class Runner:
    """Runs one experiment under one resolved profile into ``out``."""

    def __init__(
        self,
        experiment: Experiment,
        resolved: Resolved,
        out: str | Path,
        *,
        data_dir: str | Path | None = None,
        download: bool = False,
        pairs: Sequence[str] | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        per_rank_batch: int | None = None,
    ) -> None:
        self.experiment, self.resolved = experiment, resolved
        self.out = Path(out)
        self.data_dir, self.download = data_dir, download
        self.per_rank_batch = per_rank_batch
        self.pairs = [pair_key(p) for p in experiment.pairs] if not pairs else list(pairs)
        self.jobs = self._plan(self.pairs)
        self.reported = self.jobs  # the jobs the results cover: these and earlier runs' pairs
        self.progress = progress
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._data: dict[str, Dataset] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.earlier: dict[str, dict[str, Any]] = {}  # finished jobs of earlier runs' pairs

    def _plan(self, pairs: Sequence[str]) -> list[Job]:
        jobs = plan_jobs(self.experiment, self.resolved, pairs)
        if self.per_rank_batch is None:
            return jobs
        world = distributed.world_size()  # under torchrun: the global batch and lr scale per job
        return [
            dataclasses.replace(
                job,
                config=distributed.scale_for_world(job.config, world, self.per_rank_batch)[0],
            )
            for job in jobs
        ]

    def claim_out(self) -> None:
        """Refuse an output folder that holds another experiment or profile
        (:func:`check_folder_owner`); record this one in ``experiment.json`` with every pair run
        there so far, and find the finished jobs of the pairs earlier runs added."""
        owner = check_folder_owner(self.out, self.experiment.name, self.resolved.profile)
        known = [pair_key(p) for p in self.experiment.pairs]
        earlier = set(owner["pairs"]) if owner else set()
        pairs = [key for key in known if key in earlier or key in self.pairs]
        if distributed.is_main():
            self.out.mkdir(parents=True, exist_ok=True)
            record = {
                "experiment": self.experiment.name,
                "profile": self.resolved.profile,
                "file": str(self.experiment.path),
                "pairs": pairs,
            }
            write_json_atomic(self.out / RECORD, record)
        self.reported = self._plan(pairs)
        mine = {job.folder for job in self.jobs}
        for job in self.reported:
            if job.folder in mine:
                continue
            try:
                spec = job_spec(job, self.resolved, self.experiment)
                result = finished_job(self.out / job.folder, spec, lambda line: None)
            except ConfigError:  # other settings: not part of these results
                result = None
            if result is not None:
                self.earlier[job.folder] = result

    def data(self, role: str) -> Dataset:
        """The training data of students (``student``) or of teachers and heads (``teacher``)."""
        if not self._data:
            settings = self.resolved.data
            full = load_dataset(
                settings.dataset,
                data_dir=self.data_dir,
                download=self.download,
                val_fraction=settings.val_fraction,
            )
            for name, per_class in (
                ("student", settings.train_per_class),
                ("teacher", settings.teacher_train_per_class),
            ):
                data = full
                if per_class is not None:
                    data = dataclasses.replace(
                        full,
                        train=per_class_subset(full.train, per_class),
                        options={**full.options, "train_per_class": per_class},
                    )
                self._data[name] = data
        return self._data[role]

    def teacher_source(self, arch: str) -> Path:
        """The checkpoint students of ``arch`` learn from: the heads' when the experiment trains
        heads (it holds the teacher too), the plain teacher's otherwise."""
        if self.experiment.needs_heads:
            kind = self.resolved.head_options["kind"]
            return self.out / "teachers" / f"{arch}-heads-{kind}" / "best.pt"
        return self.out / "teachers" / arch / "best.pt"

    def run(self) -> dict[str, dict[str, Any]]:
        """Every job in order; the results so far are rewritten after each."""
        self.claim_out()
        if distributed.is_main():
            for line in self.resolved.scaled:
                self.log(f"reproduce: {line}")
        distributed.barrier()
        for number, job in enumerate(self.jobs, start=1):
            folder = self.out / job.folder
            spec = job_spec(job, self.resolved, self.experiment)
            result = finished_job(folder, spec, self.log)
            if self._restart_if_damaged(job, folder, finished=result is not None):
                result = None
            if result is None:
                self.log(f"reproduce: [{number}/{len(self.jobs)}] {job.label} -> {folder}")
                start = time.perf_counter()
                result = _result_record(self._train(job, folder))
                result["wall_seconds"] = time.perf_counter() - start
                if distributed.is_main():
                    write_json_atomic(folder / MARKER, {"spec": spec, "result": result})
            else:
                self.log(f"reproduce: [{number}/{len(self.jobs)}] {job.label}: finished, reused")
            self.results[job.folder] = result
            if distributed.is_main():
                self.write()
            distributed.barrier()
        return self.results

    def _restart_if_damaged(self, job: Job, folder: Path, *, finished: bool) -> bool:
        """Remove a job's files when a checkpoint it resumes from (an unfinished job's) or that
        later jobs read (a finished teacher's or heads' ``best.pt``) is damaged, so the job
        trains again from scratch; whether it did. A finished student's files are left alone."""
        if finished and job.kind == "student":
            return False
        damaged = damaged_checkpoint(folder, ("best.pt",) if finished else CHECKPOINTS)
        if damaged is not None:
            self.log(
                f"reproduce: checkpoint {damaged} is damaged (it does not load); "
                f"training {job.label} again from scratch in {folder}"
            )
            if distributed.is_main():
                (folder / MARKER).unlink(missing_ok=True)
                run_folder.clear_run_files(folder)
        distributed.barrier()
        return damaged is not None

    def _train(self, job: Job, folder: Path) -> FitResult:
        common = {"out_dir": folder, "resume": True, "progress": self.progress}
        if job.kind == "teacher":
            return train_model(job.arch, self.data("teacher"), job.config, **common)[1]
        if job.kind == "heads":
            options = self.resolved.head_options
            return train_heads(
                self.out / "teachers" / job.arch / "best.pt",
                self.data("teacher"),
                job.config,
                kind=options["kind"],
                positions=options["positions"],
                activation=options["activation"],
                width=options["width"],
                **common,
            )[1]
        teacher = self.teacher_source(job.teacher) if job.teacher else None
        return distill(
            job.method,
            teacher,
            job.arch,
            self.data("student"),
            job.config,
            job.options,
            cache_root=self.out / "target-cache",
            **common,
        )[1]

    def write(self) -> None:
        """results.json/.csv/.md and environment.json from the jobs finished so far (this run's
        and those of the pairs earlier runs into this folder added)."""
        results = {**self.earlier, **self.results}
        finished = [(job, results[job.folder]) for job in self.reported if job.folder in results]
        write_report(self.out, self.experiment, self.resolved, finished)
        record = environment_record(
            resolve_device(self.resolved.student.device),
            seeds=self.resolved.seeds,
            world_size=distributed.world_size(),
        )
        write_json_atomic(self.out / "environment.json", record)
