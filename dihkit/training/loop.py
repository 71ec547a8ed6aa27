"""The training loop shared by every method: SGD, a schedule, validation-based selection, resumable
atomic checkpoints and a per-epoch history."""

from __future__ import annotations

import copy
import inspect
import json
import math
import numbers
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dihkit.data.datasets import Dataset
from dihkit.data.loader import BatchLoader
from dihkit.errors import ConfigError, DivergenceError
from dihkit.methods.base import Distiller
from dihkit.training import distributed, run_folder
from dihkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dihkit.training.divergence import DivergenceWatch, check_finite_weights
from dihkit.training.evaluation import evaluate, member_accuracy
from dihkit.training.identity import RESUME_MAY_CHANGE, identity_differences, run_identity
from dihkit.training.runtime import (
    autocast,
    compile_for_training,
    configure_device,
    resolve_device,
    rng_state,
    set_rng_state,
    uses_channels_last,
)
from dihkit.training.target_cache import CachedTargetLoader, load_or_build

SCHEDULES = ("cosine", "multistep")
MAX_SEED = 2**63 - 1  # torch, NumPy and the loader's epoch seeds all take it


def _check_number(
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """A :class:`ConfigError` unless ``value`` is a finite real number within the bounds."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
        raise ConfigError(
            f"{name} must be a finite number in {left}{low:g}, {high:g}{right}, got {value!r}"
        )


def _whole(value: Any) -> int:
    """``value`` as an int if it is a whole number (``3`` or ``3.0``), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value):
        raise ValueError(value)
    return int(value)


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults follow the DIH paper's recipe (SGD, Nesterov, momentum 0.9,
    weight decay 5e-4), scaled down to a short run."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()  # multistep only; empty means 30%, 60% and 90% of the epochs
    gamma: float = 0.1
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 1000
    cached_targets: int = 0  # V > 0: train from V cached views per image (no teacher forward)
    cache_seed: int = 0  # seeds the cached views; shared by runs of any training seed
    compile: bool = False  # torch.compile the training step (same results, other kernels)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile must be True or False, got {self.compile!r}")
        for name in ("cached_targets", "cache_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(
                    f"{name} must be a non-negative integer, got {value!r}"
                    + ("; 0 trains with the live teacher" if name == "cached_targets" else "")
                )
        _check_number("lr", self.lr, low=0.0, low_open=True)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _check_number("gamma", self.gamma, low=0.0, low_open=True)
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed <= MAX_SEED
        ):
            raise ConfigError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}"
            )
        try:
            self.milestones = tuple(_whole(m) for m in self.milestones)
        except (TypeError, ValueError):
            raise ConfigError(
                f"milestones must be whole epoch numbers, got {self.milestones!r}"
            ) from None
        if any(m < 1 or m > self.epochs for m in self.milestones):
            raise ConfigError(
                f"milestones {self.milestones} must lie between 1 and epochs={self.epochs}"
            )

    def resolved_milestones(self) -> list[int]:
        """The multistep milestones, defaulting to 30/60/90% of the run (60/120/180 of 200)."""
        if self.milestones:
            return sorted(self.milestones)
        return sorted({max(1, round(self.epochs * f)) for f in (0.3, 0.6, 0.9)})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from :func:`dataclasses.asdict` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


_CONFIG_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


@dataclass
class EpochRecord:
    """One row of the training history."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_acc: float
    seconds: float
    images_per_s: float
    losses: dict[str, float] = field(default_factory=dict)
    val_member_acc: list[float] = field(default_factory=list)


@dataclass
class FitResult:
    """What :func:`fit` returns. Test accuracy is measured once, at the end, for the last-epoch
    weights and for the validation-selected (best) weights."""

    history: list[EpochRecord]
    best_epoch: int
    best_val_acc: float
    test_acc_best: float
    test_acc_last: float
    test_member_acc_best: list[float] = field(default_factory=list)
    out_dir: str | None = None

    def table(self) -> str:
        """The history as a fixed-width text table."""
        return format_history(self.history)


def format_history(history: list[EpochRecord]) -> str:
    """Render a history as a small text table (one row per epoch)."""
    header = f"{'epoch':>5} {'lr':>8} {'loss':>8} {'train%':>7} {'val%':>7} {'sec':>6} {'img/s':>7}"
    rows = [header]
    for r in history:
        rows.append(
            f"{r.epoch:>5} {r.lr:>8.4f} {r.train_loss:>8.4f} {100 * r.train_acc:>7.2f} "
            f"{100 * r.val_acc:>7.2f} {r.seconds:>6.1f} {r.images_per_s:>7.0f}"
        )
    return "\n".join(rows)


def _make_optimizer(distiller: Distiller, config: TrainConfig) -> torch.optim.Optimizer:
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


def _check_compatible(distiller: Distiller, data: Dataset) -> None:
    model = distiller.student
    if getattr(model, "in_channels", data.spec.in_channels) != data.spec.in_channels:
        raise ConfigError(
            f"model {getattr(model, 'arch', '?')} takes in_channels={model.in_channels} but "
            f"{data.spec.name} images have {data.spec.in_channels} channel(s); "
            f"build the model with in_channels={data.spec.in_channels}"
        )
    if getattr(model, "num_classes", data.spec.num_classes) != data.spec.num_classes:
        raise ConfigError(
            f"model has num_classes={model.num_classes} but {data.spec.name} has "
            f"{data.spec.num_classes} classes; build it with num_classes={data.spec.num_classes}"
        )


def _training_loader(
    distiller: Distiller,
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
    distiller: Distiller,
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
    ``last.pt`` after every epoch and ``best.pt`` whenever validation accuracy improves (both
    atomically), plus ``history.json``; ``resume=True`` continues from ``last.pt`` and, on CPU,
    ends with exactly the weights an uninterrupted run would have. On return the distiller holds
    the validation-selected weights.

    Model selection uses ``distiller.predict``, which for every method is the student's main
    classifier only (exits, heads and peers never vote). A distiller with ``select_best = False``
    (a preparatory stage such as FitNets' hint stage) keeps its last epoch's weights instead.

    The run folder is claimed first (:func:`dihkit.training.run_folder.claim`): a folder holding
    another run's files is refused unless ``resume`` or ``overwrite``, and a folder in use by
    another process is refused. Resuming compares the run's identity
    (:mod:`dihkit.training.identity`) with the
    one ``last.pt`` was written by and reports every difference; ``resume`` without a ``last.pt``
    starts from scratch. A non-finite loss stops the run with a :class:`DivergenceError`; no
    non-finite weights are ever saved, so ``last.pt`` keeps the last finite epoch.

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
            raise DivergenceError(f"{exc}; {_kept(out_dir)}") from None


def _kept(out_dir: str | Path | None) -> str:
    """Which epoch a diverged run's ``last.pt`` keeps."""
    last = Path(out_dir) / "last.pt" if out_dir is not None else None
    if last is None or not last.is_file():
        return "no checkpoint was saved"
    return f"{last} keeps epoch {load_checkpoint(last)['epoch']}, the last finite one"


def _fit(
    distiller: Distiller,
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
    _check_compatible(distiller, data)
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
    step_module = _data_parallel(distiller, device) if world > 1 else distiller
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

    if resume and out_path is not None and (out_path / "last.pt").is_file():
        state = load_checkpoint(out_path / "last.pt")
        _check_same_run(out_path / "last.pt", state, base_payload)
        distiller.load_checkpoint_state(state)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        history = [EpochRecord(**row) for row in state["history"]]
        start_epoch = state["epoch"]
        best_epoch, best_val = state["best"]["epoch"], state["best"]["val_acc"]
        best_state = load_checkpoint(out_path / "best.pt") if best_epoch else None

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
        member_acc = accuracy_on("val")
        record.val_member_acc = [float(a) for a in member_acc.reshape(-1)]
        record.val_acc = float(member_acc.mean())
        history.append(record)
        epochs.set_postfix(loss=f"{record.train_loss:.3f}", val=f"{100 * record.val_acc:.2f}%")

        payload = {
            **base_payload,
            **distiller.checkpoint_state(),
            "epoch": epoch + 1,
            "history": [asdict(r) for r in history],
        }
        # With no validation data (val_fraction=0), the last epoch is the selected one.
        improved = record.val_acc > best_val or math.isnan(record.val_acc)
        improved = improved or not getattr(distiller, "select_best", True)
        if improved:
            best_epoch, best_val = epoch + 1, record.val_acc
            best_state = copy.deepcopy(payload)
        payload["best"] = {"epoch": best_epoch, "val_acc": best_val}
        if out_path is not None:
            if improved:
                save_checkpoint(out_path / "best.pt", {**payload})
            save_checkpoint(
                out_path / "last.pt",
                {
                    **payload,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                },
            )
            (out_path / "history.json").write_text(json.dumps(payload["history"], indent=1))
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
        best_val_acc=float(best_val),
        test_acc_best=float(best.mean()),
        test_acc_last=float(last.mean()),
        test_member_acc_best=[float(a) for a in best.reshape(-1)],
        out_dir=str(out_path) if out_path is not None else None,
    )
    if out_path is not None:
        summary = {k: v for k, v in asdict(result).items() if k != "history"}
        summary["identity"] = base_payload["identity"]
        (out_path / "summary.json").write_text(json.dumps(summary, indent=1))
    return distributed.broadcast(result)


def _data_parallel(distiller: Distiller, device: torch.device) -> nn.Module:
    """The distiller wrapped for DistributedDataParallel: the gradients of its trainable
    parameters are averaged over the ranks. Frozen parameters (teachers, frozen heads) and all
    buffers are left out of DDP's synchronisation (every rank holds the same frozen weights;
    BatchNorm statistics stay per rank and rank 0's are the ones evaluated and saved)."""
    from torch.nn.parallel import DistributedDataParallel

    ignored = [name for name, p in distiller.named_parameters() if not p.requires_grad]
    ignored += [name for name, _ in distiller.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(distiller, ignored)
    # No buffer sync before each forward (the flag was renamed in newer PyTorch releases).
    names = inspect.signature(DistributedDataParallel).parameters
    no_sync = {
        "forward_sync_buffers" if "forward_sync_buffers" in names else "broadcast_buffers": False
    }
    return DistributedDataParallel(
        distiller, device_ids=[device.index] if device.type == "cuda" else None, **no_sync
    )


def _check_same_run(path: Path, state: dict[str, Any], payload: dict[str, Any]) -> None:
    """Refuse to resume ``path`` with settings other than the ones it was written with."""
    if "identity" in state:
        changed = identity_differences(state["identity"], payload["identity"])
    else:  # written before run identities: compare what it holds
        changed = [
            f"{key}: {state.get(key)!r} -> {payload[key]!r}"
            for key in ("method", "dataset")
            if state.get(key) != payload[key]
        ]
        changed += [
            f"{name}: {state['config'].get(name)!r} -> {value!r}"
            for name, value in payload["config"].items()
            if name not in RESUME_MAY_CHANGE
            and state["config"].get(name, _CONFIG_DEFAULTS.get(name)) != value
        ]
    if changed:
        raise CheckpointError(
            f"cannot resume {path}: it was run with other settings ({'; '.join(changed)}); "
            "rerun with the original settings, pass --overwrite to start again, or pick another "
            "--out folder"
        )


def _train_one_epoch(
    distiller: Distiller,
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
