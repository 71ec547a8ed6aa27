"""The method registry: one place lists the methods, their options, ranges and CLI flags."""

from __future__ import annotations

import pytest

from dihkit.cli.main import build_parser, main
from dihkit.errors import ConfigError
from dihkit.methods import get_method, method_names, option_infos, resolve_options

ALL = (
    "ce", "kd", "dih", "dih-ensemble", "fitnets", "dml", "takd", "mhkd", "dsn", "byot", "dskd",
    "dkd", "kd_decomposition", "cd", "feed", "nd",
)  # fmt: skip


def test_every_method_is_registered_with_a_summary_and_options():
    assert set(method_names()) == set(ALL)
    for name in ALL:
        cls = get_method(name)
        assert cls.method == name and cls.summary
        resolve_options(name, {})  # defaults are valid


def test_paper_defaults_of_mhkd_and_dskd():
    mhkd = resolve_options("mhkd", {})
    assert (mhkd.tau, mhkd.alpha, mhkd.beta, mhkd.units, mhkd.head_width) == (4, 0.9, 0.5, 3, 256)
    dskd = resolve_options("dskd", {})
    assert (dskd.tau, dskd.alpha, dskd.beta) == (4, 1, 30)
    assert (dskd.weighting, dskd.feature_loss) == ("adaptive", True)
    dih = resolve_options("dih", {})
    assert (dih.tau, dih.alpha, dih.dih_reduction) == (5, 0.1, "mean")


def test_unknown_option_names_the_method_and_lists_its_options():
    with pytest.raises(
        ConfigError, match=r"method 'kd' has no option 'beta'; its options: tau, alpha"
    ):
        resolve_options("kd", {"beta": 1.0})


@pytest.mark.parametrize(
    ("method", "values", "message"),
    [
        ("dskd", {"beta": -1.0}, r"method 'dskd': option beta = -1.0 is out of range.*\[0, inf\)"),
        ("mhkd", {"tau": 0}, r"method 'mhkd': option tau = 0.0 is out of range.*\(0, inf\)"),
        ("dskd", {"weighting": "random"}, r"option weighting = 'random'.*adaptive, equal"),
        ("mhkd", {"units": 2.5}, r"option units = 2.5 must be an integer"),
        ("dskd", {"feature_loss": "yes"}, r"option feature_loss = 'yes' must be true or false"),
        ("takd", {"assistant": "resnet9"}, r"option assistant = 'resnet9' is not valid"),
    ],
)
def test_out_of_range_values_are_clear_errors(method, values, message):
    with pytest.raises(ConfigError, match=message):
        resolve_options(method, values)


def test_every_declared_option_is_a_cli_flag_of_distill():
    parser = build_parser()
    distill = parser._subparsers._group_actions[0].choices["distill"]
    flags = {flag for action in distill._actions for flag in action.option_strings}
    for name in ALL:
        for info in option_infos(get_method(name).Options):
            assert info.flag in flags, (name, info.flag)


def test_distill_help_lists_every_method_with_its_summary(capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    out = capsys.readouterr().out
    for name in ALL:
        assert f"  {name} " in out and get_method(name).summary[:30] in out


def test_a_flag_the_method_does_not_take_is_refused_before_training(capsys, tmp_path):
    code = main(
        ["distill", "--method", "kd", "--teacher", "resnet14", "--student", "resnet8",
         "--beta", "2", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--beta is not an option of kd" in err and "mhkd, dskd" in err
    assert not (tmp_path / "run").exists()


def test_legacy_flags_still_parse_and_reach_the_method():
    from dihkit.cli.method_flags import options_for

    args = build_parser().parse_args(
        ["compare", "--methods", "kd", "takd", "fitnets", "--student", "resnet8", "--tau", "3",
         "--assistant", "resnet14", "--hint-epochs", "2", "--out", "x"]
    )  # fmt: skip
    per_method = options_for(args.methods, args)
    assert per_method["kd"] == {"tau": 3.0}
    assert per_method["takd"] == {"tau": 3.0, "assistant": "resnet14"}
    assert per_method["fitnets"] == {"tau": 3.0, "hint_epochs": 2}


def test_boolean_options_have_on_and_off_flags():
    from dihkit.cli.method_flags import options_for

    args = build_parser().parse_args(
        ["distill", "--method", "dskd", "--student", "resnet8", "--no-feature-loss", "--out", "x"]
    )
    assert options_for(["dskd"], args)["dskd"] == {"feature_loss": False}
