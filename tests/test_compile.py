"""``--compile``: the training step through ``torch.compile``, same results and checkpoints."""

from __future__ import annotations

import torch

from dihkit.cli.commands import config_from
from dihkit.cli.main import build_parser
from dihkit.runs.pipeline import distill
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.identity import run_identity


def test_a_compiled_run_trains_the_same_weights_and_checkpoints(tiny, tmp_path, monkeypatch):
    """Compiled with dynamo's ``eager`` backend (graph capture without code generation, which
    would take minutes on a CPU) the run must give bit-identical weights, and its checkpoint
    keys must be the plain student's (``nn.Module.compile`` works in place)."""
    calls = []
    real = torch.compile

    def eager(*args, **kwargs):
        calls.append(kwargs.get("backend"))
        return real(*args, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", eager)
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    plain, _ = distill(
        "kd", "resnet14", "resnet8", tiny, config, out_dir=tmp_path / "a", progress=False
    )
    compiled, _ = distill(
        "kd", "resnet14", "resnet8", tiny, TrainConfig(**{**config.__dict__, "compile": True}),
        out_dir=tmp_path / "b", progress=False,
    )  # fmt: skip
    assert calls, "torch.compile was not called"
    for (name, a), (_, b) in zip(
        plain.student.state_dict().items(), compiled.student.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    keys = [set(load_checkpoint(tmp_path / f / "best.pt")["model"]["state_dict"]) for f in "ab"]
    assert keys[0] == keys[1] and not any("_orig_mod" in k for k in keys[1])


def test_compile_is_a_flag_and_not_part_of_a_runs_identity(tiny):
    args = build_parser().parse_args(
        [
            "distill",
            "--method",
            "kd",
            "--teacher",
            "resnet14",
            "--student",
            "resnet8",
            "--out",
            "x",
            "--compile",
        ]
    )
    assert config_from(args).compile is True
    on, off = TrainConfig(compile=True), TrainConfig()
    assert run_identity("kd", "resnet8", tiny, on) == run_identity("kd", "resnet8", tiny, off)
