"""``dihkit reproduce --estimate``: each run's training FLOPs and a time projection, without
any dataset and without training.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` on one real training step
(forward and backward of the method's whole step: student, heads, frozen teacher) at batch 2,
scaled to images; they count matrix multiplies and convolutions, not element-wise work. A run
sees ``epochs x training images`` in training, its validation split every epoch and the test set
twice (once without a validation split). The time projection divides those FLOPs by the FLOP
rate of a few measured steps at the run's batch size on this device (a warm-up step, then
``timing_steps``), so it is for this machine, one process; multi-stage methods (FitNets' hint
stage, TAKD's assistant) are measured stage by stage.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from dihkit.bench.timing import sync
from dihkit.data.datasets import Dataset, Split, dataset_spec
from dihkit.methods import BuildContext, Distiller, get_method, resolve_options
from dihkit.methods.ce import CrossEntropy
from dihkit.models import build_model
from dihkit.nn.heads import mount_heads
from dihkit.reproduce.config import Experiment
from dihkit.reproduce.plan import Job, Resolved
from dihkit.teachers.head_training import HeadTraining
from dihkit.teachers.loading import Teacher, load_teacher
from dihkit.training.config import TrainConfig
from dihkit.training.runtime import autocast, evaluating, resolve_device, seed_everything

# Official split sizes (train, test), so an estimate needs no dataset on disk.
SPLIT_SIZES = {
    "fmnist-mini": (10_000, 2_000),
    "cifar10-mini": (5_000, 2_000),
    "fashion-mnist": (60_000, 10_000),
    "cifar10": (50_000, 10_000),
    "cifar100": (50_000, 10_000),
    "svhn": (73_257, 26_032),
}


@dataclass
class StageEstimate:
    """One trained stage of a run (most runs have one)."""

    name: str
    epochs: int
    batch_size: int
    train_images: int
    train_flops_per_image: float  # one training step's FLOPs / batch
    eval_flops_per_image: float  # the model selection forward
    cache_flops_per_image: float = 0.0  # building cached targets: one frozen forward per view
    cache_views: int = 0
    step_seconds: float | None = None  # measured at ``batch_size`` on this device

    @property
    def steps(self) -> int:
        return self.epochs * math.ceil(self.train_images / self.batch_size)

    @property
    def step_flops(self) -> float:
        return self.train_flops_per_image * self.batch_size


@dataclass
class RunEstimate:
    """A job's FLOPs and projected time."""

    job: Job
    stages: list[StageEstimate] = field(default_factory=list)
    val_images: int = 0
    test_images: int = 0

    @property
    def eval_images(self) -> int:
        """Images one stage evaluates: its validation split every epoch is counted by the caller;
        the test set twice (last and validation-selected weights), or once without a
        validation split (the last epoch is the selected one)."""
        return (2 if self.val_images else 1) * self.test_images

    def flops(self) -> dict[str, float]:
        train = sum(s.train_flops_per_image * s.epochs * s.train_images for s in self.stages)
        evaluation = sum(
            s.eval_flops_per_image * (s.epochs * self.val_images + self.eval_images)
            for s in self.stages
        )
        cache = sum(s.cache_flops_per_image * s.cache_views * s.train_images for s in self.stages)
        return {
            "train": train,
            "eval": evaluation,
            "cache": cache,
            "total": train + evaluation + cache,
        }

    def seconds(self) -> float | None:
        """Projected wall time on the measured device: every FLOP at the measured step rate."""
        total = 0.0
        for s in self.stages:
            if s.step_seconds is None:
                return None
            rate = s.step_flops / s.step_seconds
            stage_flops = s.train_flops_per_image * s.epochs * s.train_images
            stage_flops += s.eval_flops_per_image * (s.epochs * self.val_images + self.eval_images)
            stage_flops += s.cache_flops_per_image * s.cache_views * s.train_images
            total += stage_flops / rate
        return total


def split_sizes(resolved: Resolved, role: str) -> tuple[int, int, int]:
    """(train, val, test) image counts of the students' (``student``) or teachers' data."""
    data = resolved.data
    train, test = SPLIT_SIZES[data.dataset]
    classes = dataset_spec(data.dataset).num_classes
    val = round(train * data.val_fraction)
    train -= val
    per_class = data.train_per_class if role == "student" else data.teacher_train_per_class
    if per_class is not None:
        train = min(train, per_class * classes)
    return train, val, test


def _synthetic(dataset: str, n: int = 4) -> Dataset:
    spec = dataset_spec(dataset)
    shape = (n, spec.in_channels, spec.image_size, spec.image_size)
    split = Split(
        torch.randint(0, 256, shape, dtype=torch.uint8), torch.arange(n) % spec.num_classes
    )
    return Dataset(spec=spec, train=split, val=split, test=split)


def _inputs(data: Dataset, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    spec = data.spec
    images = torch.randn(batch, spec.in_channels, spec.image_size, spec.image_size, device=device)
    labels = torch.arange(batch, device=device) % spec.num_classes
    return images, labels


def _count(fn: Callable[[], Any]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def measure_stage(
    name: str,
    distiller: Distiller,
    config: TrainConfig,
    data: Dataset,
    train_images: int,
    device: torch.device,
    timing_steps: int,
) -> StageEstimate:
    """FLOPs per image of one training step, of the selection forward and of a cache build, and
    (with ``timing_steps``) the measured seconds of one step at the run's batch size. Without
    timing steps everything runs on the meta device (counts only)."""
    if timing_steps == 0:
        device = torch.device("meta")
    distiller.to(device)
    distiller.train()
    images, labels = _inputs(data, 2, device)
    cached = config.cached_targets > 0 and distiller.caches_targets

    with torch.no_grad():
        targets = distiller.frozen_targets(images) if cached else None
    train = _count(lambda: sum(distiller(images, labels, targets)[1].values()).backward())
    with evaluating(distiller), torch.inference_mode():
        evaluation = _count(lambda: distiller.predict(images))
        cache = _count(lambda: distiller.frozen_targets(images)) if cached else 0.0
    estimate = StageEstimate(
        name=name,
        epochs=config.epochs,
        batch_size=config.batch_size,
        train_images=train_images,
        train_flops_per_image=train / 2,
        eval_flops_per_image=evaluation / 2,
        cache_flops_per_image=cache / 2,
        cache_views=config.cached_targets if cached else 0,
    )
    if timing_steps > 0:
        params = [p for p in distiller.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=1e-6, momentum=0.9)
        x, y = _inputs(data, config.batch_size, device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            batch_targets = distiller.frozen_targets(x) if cached else None
        for i in range(timing_steps + 1):
            if i == 1:  # the first step warms up (allocations, cuDNN autotuning)
                sync(device)
                start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with autocast(device):
                _, losses = distiller(x, y, batch_targets)
            sum(losses.values()).backward()
            optimizer.step()
        sync(device)
        estimate.step_seconds = (time.perf_counter() - start) / timing_steps
    distiller.zero_grad(set_to_none=True)
    return estimate


def _teacher(arch: str, data: Dataset, experiment: Experiment, resolved: Resolved) -> Teacher:
    """A randomly initialised teacher (with heads when the experiment trains them): FLOPs and
    step times do not depend on the weights."""
    spec = data.spec
    model = build_model(arch, spec.num_classes, spec.in_channels)
    teacher = Teacher(model=model, source=f"(estimate: {arch})")
    if experiment.needs_heads:
        options = resolved.head_options
        teacher._cohort = mount_heads(  # in memory: its weights never leave the device
            model,
            options["kind"],
            options["positions"],
            input_shape=spec.input_shape,
            activation=options["activation"],
            width=options["width"],
        )
    return teacher


def estimate_job(
    job: Job,
    experiment: Experiment,
    resolved: Resolved,
    device: torch.device,
    timing_steps: int = 2,
) -> RunEstimate:
    """The FLOPs (and, with ``timing_steps``, the projected time) of one job."""
    data = _synthetic(resolved.data.dataset)
    role = "student" if job.kind == "student" else "teacher"
    train, val, test = split_sizes(resolved, role)
    result = RunEstimate(job=job, val_images=val, test_images=test)
    seed_everything(0)

    def measure(name: str, distiller: Distiller, config: TrainConfig) -> None:
        result.stages.append(
            measure_stage(name, distiller, config, data, train, device, timing_steps)
        )

    # FLOPs alone need no real tensors: the meta device gives the same counts without compute.
    with torch.device("meta" if timing_steps == 0 else device):
        _measure_job(job, experiment, resolved, data, measure)
    return result


def _measure_job(
    job: Job,
    experiment: Experiment,
    resolved: Resolved,
    data: Dataset,
    measure: Callable[[str, Distiller, TrainConfig], None],
) -> None:
    """Build the job's distiller (and its earlier stages) and measure each."""
    spec = data.spec
    if job.kind == "teacher":
        model = build_model(job.arch, spec.num_classes, spec.in_channels)
        measure("teacher", CrossEntropy(model), job.config)
    elif job.kind == "heads":
        teacher = _teacher(job.arch, data, experiment, resolved)
        measure("heads", HeadTraining(teacher.require_cohort("heads")), job.config)
    else:
        method = get_method(job.method)
        context = BuildContext(
            student=build_model(job.arch, spec.num_classes, spec.in_channels),
            teacher=_teacher(job.teacher, data, experiment, resolved) if job.teacher else None,
            data=data,
            config=job.config,
            progress=False,
            stage_hook=measure,
            load_teacher=load_teacher,
        )
        distiller = method.build(context, resolve_options(job.method, job.options))
        measure(job.method, distiller, job.config)


def estimate_jobs(
    jobs: Sequence[Job],
    experiment: Experiment,
    resolved: Resolved,
    device: str = "auto",
    timing_steps: int = 2,
) -> list[RunEstimate]:
    """Every job's estimate. Runs that differ only in their seed cost the same: each distinct
    run is measured once. A cache build is counted once per teacher (runs share it)."""
    target = resolve_device(device)
    measured: dict[str, RunEstimate] = {}
    estimates, caches = [], set()
    for job in jobs:
        key = repr(
            dataclasses.replace(
                job, seed=0, folder="", pairs=(), config=dataclasses.replace(job.config, seed=0)
            )
        )
        if key not in measured:
            measured[key] = estimate_job(job, experiment, resolved, target, timing_steps)
        estimate = RunEstimate(job, [dataclasses.replace(s) for s in measured[key].stages])
        estimate.val_images, estimate.test_images = (
            measured[key].val_images,
            measured[key].test_images,
        )
        for stage in estimate.stages:
            cache_key = (job.teacher, stage.name, stage.cache_views)
            if stage.cache_views and cache_key in caches:
                stage.cache_views = 0
            caches.add(cache_key)
        estimates.append(estimate)
    return estimates


def _tflops(value: float) -> str:
    return f"{value / 1e12:,.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not timed"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_estimate(
    experiment: Experiment, resolved: Resolved, estimates: Sequence[RunEstimate], device: str
) -> str:
    """The estimate as a plain-text table with totals."""
    target = resolve_device(device)
    name = (
        torch.cuda.get_device_name(target)
        if target.type == "cuda"
        else f"{target.type}, {torch.get_num_threads()} threads"
    )
    lines = [
        f"{experiment.name} ({resolved.profile} profile): {len(estimates)} runs, "
        f"{resolved.data.dataset}, seeds {len(resolved.seeds)}; times projected from steps "
        f"measured on this device ({name}), one process",
        "",
        f"{'run':<52} {'epochs':>6} {'steps':>8} {'GFLOP/step':>11} {'TFLOP':>10} {'time':>10}",
    ]
    total_flops, total_seconds, timed = 0.0, 0.0, True
    for est in estimates:
        flops, seconds = est.flops()["total"], est.seconds()
        total_flops += flops
        if seconds is None:
            timed = False
        else:
            total_seconds += seconds
        for i, stage in enumerate(est.stages):
            label = est.job.label if i == len(est.stages) - 1 else f"  ({stage.name} stage)"
            lines.append(
                f"{label[:52]:<52} {stage.epochs:>6} {stage.steps:>8,} "
                f"{stage.step_flops / 1e9:>11.2f} "
                + (
                    f"{_tflops(flops):>10} {_duration(seconds):>10}"
                    if i == len(est.stages) - 1
                    else ""
                )
            )
    lines += [
        "",
        f"total: {_tflops(total_flops)} TFLOP (training, validation, test and target caches), "
        + (f"about {_duration(total_seconds)} on this device" if timed else "not timed"),
    ]
    return "\n".join(lines)


def estimate_record(estimates: Sequence[RunEstimate]) -> list[dict[str, Any]]:
    """The estimate as JSON rows (for ``--json``)."""
    return [
        {
            "run": est.job.folder,
            "kind": est.job.kind,
            "method": est.job.method,
            "flops": est.flops(),
            "seconds": est.seconds(),
            "stages": [
                {**dataclasses.asdict(s), "steps": s.steps, "step_flops": s.step_flops}
                for s in est.stages
            ],
        }
        for est in estimates
    ]
