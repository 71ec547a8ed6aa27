"""What each method costs: per-step time live and from cached targets, the cohort's forward pass
against the teacher's, whole ``fit`` epochs against a conventional PIL + ``DataLoader`` KD loop,
the one-time cost of a target cache, and peak tensor memory.

Every variant is timed in one process and interleaved (round-robin over ``rounds``), so machine
noise hits all alike; the medians are reported as ratios, which travel across machines better
than seconds. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.fx.experimental.optimization import fuse

from dihkit.bench.conventional import conventional_kd_epoch
from dihkit.bench.memory import peak_tensor_bytes
from dihkit.bench.timing import StepRunner, endless, interleaved, ratio
from dihkit.data.datasets import Dataset
from dihkit.data.loader import BatchLoader
from dihkit.methods import Distiller
from dihkit.models import build_model
from dihkit.runs.pipeline import build_distiller
from dihkit.teachers.loading import load_teacher
from dihkit.training.config import TrainConfig
from dihkit.training.loop import fit
from dihkit.training.runtime import autocast, resolve_device, seed_everything
from dihkit.training.target_cache import CachedTargetLoader, TargetCache, load_or_build

__all__ = ["VARIANTS", "MethodBenchmark", "method_benchmark", "format_method_benchmark"]

# (label, method, options): the distillation methods with their defaults, except MHKD's heads at
# the notebooks' CPU width, and DSKD also without its feature loss (its cached targets are then
# logits only; with the loss they also hold the teacher's last feature map).
VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("ce", "ce", {}),
    ("kd", "kd", {}),
    ("dih", "dih", {}),
    ("dih-ensemble", "dih-ensemble", {}),
    ("mhkd-w32", "mhkd", {"head_width": 32}),  # the CPU profiles' width; 256 costs ~40x ce
    ("dskd", "dskd", {}),
    ("dskd-nofea", "dskd", {"feature_loss": False}),
)


@dataclass
class MethodBenchmark:
    """The measurements; :meth:`as_dict` is the ``--json`` output."""

    settings: dict[str, Any]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    forward_ms: dict[str, float] = field(default_factory=dict)
    epochs_s: dict[str, float] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "ratios": self.ratios,
            "steps": self.steps,
            "forward_ms": self.forward_ms,
            "epochs_s": self.epochs_s,
            "cache": self.cache,
        }


def method_benchmark(
    data: Dataset,
    *,
    teacher: str = "resnet56",
    student: str = "resnet8",
    batch_size: int = 128,
    steps: int = 10,
    rounds: int = 3,
    views: int = 8,
    epoch_rounds: int = 1,
    run_epochs: int = 15,
    workers: int = 2,
    device: str = "auto",
    variants: tuple[tuple[str, str, dict[str, Any]], ...] = VARIANTS,
    log: Callable[[str], None] = print,
) -> MethodBenchmark:
    """Measure every variant on ``data`` (see the module docstring); ``run_epochs`` is the run
    length used to weigh the cache's one-time cost against live training."""
    dev = resolve_device(device)
    if len(data.train) < batch_size:
        batch_size = len(data.train)
    config = TrainConfig(epochs=1, batch_size=batch_size, device=str(dev))
    result = MethodBenchmark(
        settings={
            "teacher": teacher,
            "student": student,
            "dataset": data.spec.name,
            "train_images": len(data.train),
            "batch_size": batch_size,
            "steps": steps,
            "rounds": rounds,
            "views": views,
            "run_epochs": run_epochs,
            "workers": workers,
            "device": str(dev),
            "threads": torch.get_num_threads(),
        }
    )
    cache_dir = tempfile.TemporaryDirectory(prefix="dihkit-bench-cache-")
    try:
        _measure(
            result,
            data,
            config,
            dev,
            teacher,
            student,
            views,
            steps,
            rounds,
            variants,
            log,
            cache_dir.name,
            epoch_rounds,
            run_epochs,
            workers,
        )
    finally:
        cache_dir.cleanup()
    return result


def _measure(
    result: MethodBenchmark,
    data: Dataset,
    config: TrainConfig,
    dev: torch.device,
    teacher: str,
    student: str,
    views: int,
    steps: int,
    rounds: int,
    variants: tuple[tuple[str, str, dict[str, Any]], ...],
    log: Callable[[str], None],
    cache_root: str,
    epoch_rounds: int,
    run_epochs: int,
    workers: int,
) -> None:
    loader_args = dict(mean=data.spec.mean, std=data.spec.std, device=dev, shuffle=True)
    live_loader = BatchLoader(
        data.train, config.batch_size, augment=True, drop_last=True, **loader_args
    )
    jobs: dict[str, Callable[[], object]] = {}
    distillers: dict[str, Distiller] = {}
    caches: dict[str, TargetCache] = {}
    for label, method, options in variants:
        log(f"building {label}")
        distiller, _ = build_distiller(
            method, teacher, student, data, config, options, progress=False
        )
        distiller.to(dev)
        distillers[label] = distiller
        jobs[label] = StepRunner(distiller, endless(live_loader), dev)
        refusal = distiller.cache_refusal() if distiller.caches_targets else "nothing to cache"
        result.steps[label] = {"method": method, "options": options, "cached_refusal": refusal}
        if refusal is None:
            cache = load_or_build(
                distiller, data, views=views, device=dev, root=cache_root, log=lambda _: None
            )
            caches[label] = cache
            if cache.built:
                result.cache.setdefault("build_s", {})[label] = round(cache.seconds, 3)
            cached_loader = CachedTargetLoader(
                data.train, cache, config.batch_size, drop_last=True, **loader_args
            )
            jobs[f"{label} cached"] = StepRunner(distiller, endless(cached_loader), dev)

    log("timing steps")
    step_s = interleaved(jobs, steps, rounds, dev)
    ce = step_s.get("ce")
    for label in result.steps:
        entry = result.steps[label]
        entry["live_ms"] = round(1000 * step_s[label], 2)
        entry["live_over_ce"] = ratio(step_s[label], ce)
        cached = step_s.get(f"{label} cached")
        entry["cached_ms"] = None if cached is None else round(1000 * cached, 2)
        entry["cached_over_ce"] = ratio(cached, ce)

    log("peak memory")
    for name, job in jobs.items():
        label, _, cached = name.partition(" ")
        key = "cached_peak_mib" if cached else "live_peak_mib"
        result.steps[label][key] = round(peak_tensor_bytes(job, dev) / 2**20, 1)

    _forward_costs(result, distillers, live_loader, dev, steps, rounds)
    _cache_facts(result, distillers, caches, data, dev)
    _epochs(result, data, config, teacher, student, views, cache_root, epoch_rounds, workers, log)

    s, e = result.steps, result.epochs_s
    build = result.cache.get("build_s", {}).get("dih")
    live_runs = None if e.get("dih") is None else 2 * run_epochs * e["dih"]
    cached_runs = None
    if build is not None and e.get("dih cached") is not None:
        cached_runs = build + 3 * run_epochs * e["dih cached"]
    result.ratios = {
        "cohort_over_teacher_forward": ratio(
            result.forward_ms.get("cohort"), result.forward_ms.get("teacher")
        ),
        "kd_over_ce_step": s.get("kd", {}).get("live_over_ce"),
        "dih_over_kd_step": ratio(s.get("dih", {}).get("live_ms"), s.get("kd", {}).get("live_ms")),
        "dih_over_ce_step": s.get("dih", {}).get("live_over_ce"),
        "cached_kd_over_ce_step": s.get("kd", {}).get("cached_over_ce"),
        "cached_dih_over_ce_step": s.get("dih", {}).get("cached_over_ce"),
        "cached_dih_over_ce_epoch": ratio(e.get("dih cached"), e.get("ce")),
        "dih_over_ce_epoch": ratio(e.get("dih"), e.get("ce")),
        "conventional_over_kit_epoch": ratio(e.get("conventional kd"), e.get("kd")),
        "conventional_over_cached_kit_epoch": ratio(e.get("conventional kd"), e.get("kd cached")),
        "cache_build_plus_3_cached_over_2_live_dih": ratio(cached_runs, live_runs),
    }


def _forward_costs(result, distillers, loader, dev, steps, rounds) -> None:
    """The cohort's forward pass (teacher + k heads, one backbone pass) against the teacher's."""
    dih = distillers.get("dih")
    if dih is None or dih.target_source() is None:
        return
    cohort = dih.target_source()
    teacher = cohort.teacher
    images = next(iter(loader))[0]

    def run(module):
        def job():
            with torch.inference_mode(), autocast(dev):
                module(images)

        return job

    def run_no_grad(module):
        def job():
            with torch.no_grad(), autocast(dev):
                module(images)

        return job

    jobs = {
        "teacher": run(teacher),
        "cohort": run(cohort),
        # Ways to make a live teacher cheaper, measured rather than assumed:
        "teacher no_grad": run_no_grad(teacher),
        "teacher fused bn": run(fuse(copy.deepcopy(teacher).eval())),
    }
    times = interleaved(jobs, steps, rounds, dev)
    result.forward_ms = {name: round(1000 * t, 2) for name, t in times.items()}


def _cache_facts(result, distillers, caches, data, dev) -> None:
    """Size of the dih cache and the error of storing its logits in float16."""
    cache = caches.get("dih")
    if cache is None:
        return
    distiller = distillers["dih"]
    result.cache["views"] = cache.views
    result.cache["mib"] = round(cache.nbytes / 2**20, 2)
    loader = CachedTargetLoader(
        data.train, cache, 256, mean=data.spec.mean, std=data.spec.std, device=dev, shuffle=False
    )
    images, _, stored = next(iter(loader))
    with torch.inference_mode(), autocast(dev):
        exact = distiller.frozen_targets(images).float()
    error = (stored - exact).abs()
    result.cache["fp16_max_abs_error"] = float(f"{float(error.max()):.3g}")
    result.cache["fp16_max_rel_error"] = float(
        f"{float((error / exact.abs().clamp_min(1e-3)).max()):.3g}"
    )
    tau = 5.0
    p = torch.softmax(exact / tau, -1)
    q = torch.softmax(stored / tau, -1)
    result.cache["fp16_max_prob_error_tau5"] = float(f"{float((p - q).abs().max()):.3g}")


def _epochs(
    result, data, config, teacher, student, views, cache_root, epoch_rounds, workers, log
) -> None:
    """Whole ``fit`` epochs (training plus the validation and test passes) and the conventional
    loop's epoch, interleaved over ``epoch_rounds``."""
    live = replace(config, cached_targets=0)
    cached = replace(config, cached_targets=views)
    runs: dict[str, Callable[[], object]] = {}
    for label, method, cfg in (
        ("ce", "ce", live),
        ("kd", "kd", live),
        ("dih", "dih", live),
        ("kd cached", "kd", cached),
        ("dih cached", "dih", cached),
    ):

        def run(method=method, cfg=cfg):
            distiller, _ = build_distiller(method, teacher, student, data, cfg, progress=False)
            fit(distiller, data, cfg, progress=False, cache_root=cache_root)

        runs[label] = run

    def conventional():
        seed_everything(0)
        t = load_teacher(teacher).model
        s = build_model(student, data.spec.num_classes, data.spec.in_channels)
        conventional_kd_epoch(t, s, data, batch_size=config.batch_size, workers=workers)

    runs["conventional kd"] = conventional
    log("timing epochs")
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(epoch_rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    result.epochs_s = {name: round(statistics.median(v), 3) for name, v in samples.items()}


def format_method_benchmark(bench: MethodBenchmark) -> str:
    """The measurements as text tables."""
    s = bench.settings
    lines = [
        f"{s['teacher']} -> {s['student']} on {s['dataset']} ({s['train_images']} train images), "
        f"batch {s['batch_size']}, {s['device']}, {s['threads']} threads; medians of "
        f"{s['rounds']} interleaved rounds of {s['steps']} steps",
        "",
        f"{'variant':<14} {'step ms':>8} {'x ce':>6} {'cached ms':>10} {'x ce':>6} "
        f"{'peak MiB':>9} {'cached MiB':>11}",
    ]

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    for label, e in bench.steps.items():
        lines.append(
            f"{label:<14} {fmt(e['live_ms'], '8.1f')} {fmt(e['live_over_ce'], '6.2f')} "
            f"{fmt(e['cached_ms'], '10.1f')} {fmt(e['cached_over_ce'], '6.2f')} "
            f"{fmt(e.get('live_peak_mib'), '9.1f')} {fmt(e.get('cached_peak_mib'), '11.1f')}"
        )
    refused = {k: e["cached_refusal"] for k, e in bench.steps.items() if e["cached_refusal"]}
    for label, why in refused.items():
        lines.append(f"  {label}: no cached variant ({why})")
    lines += ["", "fit epoch (train + val + test), seconds:"]
    lines += [f"  {name:<16} {value:8.2f}" for name, value in bench.epochs_s.items()]
    if bench.cache:
        lines += ["", f"cache: {bench.cache}"]
    lines += ["", "ratios:"]
    lines += [f"  {name:<42} {fmt(value, '.3f')}" for name, value in bench.ratios.items()]
    return "\n".join(lines)
