"""Training under torchrun: the loaders' shards, the global batch and learning rate, and real
two-process gloo runs on the CPU compared with one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dihkit.data.datasets import load_dataset, per_class_subset
from dihkit.data.loader import BatchLoader
from dihkit.errors import ConfigError
from dihkit.runs.pipeline import build_distiller
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.distributed import scale_for_world, split_batch
from dihkit.training.loop import _make_optimizer, _make_scheduler
from dihkit.training.runtime import uses_channels_last
from dihkit.training.target_cache import CachedTargetLoader, TargetCache

REPO = Path(__file__).resolve().parent.parent


def _loader(split, rank: int, world: int, **kwargs) -> BatchLoader:
    return BatchLoader(
        split, 32, mean=0.5, std=0.25, shuffle=True, seed=7, rank=rank, world_size=world, **kwargs
    )


def _epoch(loader, epoch: int) -> list[tuple[torch.Tensor, ...]]:
    loader.set_epoch(epoch)
    return list(loader)


@pytest.mark.parametrize("world", [2, 3])
def test_the_ranks_shares_together_are_the_one_process_batches(fmnist, world):
    split = per_class_subset(fmnist.train, 13)  # 130 images: batches of 32, 32, 32, 32, 2
    single = _epoch(_loader(split, 0, 1, augment=True, return_indices=True), epoch=3)
    shards = [
        _epoch(_loader(split, r, world, augment=True, return_indices=True), 3) for r in range(world)
    ]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    kept = len(shards[0])
    assert kept == (5 if world == 2 else 4)  # a last batch of 2 cannot feed 3 ranks: dropped
    for step in range(kept):
        for position in range(3):  # images, labels, indices
            joined = torch.cat([shards[r][step][position] for r in range(world)])
            assert torch.equal(joined, single[step][position])
        sizes = [len(shards[r][step][1]) for r in range(world)]
        assert max(sizes) - min(sizes) <= 1


def test_cached_target_shards_are_the_one_process_batches(fmnist):
    split = per_class_subset(fmnist.train, 10)
    n, views = len(split), 3
    generator = torch.Generator().manual_seed(0)
    cache = TargetCache(
        targets=torch.randn(views, n, 2, 10, generator=generator).half(),
        offsets=torch.randint(-4, 5, (views, n, 2), generator=generator).to(torch.int8),
        flips=torch.rand(views, n, generator=generator) < 0.5,
        key={"augment": True},
    )
    single = _epoch(CachedTargetLoader(split, cache, 32, mean=0.5, std=0.25, seed=1), 2)
    shards = [
        _epoch(
            CachedTargetLoader(split, cache, 32, mean=0.5, std=0.25, seed=1, rank=r, world_size=2),
            2,
        )
        for r in range(2)
    ]
    for step, batch in enumerate(single):
        images = torch.cat([shards[0][step][0], shards[1][step][0]])
        targets = torch.cat([shards[0][step][2], shards[1][step][2]], dim=1)  # (M, B, C)
        assert torch.equal(images, batch[0]) and torch.equal(targets, batch[2])


def test_the_global_batch_splits_evenly_or_the_lr_scales_with_it():
    config = TrainConfig(batch_size=64, lr=0.1)
    assert split_batch(config, 2) == 32
    with pytest.raises(ConfigError, match="batch_size 64 .* 3 ranks; use --batch-size 63 or 66"):
        split_batch(config, 3)
    same, message = scale_for_world(config, 2, None)
    assert (
        same is config
        and message == "2 process(es): global batch 64 = 2 x 32, lr 0.1 as configured"
    )
    scaled, message = scale_for_world(config, 4, 32)
    assert (scaled.batch_size, scaled.lr) == (128, pytest.approx(0.2))
    assert "global batch 128 = 4 x 32 (configured 64), lr scaled linearly 0.1 -> 0.2" in message
    with pytest.raises(ConfigError, match="--per-rank-batch must be a positive integer"):
        scale_for_world(config, 2, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TINY = [
    "distill", "--method", "kd", "--teacher", "resnet14", "--student", "resnet8",
    "--train-per-class", "50", "--epochs", "2", "--batch-size", "64", "--device", "cpu",
    "--quiet",
]  # fmt: skip


def _dihkit(args: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if processes == 1:
        command = [sys.executable, "-m", "dihkit", *args]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
            "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "dihkit", *args,
        ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _emulated_two_ranks(epochs: int, seed: int) -> dict[str, torch.Tensor]:
    """What two DDP ranks compute, in one process: each global batch is split into the two
    ranks' shares (the loaders' own sharding), each share's loss is taken with BatchNorm over
    that share alone, the mean of the two losses is back-propagated (DDP averages the ranks'
    gradients) and rank 0's BatchNorm running statistics are kept. Returns the student's state."""
    data = load_dataset("fmnist-mini", train_per_class=50)
    config = TrainConfig(epochs=epochs, batch_size=64, seed=seed, device="cpu")
    distiller, _ = build_distiller("kd", "resnet14", "resnet8", data, config, progress=False)
    channels_last = uses_channels_last(torch.device("cpu"))  # the layout the ranks train in
    if channels_last:
        distiller.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(distiller, config)
    scheduler = _make_scheduler(optimizer, config)
    loaders = [
        BatchLoader(
            data.train,
            64,
            mean=data.spec.mean,
            std=data.spec.std,
            shuffle=True,
            augment=True,
            seed=seed,
            rank=rank,
            world_size=2,
            channels_last=channels_last,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    student = distiller.student
    for epoch in range(epochs):
        distiller.train()
        distiller.set_epoch(epoch)
        for loader in loaders:
            loader.set_epoch(epoch)
        for first, second in zip(*loaders, strict=True):
            optimizer.zero_grad(set_to_none=True)
            loss0 = sum(distiller(*first)[1].values())
            kept = {
                k: v.clone()
                for k, v in student.state_dict().items()
                if "running" in k or "num_batches" in k
            }
            loss1 = sum(distiller(*second)[1].values())
            ((loss0 + loss1) / 2).backward()
            student.load_state_dict(kept, strict=False)  # rank 0's statistics only
            optimizer.step()
        scheduler.step()
    return {k: v.detach().clone() for k, v in student.state_dict().items()}


@pytest.mark.slow
def test_two_gloo_processes_compute_what_two_ranks_should(tmp_path):
    """The weights two gloo processes end with equal an independent one-process emulation of
    two ranks (above): 16 steps in, every weight and BatchNorm statistic within 1e-4 (they were
    bit-identical when measured; the margin allows another order of the gradient sum)."""
    out = tmp_path / "two"
    done = _dihkit([*TINY, "--out", str(out)], processes=2)
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(out / "last.pt")
    data = load_dataset("fmnist-mini", train_per_class=50)
    distiller, _ = build_distiller(
        "kd", "resnet14", "resnet8", data, TrainConfig(epochs=2, batch_size=64), progress=False
    )
    distiller.load_checkpoint_state(state)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank ran: another thread count sums floats in other orders
    try:
        expected = _emulated_two_ranks(epochs=2, seed=0)
    finally:
        torch.set_num_threads(threads)
    for name, value in distiller.student.state_dict().items():
        assert torch.allclose(value.float(), expected[name].float(), atol=1e-4, rtol=1e-4), name


@pytest.mark.slow
def test_two_gloo_processes_train_like_one(tmp_path):
    """Two processes with the same global batch and seed see exactly the one-process batches
    and average the same gradients (the tests above check both exactly); what differs from one
    process is BatchNorm, whose batch statistics each rank computes over its half of the batch.
    On this tiny config (resnet14 -> resnet8 KD, 500 images, 2 epochs, batch 64, 2,000 test
    images, one thread per process) that alone moved test accuracy by -0.15, -3.70 and +4.85
    points for seeds 0, 1 and 2 (two processes minus one), while one process over the same seeds
    ranged over 9.85 points (42.65, 32.80, 34.85; sample std 5.2). The tolerance, 6 points, is
    the largest measured gap with a margin and stays below the seed range: the two-process run
    must be as good a run of the same training as the one-process one."""
    one, two = tmp_path / "one", tmp_path / "two"
    first = _dihkit([*TINY, "--out", str(one)])
    assert first.returncode == 0, first.stderr
    both = _dihkit([*TINY, "--out", str(two)], processes=2)
    assert both.returncode == 0, both.stderr
    assert "2 process(es): global batch 64 = 2 x 32, lr 0.1 as configured" in both.stdout
    assert both.stdout.count("best epoch") == 1  # rank 0 alone prints
    assert sorted(p.name for p in two.iterdir()) == [
        "best.pt", "history.json", "last.pt", "summary.json"
    ]  # fmt: skip
    a, b = _summary(one), _summary(two)
    assert b["identity"]["world_size"] == 2 and "world_size" not in a["identity"]
    assert abs(a["test_acc_best"] - b["test_acc_best"]) < 0.06
    history = json.loads((two / "history.json").read_text())
    assert [round(r["images_per_s"] * r["seconds"]) for r in history] == [500, 500]

    # resuming the finished run trains nothing and reports the same result
    stamp = (two / "last.pt").stat().st_mtime_ns
    again = _dihkit([*TINY, "--out", str(two), "--resume"], processes=2)
    assert again.returncode == 0, again.stderr
    assert (two / "last.pt").stat().st_mtime_ns == stamp
    assert _summary(two)["test_acc_best"] == b["test_acc_best"]
    # one process may not continue a two-process run: its BatchNorm statistics would differ
    alone = _dihkit([*TINY, "--out", str(two), "--resume"])
    assert alone.returncode == 2
    assert "world_size: 2 -> unset" in alone.stderr


EXPERIMENT = """\
title = "A tiny experiment"
source = "a paper, Table 9"
reported = "mean of 3 runs"

[recipe]
dataset = "cifar100"
epochs = 200
batch_size = 64
schedule = "cosine"

[heads]
lr = 0.002

[methods.ce]

[methods.dih]

[[pairs]]
teacher = "resnet8"
student = "resnet8"
paper = { ce = 59.77, dih = 61.57 }
"""


@pytest.mark.slow
def test_reproduce_runs_under_torchrun(tmp_path):
    """A whole experiment (teacher, heads, two students) in two processes: each run trained
    once into one folder, the results written once, the environment record says 2 processes."""
    experiment, out = tmp_path / "tiny.toml", tmp_path / "out"
    experiment.write_text(EXPERIMENT)
    args = ["reproduce", str(experiment), "--profile", "smoke", "--out", str(out), "--quiet"]
    done = _dihkit(args, processes=2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("# A tiny experiment") == 1
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [r["folder"] for r in rows] == [
        "teachers/resnet8", "teachers/resnet8-heads-linear",
        "students/resnet8/ce/seed-0", "students/resnet8-resnet8/dih/seed-0",
    ]  # fmt: skip
    for row in rows:
        summary = _summary(out / row["folder"])
        assert summary["identity"]["world_size"] == 2
        assert row["test_pct_best"] == pytest.approx(100 * summary["test_acc_best"])
    assert json.loads((out / "environment.json").read_text())["world_size"] == 2
