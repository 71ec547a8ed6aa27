"""The training loop shared by every method: SGD, a schedule, validation-based selection, resumable
atomic checkpoints and a per-epoch history.

The loop trains any :class:`~dihkit.training.trainable.Trainable` (every method's distiller);
its settings are a :class:`~dihkit.training.config.TrainConfig`, its report a
:class:`~dihkit.training.history.FitResult`, its resume check lives in
:mod:`dihkit.training.resume` and its ``torchrun`` wrapper in :mod:`dihkit.training.distributed`.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dihkit.data.datasets import Dataset
from dihkit.data.loader import BatchLoader
from dihkit.errors import ConfigError, DivergenceError
from dihkit.files import write_json_atomic
from dihkit.training import distributed, run_folder
from dihkit.training.checkpoint import save_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.divergence import DivergenceWatch, check_finite_weights
from dihkit.training.evaluation import evaluate, member_accuracy
from dihkit.training.fits import NO_VALIDATION, check_batch_fits, check_compatible
from dihkit.training.history import EpochRecord, FitResult
from dihkit.training.identity import run_identity
from dihkit.training.resume import BEST, LAST, kept_epoch, resume_run
from dihkit.training.runtime import (
    autocast,
    compile_for_training,
    configure_device,
    numeric_environment,
    resolve_device,
    rng_state,
    uses_channels_last,
)
from dihkit.training.target_cache import CachedTargetLoader, load_or_build
from dihkit.training.trainable import Trainable

HISTORY_FILE, SUMMARY_FILE = "history.json", "summary.json"


def _make_optimizer(distiller: Trainable, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in distiller.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{type(distiller).__name__} has no trainable parameters")
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=config.resolved_milestones(), gamma=config.gamma
    )


def _training_loader(
    distiller: Trainable,
    data: Dataset,
    config: TrainConfig,
    device: torch.device,
    channels_last: bool,
    progress: bool,
    cache_root: str | Path | None = None,
) -> BatchLoader:
    """The shuffled, augmented training loader; with ``config.cached_targets`` it serves cached
    views with their frozen targets (building the cache on first use)."""
    common = dict(
        mean=data.spec.mean,
        std=data.spec.std,
        device=device,
        shuffle=True,
        seed=config.seed,
        channels_last=channels_last,
        rank=distributed.rank() if distributed.active() else 0,
        world_size=distributed.world_size() if distributed.active() else 1,
    )
    if not config.cached_targets:
        return BatchLoader(data.train, config.batch_size, augment=config.augment, **common)
    if not distributed.is_main():
        distributed.barrier()  # rank 0 builds (or checks) the cache first, the others read it
    cache = load_or_build(
        distiller,
        data,
        views=config.cached_targets,
        seed=config.cache_seed,
        root=cache_root,
        augment=config.augment,
        device=device,
        batch_size=config.eval_batch_size,
        channels_last=channels_last,
        progress=progress,
        log=tqdm.write,
    )
    if distributed.is_main():
        distributed.barrier()
    return CachedTargetLoader(data.train, cache, config.batch_size, **common)


def fit(
    distiller: Trainable,
    data: Dataset,
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
    cache_root: str | Path | None = None,
) -> FitResult:
    """Train ``distiller`` on ``data.train``, select on ``data.val``, report on ``data.test``.

    Every step sums the named loss terms the distiller returns. With ``out_dir`` the run writes
    ``last.pt`` after every epoch and ``best.pt`` whenever validation accuracy improves, plus
    ``history.json`` and, at the end, ``summary.json`` (all through the atomic writer of
    :mod:`dihkit.files`); ``resume=True`` continues from ``last.pt`` and, on CPU,
    ends with exactly the weights an uninterrupted run would have. On return the distiller holds
    the validation-selected weights.

    Model selection uses ``distiller.predict``, which for every method is the student's main
    classifier only (exits, heads and peers never vote). A distiller with ``select_best = False``
    (a preparatory stage such as FitNets' hint stage) keeps its last epoch's weights instead.

    The run folder is claimed first (:func:`dihkit.training.run_folder.claim`): a folder holding
    another run's files is refused unless ``resume`` or ``overwrite``, and a folder in use by
    another process is refused. Resuming (:mod:`dihkit.training.resume`) compares the run's
    identity (:mod:`dihkit.training.identity`) with the one ``last.pt`` was written by and
    reports every difference; ``resume`` without a ``last.pt`` starts from scratch. A non-finite
    loss stops the run with a :class:`DivergenceError`; no non-finite weights are ever saved, so
    ``last.pt`` keeps the last finite epoch.

    Tensors a distiller reports through ``epoch_records`` are saved as
    ``records/epoch-NNN.pt`` in the run folder. With ``config.cached_targets`` the frozen
    targets come from the cache in ``cache_root`` (default:
    :func:`dihkit.training.target_cache.default_cache_root`), built there on first use.
    """
    with run_folder.claim(out_dir, resume=resume, overwrite=overwrite):
        try:
            return _fit(
                distiller,
                data,
                config,
                out_dir=out_dir,
                resume=resume,
                progress=progress,
                meta=meta,
                cache_root=cache_root,
            )
        except DivergenceError as exc:
            raise DivergenceError(f"{exc}; {kept_epoch(out_dir)}") from None


def _fit(
    distiller: Trainable,
    data: Dataset,
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
    cache_root: str | Path | None = None,
) -> FitResult:
    """The body of :func:`fit`, inside the claimed run folder."""
    config = config or TrainConfig()
    check_compatible(distiller, data)
    check_batch_fits(config, data)
    validated = len(data.val) > 0  # without a validation split the last epoch is selected
    main = distributed.is_main()
    world = distributed.world_size() if distributed.active() else 1
    if world > 1 and main:  # also checks that the global batch splits evenly
        tqdm.write(f"dihkit: {distributed.scale_for_world(config, world, None)[1]}")
    elif world > 1:
        distributed.split_batch(config, world)
    device = distributed.local_device(resolve_device(config.device))
    channels_last = uses_channels_last(device)
    configure_device(device)
    distiller.to(device)
    if channels_last:
        distiller.to(memory_format=torch.channels_last)
    if config.compile:
        compile_for_training(distiller)
    step_module = distributed.data_parallel(distiller, device) if world > 1 else distiller
    optimizer = _make_optimizer(distiller, config)
    scheduler = _make_scheduler(optimizer, config)
    loader = _training_loader(distiller, data, config, device, channels_last, progress, cache_root)
    out_path = Path(out_dir) if out_dir is not None else None
    history: list[EpochRecord] = []
    best_epoch, best_val, best_state = 0, -math.inf, None
    start_epoch = 0
    base_payload = {
        "method": distiller.method,
        "dataset": data.spec.name,
        "image_size": data.spec.image_size,
        "config": asdict(config),
        "meta": meta or {},
        "identity": run_identity(
            distiller.method, getattr(distiller.student, "arch", "?"), data, config, meta
        ),
    }
    if world > 1:  # per-rank BatchNorm statistics make it another run (absent for one process)
        base_payload["identity"]["world_size"] = world

    resumed = None
    if resume and out_path is not None:
        resumed = resume_run(out_path, distiller, optimizer, scheduler, base_payload["identity"])
    if resumed is not None:
        history, start_epoch = resumed.history, resumed.start_epoch
        best_epoch, best_state = resumed.best_epoch, resumed.best_state
        kept = _finite_or_none(resumed.best_val)
        best_val = -math.inf if kept is None else kept
    if not validated and main and start_epoch < config.epochs:
        tqdm.write(f"dihkit: {NO_VALIDATION}", file=sys.stderr)

    def accuracy_on(split: str) -> Tensor:
        return evaluate(
            distiller.predict, data, split, device=device, batch_size=config.eval_batch_size
        )

    epochs = tqdm(
        range(start_epoch, config.epochs),
        desc=f"{distiller.method} {distiller.describe()}",
        disable=not (progress and main),
        unit="epoch",
        initial=start_epoch,
        total=config.epochs,
    )
    for epoch in epochs:
        record = _train_one_epoch(
            distiller, step_module, loader, optimizer, device, epoch, progress and main
        )
        scheduler.step()
        check_finite_weights(distiller.state_dict().values(), epoch)
        if not main:  # rank 0 validates and writes; the others wait for it
            distiller.clear_records()
            distributed.barrier()
            continue
        if validated:
            member_acc = accuracy_on("val")
            record.val_member_acc = [float(a) for a in member_acc.reshape(-1)]
            record.val_acc = float(member_acc.mean())
        history.append(record)
        shown = f"{100 * record.val_acc:.2f}%" if validated else "-"
        epochs.set_postfix(loss=f"{record.train_loss:.3f}", val=shown)

        payload = {
            **base_payload,
            **distiller.checkpoint_state(),
            "epoch": epoch + 1,
            "history": [asdict(r) for r in history],
        }
        # With no validation data (val_fraction=0), the last epoch is the selected one.
        improved = not validated or record.val_acc > best_val
        improved = improved or not getattr(distiller, "select_best", True)
        if improved:
            best_epoch, best_val = epoch + 1, record.val_acc if validated else -math.inf
            best_state = copy.deepcopy(payload)
        payload["best"] = {"epoch": best_epoch, "val_acc": _finite_or_none(best_val)}
        if out_path is not None:
            if improved:
                save_checkpoint(out_path / BEST, {**payload})
            save_checkpoint(
                out_path / LAST,
                {
                    **payload,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                },
            )
            write_json_atomic(out_path / HISTORY_FILE, history_rows(history))
        records = distiller.epoch_records()
        if records and out_path is not None:
            save_checkpoint(out_path / "records" / f"epoch-{epoch + 1:03d}.pt", records)
        distiller.clear_records()
        distributed.barrier()

    if not main:  # every rank returns rank 0's result; this rank keeps the last epoch's weights
        return distributed.broadcast(None)
    last = accuracy_on("test")
    best = last  # the selected epoch is the last one: its weights are already loaded
    if best_state is not None and history and best_epoch != history[-1].epoch:
        distiller.load_checkpoint_state(best_state)
        best = accuracy_on("test")
    elif best_state is not None:
        distiller.load_checkpoint_state(best_state)  # bit-identical weights; no re-evaluation
    result = FitResult(
        history=history,
        best_epoch=best_epoch,
        best_val_acc=_finite_or_none(best_val),  # None: no validation split
        test_acc_best=float(best.mean()),
        test_acc_last=float(last.mean()),
        test_member_acc_best=[float(a) for a in best.reshape(-1)],
        out_dir=str(out_path) if out_path is not None else None,
    )
    if out_path is not None:  # the history again: a resumed run may have had no epoch left
        write_json_atomic(out_path / HISTORY_FILE, history_rows(history))
        summary = {k: v for k, v in asdict(result).items() if k != "history"}
        summary["identity"] = base_payload["identity"]
        summary["environment"] = numeric_environment(device)  # what the trajectory depends on
        write_json_atomic(out_path / SUMMARY_FILE, summary)
    return distributed.broadcast(result)


def history_rows(history: list[EpochRecord]) -> list[dict[str, Any]]:
    """The history as plain JSON rows: a value that is not a finite number (``val_acc``
    without a validation split) is written as null, never as the non-standard ``NaN``."""
    return [
        {
            k: v if not isinstance(v, float) or math.isfinite(v) else None
            for k, v in asdict(r).items()
        }
        for r in history
    ]


def _finite_or_none(value: float | None) -> float | None:
    """A validation accuracy, or None where there is none (no validation split)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _train_one_epoch(
    distiller: Trainable,
    step_module: nn.Module,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    progress: bool,
) -> EpochRecord:
    distiller.train()
    distiller.set_epoch(epoch)
    loader.set_epoch(epoch)
    lr = optimizer.param_groups[0]["lr"]
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    term_sums: dict[str, Tensor] = {}
    seen = 0
    watch = DivergenceWatch(device, epoch, lr, len(loader))
    start = time.perf_counter()
    batches = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
    for step, batch in enumerate(batches, start=1):
        labels = batch[1]
        with autocast(device):
            logits, losses = step_module(*batch)  # the distiller, or its DDP wrapper
            loss = sum(losses.values())
        watch.observe(step, loss, losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = labels.shape[0]
        seen += n
        loss_sum += loss.detach() * n
        correct += member_accuracy(logits.detach(), labels).mean() * n
        for name, term in losses.items():
            term_sums[name] = term_sums.get(name, 0) + term.detach() * n
    watch.check()
    if distributed.active():  # the epoch's numbers over every rank's share of the data
        names = sorted(term_sums)
        totals = torch.stack(
            [loss_sum, correct, torch.tensor(float(seen), device=device)]
            + [torch.as_tensor(term_sums[n], device=device, dtype=torch.float32) for n in names]
        )
        totals = distributed.all_sum(totals.float())
        loss_sum, correct, seen = totals[0], totals[1], int(totals[2].item())
        term_sums = dict(zip(names, totals[3:], strict=True))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return EpochRecord(
        epoch=epoch + 1,
        lr=lr,
        train_loss=float(loss_sum) / seen,
        train_acc=float(correct) / seen,
        val_acc=float("nan"),
        seconds=seconds,
        images_per_s=seen / seconds,
        losses={name: float(total) / seen for name, total in term_sums.items()},
    )
