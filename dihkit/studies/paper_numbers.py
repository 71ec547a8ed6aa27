"""Published numbers shown beside the kit's own, each labelled with its source.

These are the papers' results on CIFAR with their full recipes on a GPU (200 epochs in the DIH
paper, 240 in the MHKD and DSKD papers); the kit's notebooks run small embedded subsets
(cifar10-mini, fmnist-mini) for minutes on a CPU, so the two are never directly comparable: the
papers' numbers show the *direction* and *size* of the effects the authors reported, the
notebooks show what happens at laptop scale.
"""

from __future__ import annotations

from dataclasses import dataclass

DIH_PAPER = (
    "Asadian & Salehi-Abari, Distilling Knowledge via Intermediate Classifier Heads "
    "(DIH paper), Table 2"
)


@dataclass(frozen=True)
class PaperRow:
    """One teacher-student pair of a published table: student accuracy (%) per method."""

    teacher: str
    student: str
    capacity_ratio: float  # teacher parameters / student parameters, as printed in the paper
    dataset: str
    accuracy: dict[str, float]  # method -> published mean accuracy in percent


# DIH paper, Table 2: ResNet-8 student, mean of three runs with different seeds, test accuracy
# in percent; "ce" is the student trained alone (the same number for every teacher).
DIH_TABLE2: tuple[PaperRow, ...] = (
    PaperRow("resnet110", "resnet8", 21.75, "cifar10", {"ce": 87.64, "kd": 88.12, "dih": 88.59}),
    PaperRow("vgg11", "resnet8", 115.87, "cifar10", {"ce": 87.64, "kd": 88.10, "dih": 88.77}),
    PaperRow("resnet34", "resnet8", 266.50, "cifar10", {"ce": 87.64, "kd": 87.92, "dih": 88.75}),
    PaperRow("resnet110", "resnet8", 21.75, "cifar100", {"ce": 59.77, "kd": 59.77, "dih": 61.94}),
    PaperRow("vgg11", "resnet8", 115.87, "cifar100", {"ce": 59.77, "kd": 59.49, "dih": 62.01}),
    PaperRow("resnet34", "resnet8", 266.50, "cifar100", {"ce": 59.77, "kd": 59.35, "dih": 62.42}),
)


def dih_table2_markdown(dataset: str | None = None) -> str:
    """The DIH paper's Table 2 as a markdown table headed as the paper's (optionally one
    dataset only: ``cifar10`` or ``cifar100``)."""
    rows = [r for r in DIH_TABLE2 if dataset is None or r.dataset == dataset]
    if not rows:
        datasets = sorted({r.dataset for r in DIH_TABLE2})
        raise ValueError(f"no rows for dataset {dataset!r}; choose one of: {', '.join(datasets)}")
    lines = [
        f"**Published, not measured here:** {DIH_PAPER} (CIFAR, 200 epochs, mean of 3 runs, %)",
        "",
        "| dataset | teacher -> student | capacity ratio | CE | KD | DIH |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = r.accuracy
        lines.append(
            f"| {r.dataset} | {r.teacher} -> {r.student} | {r.capacity_ratio:.2f} | "
            f"{acc['ce']:.2f} | {acc['kd']:.2f} | {acc['dih']:.2f} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class PaperComparisonRow:
    """One teacher of the DIH paper's Table 3: student accuracy (%) per method."""

    teacher: str
    student: str
    capacity_ratio: float
    assistant: str  # the TAKD teacher assistant
    accuracy: dict[str, float]


# DIH paper, Table 3: CIFAR-100, ResNet-8 student, the *best* of three runs (not the mean), in
# percent; TAKD's assistant in brackets in the paper, here in ``assistant``.
DIH_TABLE3_SOURCE = DIH_PAPER.replace("Table 2", "Table 3")
DIH_TABLE3: tuple[PaperComparisonRow, ...] = (
    PaperComparisonRow(
        "resnet20",
        "resnet8",
        3.50,
        "resnet14",
        {"ce": 60.06, "kd": 60.18, "fitnets": 60.25, "takd": 60.33, "dml": 59.94, "dih": 62.70},
    ),
    PaperComparisonRow(
        "resnet110",
        "resnet8",
        21.75,
        "resnet20",
        {"ce": 60.06, "kd": 60.35, "fitnets": 60.25, "takd": 59.87, "dml": 59.67, "dih": 62.48},
    ),
    PaperComparisonRow(
        "resnet34",
        "resnet8",
        266.50,
        "resnet18",
        {"ce": 60.06, "kd": 59.51, "fitnets": 59.75, "takd": 59.69, "dml": 59.56, "dih": 62.54},
    ),
)


def dih_table3_markdown() -> str:
    """The DIH paper's Table 3 (CIFAR-100, best of 3 runs) as a markdown table headed as the
    paper's."""
    methods = ("ce", "kd", "fitnets", "takd", "dml", "dih")
    lines = [
        f"**Published, not measured here:** {DIH_TABLE3_SOURCE} (CIFAR-100, 200 epochs, "
        "best of 3 runs, %)",
        "",
        "| teacher -> student | capacity ratio | TAKD assistant | "
        + " | ".join(m.upper() if m != "fitnets" else "FitNets" for m in methods)
        + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for r in DIH_TABLE3:
        values = " | ".join(f"{r.accuracy[m]:.2f}" for m in methods)
        lines.append(
            f"| {r.teacher} -> {r.student} | {r.capacity_ratio:.2f} | {r.assistant} | {values} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# MHKD and DSKD papers (notebooks 05 and 06)


@dataclass(frozen=True)
class PaperStdRow:
    """One teacher-student pair of a published table: mean accuracy (%) per column and, for the
    columns where the paper prints one, the standard deviation over its runs."""

    teacher: str
    student: str
    dataset: str
    accuracy: dict[str, float]  # column -> published mean accuracy in percent
    std: dict[str, float]  # column -> published std (only the columns printed with one)

    def cell(self, column: str) -> str:
        """``mean +/- std`` (or the mean alone when no std is printed), in percent."""
        mean = f"{self.accuracy[column]:.2f}"
        return f"{mean} +/- {self.std[column]:.2f}" if column in self.std else mean


MHKD_PAPER = (
    "Wang, Lohit, Jones & Fu, Multi-Head Knowledge Distillation for Model Compression "
    "(MHKD paper), Table 2"
)

# MHKD paper, Table 2: CIFAR-100 test accuracy in percent, one head versus all three heads
# ("Head-j": a head pair after unit j only; "all": Head-1+2+3, the full MHKD); mean (std) of
# 3 runs for the head columns; KD, FitNet, CC and RKD are copied by the paper from the CRD paper
# without a std. Keys of the head columns are the values of dihkit's ``mhkd --heads`` option.
MHKD_TABLE2: tuple[PaperStdRow, ...] = (
    PaperStdRow(
        "wrn_40_2",
        "wrn_16_2",
        "cifar100",
        {
            "kd": 74.92,
            "fitnets": 75.12,
            "cc": 75.09,
            "rkd": 74.89,
            "1": 75.27,
            "2": 75.16,
            "3": 75.00,
            "all": 75.28,
        },
        {"1": 0.27, "2": 0.15, "3": 0.35, "all": 0.26},
    ),
    PaperStdRow(
        "vgg13",
        "vgg8",
        "cifar100",
        {
            "kd": 72.98,
            "fitnets": 73.22,
            "cc": 73.04,
            "rkd": 72.97,
            "1": 73.63,
            "2": 73.76,
            "3": 73.32,
            "all": 73.96,
        },
        {"1": 0.29, "2": 0.12, "3": 0.21, "all": 0.19},
    ),
)


def mhkd_table2_markdown() -> str:
    """The MHKD paper's Table 2 (single head versus all heads, CIFAR-100) as a markdown table
    headed as the paper's."""
    columns = {
        "kd": "KD",
        "fitnets": "FitNet",
        "cc": "CC",
        "rkd": "RKD",
        "1": "Head-1",
        "2": "Head-2",
        "3": "Head-3",
        "all": "Head-1+2+3",
    }
    lines = [
        f"**Published, not measured here:** {MHKD_PAPER} (CIFAR-100, 240 epochs, mean +/- std "
        "of 3 runs where printed, %)",
        "",
        "| teacher -> student | " + " | ".join(columns.values()) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for r in MHKD_TABLE2:
        lines.append(
            f"| {r.teacher} -> {r.student} | " + " | ".join(r.cell(c) for c in columns) + " |"
        )
    return "\n".join(lines)


DSKD_PAPER = "Luo, Chen & Wang, Deeply-Supervised Knowledge Distillation (DSKD paper)"

# DSKD paper, Table 1 (CIFAR-100 test accuracy in percent, mean +/- std of 3 runs), the columns
# this kit implements: the student alone ("ce"), KD, the deep-supervision baselines DSN and
# BYOT, and DSKD. (The paper's FitNet, AT, VID and DKS columns are left out.)
DSKD_TABLE1: tuple[PaperStdRow, ...] = (
    PaperStdRow(
        "wrn_40_2",
        "wrn_40_1",
        "cifar100",
        {"ce": 72.06, "kd": 74.05, "dsn": 72.63, "byot": 72.37, "dskd": 75.07},
        {"ce": 0.07, "kd": 0.11, "dsn": 0.02, "byot": 0.35, "dskd": 0.17},
    ),
    PaperStdRow(
        "vgg13",
        "vgg8",
        "cifar100",
        {"ce": 70.51, "kd": 73.34, "dsn": 71.26, "byot": 70.88, "dskd": 74.55},
        {"ce": 0.06, "kd": 0.04, "dsn": 0.44, "byot": 0.17, "dskd": 0.19},
    ),
    PaperStdRow(
        "resnet32x4",
        "resnet8x4",
        "cifar100",
        {"ce": 73.05, "kd": 74.39, "dsn": 73.10, "byot": 72.98, "dskd": 76.31},
        {"ce": 0.22, "kd": 0.21, "dsn": 0.09, "byot": 0.04, "dskd": 0.04},
    ),
    PaperStdRow(
        "wrn_40_2",
        "wrn_16_2",
        "cifar100",
        {"ce": 73.13, "kd": 75.37, "dsn": 74.25, "byot": 73.70, "dskd": 76.50},
        {"ce": 0.13, "kd": 0.17, "dsn": 0.10, "byot": 0.13, "dskd": 0.20},
    ),
    PaperStdRow(
        "resnet32x4",
        "vgg8",
        "cifar100",
        {"ce": 70.51, "kd": 72.58, "dsn": 71.26, "byot": 70.88, "dskd": 75.04},
        {"ce": 0.06, "kd": 0.26, "dsn": 0.44, "byot": 0.17, "dskd": 0.02},
    ),
    PaperStdRow(
        "resnet32x4",
        "shufflenetv2",
        "cifar100",
        {"ce": 72.99, "kd": 75.55, "dsn": 73.98, "byot": 74.32, "dskd": 77.51},
        {"ce": 0.39, "kd": 0.05, "dsn": 0.12, "byot": 0.05, "dskd": 0.16},
    ),
    PaperStdRow(
        "wrn_40_2",
        "mobilenetv2",
        "cifar100",
        {"ce": 65.41, "kd": 68.62, "dsn": 65.76, "byot": 64.93, "dskd": 70.16},
        {"ce": 0.02, "kd": 0.08, "dsn": 0.03, "byot": 0.65, "dskd": 0.04},
    ),
)

# DSKD paper, Table 2: which shallow blocks get a classifier, ResNet32x4 -> ResNet8x4, CIFAR-100
# (%, mean +/- std of 3 runs). Keys are values of dihkit's ``dskd --exits`` option: "none" (no
# shallow classifier: KD and L_Fea at the last layer only), "1", "2", "all" (both blocks).
DSKD_TABLE2 = PaperStdRow(
    "resnet32x4",
    "resnet8x4",
    "cifar100",
    {"none": 74.98, "1": 76.23, "2": 75.97, "all": 76.31},
    {"none": 0.04, "1": 0.03, "2": 0.03, "all": 0.04},
)

# DSKD paper, Table 3: ablation of L_Fea and of the adaptive weights, CIFAR-100 (%, mean +/- std
# of 3 runs). The paper prints the pair as "WRN-40-1 & WRN-16-2"; its full-method number (76.50)
# is Table 1's WRN-40-2 -> WRN-16-2 result. Keys: "both_off" (no L_Fea, equal weights),
# "no_fea" (no L_Fea, adaptive weights), "equal" (L_Fea, equal weights), "full" (both on).
DSKD_TABLE3 = PaperStdRow(
    "wrn_40_1 (as printed)",
    "wrn_16_2",
    "cifar100",
    {"both_off": 75.73, "no_fea": 75.98, "equal": 76.0, "full": 76.50},
    {"both_off": 0.20, "no_fea": 0.03, "equal": 0.19, "full": 0.21},
)


def dskd_table1_markdown() -> str:
    """The DSKD paper's Table 1 (CIFAR-100), columns CE / KD / DSN / BYOT / DSKD, as a markdown
    table headed as the paper's."""
    columns = {"ce": "student (CE)", "kd": "KD", "dsn": "DSN", "byot": "BYOT", "dskd": "DSKD"}
    lines = [
        f"**Published, not measured here:** {DSKD_PAPER}, Table 1 (CIFAR-100, 240 epochs, mean "
        "+/- std of 3 runs, %; the paper's FitNet, AT, VID and DKS columns left out)",
        "",
        "| teacher -> student | " + " | ".join(columns.values()) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for r in DSKD_TABLE1:
        lines.append(
            f"| {r.teacher} -> {r.student} | " + " | ".join(r.cell(c) for c in columns) + " |"
        )
    return "\n".join(lines)


def dskd_table3_markdown() -> str:
    """The DSKD paper's Table 3 (ablation of L_Fea and the adaptive weights) and Table 2 (which
    shallow blocks get a classifier) as markdown tables headed as the paper's."""
    t3, t2 = DSKD_TABLE3, DSKD_TABLE2
    rows3 = (("both_off", "-", "-"), ("no_fea", "-", "yes"), ("equal", "yes", "-"))
    rows3 += (("full", "yes", "yes"),)
    lines = [
        f"**Published, not measured here:** {DSKD_PAPER}, Table 3 (CIFAR-100, "
        f"{t3.teacher} -> {t3.student}; the full method's 76.50 is Table 1's wrn_40_2 -> "
        "wrn_16_2 result, %)",
        "",
        "| L_Fea | adaptive weights | test % |",
        "|---|---|---|",
        *(f"| {fea} | {adaptive} | {t3.cell(key)} |" for key, fea, adaptive in rows3),
        "",
        f"**Published, not measured here:** {DSKD_PAPER}, Table 2 (CIFAR-100, "
        f"{t2.teacher} -> {t2.student}: which shallow blocks get a classifier, %)",
        "",
        "| shallow classifiers (`exits`) | test % |",
        "|---|---|",
        *(f"| {key} | {t2.cell(key)} |" for key in ("none", "1", "2", "all")),
    ]
    return "\n".join(lines)
