"""A KD epoch written the usual way, as the yardstick for the kit's own loop in
``dihkit benchmark``: torchvision transforms on PIL images, a ``DataLoader`` with worker
processes, and the frozen teacher's forward pass at every step."""

from __future__ import annotations

import time

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision import transforms

from dihkit.data.datasets import Dataset, Split
from dihkit.losses import kd_student_loss

__all__ = ["PILSplit", "conventional_kd_epoch"]


class PILSplit(TorchDataset):
    """A split served one PIL image at a time through a torchvision transform."""

    def __init__(self, split: Split, transform: transforms.Compose) -> None:
        self.images = split.images.numpy()
        self.labels = split.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = self.images[index]
        image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
        return self.transform(image), self.labels[index]


def conventional_kd_epoch(
    teacher: nn.Module,
    student: nn.Module,
    data: Dataset,
    *,
    batch_size: int = 128,
    workers: int = 2,
    tau: float = 5.0,
    alpha: float = 0.1,
    lr: float = 0.1,
    max_steps: int | None = None,
    seed: int = 0,
) -> tuple[float, int]:
    """Train ``student`` for one epoch of KD from ``teacher`` (kept in eval mode, run under
    ``torch.no_grad``) the conventional way; return (seconds, images seen). ``max_steps``
    stops early (for quick runs); the time includes starting the workers."""
    spec = data.spec
    transform = transforms.Compose(
        [
            transforms.RandomCrop(spec.image_size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(spec.mean, spec.std),
        ]
    )
    loader = DataLoader(
        PILSplit(data.train, transform),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.SGD(
        student.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    teacher.eval()
    student.train()
    seen = 0
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        with torch.no_grad():
            teacher_logits = teacher(images)
        terms = kd_student_loss(student(images), teacher_logits, labels, tau, alpha)
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimizer.step()
        seen += len(labels)
    return time.perf_counter() - start, seen
