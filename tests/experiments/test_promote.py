"""Promotion: only on paired evidence, with the evidence logged either way."""

from __future__ import annotations

import pytest

from experiments.models import CHALLENGER, CHAMPION, log_policy_model, model_version, set_alias
from experiments.promote import PREVIOUS_CHAMPION, promote
from experiments.tracking import Tracking, start_run
from policies.registry import load_policy
from tests.experiments.conftest import TINY_SCENARIOS

SEED_SETS = [(0, 1, 2), (3, 4, 5)]


def _register(tracking: Tracking, name: str) -> str:
    """Register policy ``name`` as the challenger (what ``autopilot train`` ends with; the
    training itself is tested in test_train)."""
    with start_run(tracking, "promote-test", f"register {name}"):
        logged = log_policy_model(load_policy(name))
    assert logged.version is not None
    return logged.version


def _decision_tags(tracking: Tracking, run_id: str) -> dict[str, str]:
    return dict(tracking.client().get_run(run_id).data.tags)


@pytest.mark.parametrize("seeds", SEED_SETS)
def test_a_worse_challenger_is_refused_and_a_better_one_promoted(
    tracking: Tracking, seeds: tuple[int, ...]
) -> None:
    # noop is champion; rules, clearly better, is the challenger: promoted.
    noop_version = _register(tracking, "noop")
    set_alias(tracking, CHAMPION, noop_version)
    rules_version = _register(tracking, "rules")
    decision = promote(scenarios=TINY_SCENARIOS, seeds=seeds, tracking=tracking)
    assert decision.promoted, decision.reason
    assert decision.comparison is not None and decision.comparison.overall.low > 0
    assert str(model_version(tracking, CHAMPION).version) == rules_version  # type: ignore[union-attr]
    assert str(model_version(tracking, PREVIOUS_CHAMPION).version) == noop_version  # type: ignore[union-attr]
    assert _decision_tags(tracking, decision.run_id)["decision"] == "promoted"

    # Now noop comes back as challenger against the rules champion: refused.
    noop_again = _register(tracking, "noop")
    assert str(model_version(tracking, CHALLENGER).version) == noop_again  # type: ignore[union-attr]
    refused = promote(scenarios=TINY_SCENARIOS, seeds=seeds, tracking=tracking)
    assert not refused.promoted
    assert "worse" in refused.reason
    assert str(model_version(tracking, CHAMPION).version) == rules_version  # type: ignore[union-attr]
    # The evidence is logged either way.
    run = tracking.client().get_run(refused.run_id)
    assert run.data.tags["decision"] == "kept"
    assert run.data.tags["reason"] == refused.reason
    assert run.data.metrics["diff/mean_diff_high"] < 0
    assert run.data.params["bar"] == f"champion (version {rules_version})"
    artifacts = {a.path for a in tracking.client().list_artifacts(refused.run_id, "promotion")}
    assert artifacts == {"promotion/evidence.json", "promotion/table.txt"}


def test_without_a_champion_the_best_baseline_is_the_bar(tracking: Tracking) -> None:
    _register(tracking, "noop")
    decision = promote(
        scenarios=TINY_SCENARIOS, seeds=(0, 1, 2), baselines=("rules", "noop"), tracking=tracking
    )
    assert decision.bar == "baseline rules"
    assert not decision.promoted
    assert model_version(tracking, CHAMPION) is None
    metrics = tracking.client().get_run(decision.run_id).data.metrics
    assert "baseline_noop/mean_return" in metrics


def test_one_seed_gives_no_interval_and_no_promotion(tracking: Tracking) -> None:
    noop_version = _register(tracking, "noop")
    set_alias(tracking, CHAMPION, noop_version)
    _register(tracking, "rules")
    decision = promote(scenarios=("steady",), seeds=(0,), tracking=tracking)
    assert not decision.promoted
    assert "undefined" in decision.reason


def test_promote_without_a_challenger_says_what_to_do(tracking: Tracking) -> None:
    with pytest.raises(LookupError, match=r"no 'challenger' version.*autopilot train"):
        promote(tracking=tracking)
