"""The README's "Train, evaluate, promote" sequence, run as written: a second training does not
take the challenger unless asked, every comparison is headed by the arms as they were named,
and one model is never compared with itself."""

from __future__ import annotations

import pytest

from cli.experiment_commands import THRESHOLD_COLUMNS
from cli.main import main
from experiments.evaluate import evaluate_policies
from experiments.models import CHALLENGER, check_alias, log_policy_model, model_version
from experiments.promote import promote
from experiments.tracking import Tracking, start_run
from policies.registry import load_policy

TINY = ["--set", "eval_scenarios=steady", "--set", "eval_seeds=2", "--no-progress"]
CHALLENGER_URI = "models:/autopilot-policy@challenger"


def _run(tracking: Tracking, *argv: str) -> int:
    return main([*argv, "--tracking-uri", tracking.uri, "--artifact-root", "artifacts"])


def _register(tracking: Tracking, name: str) -> str:
    """Register policy ``name`` as the challenger, as ``autopilot train`` ends."""
    with start_run(tracking, "walk-test", f"register {name}"):
        logged = log_policy_model(load_policy(name))
    assert logged.version is not None
    return logged.version


def _challenger(tracking: Tracking) -> str:
    found = model_version(tracking, CHALLENGER)
    assert found is not None
    return str(found.version)


def test_a_second_train_under_its_own_alias_leaves_the_challenger(
    tracking: Tracking, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tracking, "train", "--algo", "rules", *TINY) == 0
    assert "registered autopilot-policy version 1 as 'challenger'" in capsys.readouterr().out
    assert _run(tracking, "train", "--algo", "noop", "--alias", "noop-run", *TINY) == 0
    out = capsys.readouterr().out
    assert "registered autopilot-policy version 2 as 'noop-run'" in out
    assert "'challenger' is still version 1" in out
    assert _challenger(tracking) == "1"
    noop_run = model_version(tracking, "noop-run")
    assert noop_run is not None and str(noop_run.version) == "2"


def test_a_second_train_says_the_challenger_moved_and_from_which_version(
    tracking: Tracking, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tracking, "train", "--algo", "rules", *TINY) == 0
    assert "moved" not in capsys.readouterr().out  # the first one moves nothing
    assert _run(tracking, "train", "--algo", "noop", *TINY) == 0
    out = capsys.readouterr().out
    assert "registered autopilot-policy version 2 as 'challenger' (moved from version 1" in out
    assert _challenger(tracking) == "2"


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("champion", "alias 'champion' is set only by `autopilot promote`"),
        ("previous-champion", "alias 'previous-champion' is set only by `autopilot promote`"),
        ("latest", "alias 'latest' is reserved by MLflow"),
        ("v3", "alias 'v3' is reserved by MLflow"),
        ("3", "alias '3' is invalid: must start with a letter"),
        ("my alias", "alias 'my alias' is invalid: must start with a letter"),
        ("", "alias '' is invalid: must start with a letter"),
        ("x" * 256, "is invalid: must start with a letter"),
    ],
)
def test_bad_aliases_are_refused_before_training(
    tracking: Tracking, capsys: pytest.CaptureFixture[str], alias: str, message: str
) -> None:
    assert _run(tracking, "train", "--algo", "rules", "--alias", alias, *TINY) == 2
    assert message in capsys.readouterr().err
    assert tracking.client().search_registered_models() == []  # nothing trained, nothing logged


@pytest.mark.parametrize("alias", ["a", "linucb", "ppo_2", "Nightly-run", "x" * 255, "v3x"])
def test_good_aliases_pass(alias: str) -> None:
    assert check_alias(alias) == alias


def test_evaluate_heads_each_comparison_with_the_arms_as_named(tracking: Tracking) -> None:
    _register(tracking, "rules")
    report = evaluate_policies(["rules", CHALLENGER_URI], ["steady"], 2, tracking=tracking)
    table = report.table()
    assert f"[{CHALLENGER_URI}] rules (models:/autopilot-policy/1)" in table
    assert f"[{CHALLENGER_URI}] - [rules] (paired)" in table
    assert "rules - rules (paired)" not in table


def test_evaluate_refuses_one_model_named_twice(tracking: Tracking) -> None:
    version = _register(tracking, "rules")
    same = f"models:/autopilot-policy/{version}"
    with pytest.raises(ValueError, match=rf"{CHALLENGER_URI} and {same} are the same model"):
        evaluate_policies([CHALLENGER_URI, same], ["steady"], 2, tracking=tracking)
    other = _register(tracking, "noop")  # the challenger moves to it: now two models
    report = evaluate_policies(
        [f"models:/autopilot-policy/{version}", f"models:/autopilot-policy/{other}"],
        ["steady"],
        2,
        tracking=tracking,
    )
    assert len(report.comparisons) == 1


def test_promote_heads_its_comparison_with_the_challenger_version_and_the_bar(
    tracking: Tracking,
) -> None:
    _register(tracking, "rules")
    decision = promote(scenarios=["steady"], seeds=2, baselines=["noop"], tracking=tracking)
    assert "challenger (version 1) - baseline noop (paired)" in decision.summary()


def test_thresholds_without_a_champion_say_which_policy_they_are_for(
    tracking: Tracking, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["thresholds", "--scenarios", "steady", "--seeds", "1", "--stride", "12"]
    assert _run(tracking, *argv, "--min-samples", "2") == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "thresholds for rules (version 1): no champion at models:/autopilot-policy@champion ("
    )
    assert f"; using rules\n{THRESHOLD_COLUMNS}\n" in out  # then one row per action
