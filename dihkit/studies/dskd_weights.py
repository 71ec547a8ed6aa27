"""DSKD's recorded adaptive weights (its Eq. 7-8, Fig. 2), read back from a run folder.

A ``dskd`` run with ``record_weights=True`` saves, after each epoch, ``records/epoch-NNN.pt``: a
dict with ``kd_weights`` and ``fea_weights``, each a float tensor ``[samples seen in the epoch,
shallow classifiers]`` whose rows sum to 1 (one row per training sample, in the order seen).
The training loop writes each with :func:`dihkit.training.checkpoint.save_checkpoint`, so they
are read back with the verified loader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from dihkit.errors import CheckpointError
from dihkit.training.checkpoint import load_checkpoint

WEIGHT_NAMES = ("kd_weights", "fea_weights")
DEFAULT_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)

WeightRecords = dict[int, dict[str, Tensor]]  # epoch (1-based) -> {name: [samples, classifiers]}


def load_weight_records(run_dir: str | Path) -> WeightRecords:
    """Every epoch's recorded weights of a run folder, ``{epoch: {name: tensor}}``, by epoch;
    a :class:`FileNotFoundError` naming the fix when the run recorded none, and one
    :class:`~dihkit.errors.CheckpointError` naming the file and the fix for a damaged record
    (read with :func:`~dihkit.training.checkpoint.load_checkpoint`: ``weights_only`` and the
    digest checked)."""
    paths = sorted(Path(run_dir).glob("records/epoch-*.pt"))
    if not paths:
        raise FileNotFoundError(
            f"{run_dir} has no records/epoch-*.pt; run dskd with record_weights=True"
        )
    records = {}
    for path in paths:
        epoch = int(path.stem.split("-")[1])
        try:
            payload = load_checkpoint(path)
        except CheckpointError:
            raise CheckpointError(
                f"weight record {str(path)!r} is damaged or not a dihkit record; delete the run "
                f"folder {str(run_dir)!r} and run dskd with record_weights=True again"
            ) from None
        records[epoch] = {k: v.float() for k, v in payload.items() if k in WEIGHT_NAMES}
    return records


def sum_to_one_gap(records: WeightRecords) -> float:
    """The largest ``|sum over classifiers - 1|`` of any sample's weights, over every epoch and
    both kinds of weights (Eq. 7-8 make each sample's weights a distribution)."""
    gaps = [
        (weights.sum(dim=1) - 1).abs().max().item()
        for epoch in records.values()
        for weights in epoch.values()
        if weights.numel()
    ]
    return max(gaps, default=0.0)


def weight_trajectory(
    records: WeightRecords,
    name: str = "kd_weights",
    classifier: int = 0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> dict[str, list]:
    """How one shallow classifier's per-sample weight moves over training: ``{"epoch", "mean",
    "std", "quantiles": {q: [per epoch]}}`` (epochs that recorded ``name``)."""
    epochs = [e for e in sorted(records) if name in records[e]]
    result: dict[str, list] = {"epoch": epochs, "mean": [], "std": []}
    by_quantile: dict[float, list[float]] = {float(q): [] for q in quantiles}
    levels = torch.tensor([float(q) for q in quantiles])
    for epoch in epochs:
        column = records[epoch][name][:, classifier]
        result["mean"].append(column.mean().item())
        result["std"].append(column.std().item() if column.numel() > 1 else 0.0)
        for q, value in zip(by_quantile, torch.quantile(column, levels).tolist(), strict=True):
            by_quantile[q].append(value)
    result["quantiles"] = by_quantile
    return result


def weight_histograms(
    records: WeightRecords, name: str = "kd_weights", bins: int = 40
) -> dict[str, list]:
    """Histograms of every shallow classifier's per-sample weight at every epoch, in ``bins``
    equal bins over the range the weights take in any epoch (padded, and including the equal
    weight 1/classifiers; weights near 1/2 would fill two bins of [0, 1]):
    ``{"epoch", "edges", "fractions"}``, where ``fractions[e][c]`` is classifier ``c``'s share
    of samples per bin at the ``e``-th recorded epoch."""
    epochs = [e for e in sorted(records) if name in records[e]]
    if not epochs:
        return {"epoch": [], "edges": torch.linspace(0, 1, bins + 1).tolist(), "fractions": []}
    count = records[epochs[0]][name].shape[1]
    low = min([1 / count] + [float(records[e][name].min()) for e in epochs])
    high = max([1 / count] + [float(records[e][name].max()) for e in epochs])
    pad = max(0.05 * (high - low), 0.005)
    low, high = max(0.0, low - pad), min(1.0, high + pad)
    edges = torch.linspace(low, high, bins + 1)
    fractions = []
    for epoch in epochs:
        weights = records[epoch][name]
        per_classifier = []
        for c in range(weights.shape[1]):
            counts = torch.histc(weights[:, c].float(), bins=bins, min=low, max=high)
            per_classifier.append((counts / max(1, weights.shape[0])).tolist())
        fractions.append(per_classifier)
    return {"epoch": epochs, "edges": edges.tolist(), "fractions": fractions}


def describe_weights(records: WeightRecords, classifier_names: Sequence[str]) -> list[str]:
    """One line per kind of weight and classifier at the first and the last recorded epoch (once
    when they are the same): mean and the 10-90 % range of the per-sample weights."""
    first, last = min(records), max(records)
    lines = []
    for name in WEIGHT_NAMES:
        if name not in records[last]:
            continue
        for c, classifier in enumerate(classifier_names):
            parts = []
            for epoch in dict.fromkeys((first, last)):
                column = records[epoch][name][:, c]
                low, high = torch.quantile(column, torch.tensor([0.1, 0.9])).tolist()
                parts.append(
                    f"epoch {epoch}: mean {column.mean().item():.3f}, 10-90% {low:.3f}-{high:.3f}"
                )
            lines.append(f"{name} of {classifier}: " + "; ".join(parts))
    return lines


def records_summary(records: WeightRecords, classifier_names: Sequence[str]) -> dict[str, object]:
    """Plain numbers for a results file: samples per epoch, the sum-to-one gap, and each kind's
    trajectory for every classifier (see :func:`weight_trajectory`)."""
    last = max(records)
    trajectories: Mapping[str, object] = {
        name: {
            classifier: weight_trajectory(records, name, c)
            for c, classifier in enumerate(classifier_names)
        }
        for name in WEIGHT_NAMES
        if name in records[last]
    }
    samples = {str(e): int(next(iter(r.values())).shape[0]) for e, r in records.items() if r}
    return {
        "epochs": sorted(records),
        "samples_per_epoch": samples,
        "sum_to_one_gap": sum_to_one_gap(records),
        "trajectories": trajectories,
    }
