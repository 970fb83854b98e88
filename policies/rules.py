"""The baseline: the rules a competent operator writes, reading the observation only.

The observation is decoded back to KPIs in natural units (:func:`environment.kpis.decode`), and
every rule is "KPI past its threshold -> the action that remedies it, unless that action ran
within its cooldown". Of all rules that fire, the one with the **most severe breach** wins, so
the worst KPI gets the resources. The thresholds are the seed targets (activation 40%, D7
retention 25%, signup-to-activation 40%, LTV:CAC 4:1, and the other targets of
:data:`environment.kpis.KPI_SPECS`), plus hygiene thresholds for KPIs without a target.

================================  =======================  ===================================
breach                            action                   why / guard
================================  =======================  ===================================
failed_payment_backlog high       payment_retry            held while billing_failure_rate
                                                           says the processor is down (retry
                                                           after the outage, not during it)
data_quality_issue_rate high      data_fix                 defects fail billing and jobs
orphaned_records high             orphan_cleanup           bloat costs health
health_score low                  scale_infra              only when data and orphans are
                                                           clean (otherwise those rules fix it)
at_risk_share high                retention_campaign       held while message_pressure is high
LTV:CAC low and churn high        retention_campaign       same guard
LTV:CAC low and CAC high          shift_marketing          cheaper, higher-intent acquisition
activation / signup-to-act. low   onboarding_boost         quick lift for new accounts
signup_to_activation low          funnel_fix               slow, lasting; long cooldown
d7_retention low                  onboarding_boost         activated users come back
conversion_rate low               upgrade_prompt           held while message_pressure is high
at_risk or conversion low         ship_feature             a roadmap bet; one at a time
================================  =======================  ===================================

Prices are never changed by rules: an operator does not reprice from an ops loop.

**Cooldowns** make the baseline fair rather than a strawman: every action has diminishing
returns when repeated, retries beyond ~2 rounds in 2 days cancel subscriptions, messages
fatigue the audience, and delayed actions (``funnel_fix``, ``ship_feature``) show in the KPIs
only days later. The cooldowns are counted in cycles since the action was last *executed*, which
the observation carries (its recent-action entries, :func:`environment.kpis.decode_cycles_since`),
so the standard Gymnasium loop (decide, step) is correct with no other call. The policy keeps
the :class:`~policies.base.Episodic` protocol as well: a loop that calls ``record(action)``
(the agent's cycle, whose SQL observation may not carry recent actions yet) adds its memory,
and the more recent of the two counts.

**Confidence** (uncalibrated: ``calibration=None``) is the severity of the breach that fired:
``1 - attainment`` of the KPI against the rule's threshold, i.e. ``1 - value / threshold`` for
a floor and ``1 - threshold / value`` for a ceiling (0 at the threshold, towards 1 far past
it). When nothing fires the decision is ``noop`` with confidence ``1 - s``, where ``s`` is the
severity of the worst breach held back by a cooldown or guard (1 when nothing is breached at
all). With a ``calibration``
(:func:`calibrated_rules`: the one the package ships), the confidence of an action other than
``noop`` is that severity mapped onto the probability that executing it beats holding it, the
meaning every source's confidence has in the live loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from environment import actions as A
from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.kpis import (
    PAYMENT_BANDS,
    RECENT_HORIZON_CYCLES,
    SPEC_BY_NAME,
    decode,
    decode_cycles_since,
)
from policies import storage
from policies.base import (
    ArrayPolicy,
    DecisionArrays,
    Obs,
    PolicyFileError,
    check_action_index,
    check_range,
    one_hot,
)
from policies.calibration import Calibration

NEVER = 10**9
"""Cycles since an action that was never executed."""

RULES_HABIT_CYCLES: tuple[tuple[str, int], ...] = tuple(
    (name, cycles)
    for name in ACTION_NAMES
    if name in A.PACING and (cycles := A.PACING[name].habit_cycles) is not None
)
"""The rules' cooldowns: each action's habit of :data:`environment.actions.PACING`, in cycles."""


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Thresholds (natural KPI units) and cooldowns (cycles of 4 hours) of the rules.

    The targeted thresholds default to :data:`environment.kpis.KPI_SPECS`' seed targets.
    """

    activation_target: float = SPEC_BY_NAME["activation_rate"].target or 0.40
    """Floor on ``activation_rate`` (seed target 40%)."""
    d7_retention_target: float = SPEC_BY_NAME["d7_retention"].target or 0.25
    """Floor on ``d7_retention`` (seed target 25%)."""
    signup_to_activation_target: float = SPEC_BY_NAME["signup_to_activation"].target or 0.40
    """Floor on ``signup_to_activation`` (seed target 40%)."""
    ltv_cac_target: float = SPEC_BY_NAME["ltv_cac"].target or 4.0
    """Floor on ``ltv_cac`` (seed target 4:1)."""
    conversion_target: float = SPEC_BY_NAME["conversion_rate"].target or 0.05
    """Floor on the monthly free-to-paid ``conversion_rate``."""
    health_target: float = SPEC_BY_NAME["health_score"].target or 80.0
    """Floor on ``health_score`` below which capacity is added."""
    data_quality_threshold: float = 0.005
    """Ceiling on ``data_quality_issue_rate`` (the 2% target is where damage is already done:
    defects fail payments and jobs long before)."""
    at_risk_target: float = SPEC_BY_NAME["at_risk_share"].target or 0.15
    """Ceiling on ``at_risk_share`` (the roadmap rule's trigger)."""
    campaign_at_risk_threshold: float = 0.25
    """``at_risk_share`` above which a retention campaign is sent. Higher than the target on
    purpose: a campaign messages every at-risk account and fatigues the audience (at-risk
    hazard ``1 + k fatigue^2``), so in simulation it pays only when many accounts are at risk
    (a competitor launch), not against the structural ~18% at-risk share."""
    churn_threshold: float = 0.05
    """Monthly churn above which a low LTV:CAC is blamed on churn rather than on CAC."""
    backlog_threshold: float = PAYMENT_BANDS.backlog_act
    """Ceiling on ``failed_payment_backlog`` (past-due accounts / paying accounts)."""
    outage_failure_rate: float = PAYMENT_BANDS.outage_failure_rate
    """``billing_failure_rate`` above which the processor is taken to be down: hold retries."""
    orphan_threshold: float = 1_500.0
    """Ceiling on ``orphaned_records``."""
    max_message_pressure: float = 0.5
    """Hold campaigns and prompts while messages per account (7 days) exceed this."""
    cooldowns: tuple[tuple[str, int], ...] = RULES_HABIT_CYCLES
    """(action, cycles) pairs: the minimum cycles between two executions of the action."""

    def __post_init__(self) -> None:
        for name in (
            "activation_target",
            "d7_retention_target",
            "signup_to_activation_target",
            "data_quality_threshold",
            "at_risk_target",
            "campaign_at_risk_threshold",
            "backlog_threshold",
            "outage_failure_rate",
        ):
            check_range(self, name, 0.0, 1.0, open_low=True)
        for name in ("ltv_cac_target", "conversion_target", "churn_threshold"):
            check_range(self, name, 0.0, open_low=True)
        check_range(self, "health_target", 0.0, 100.0, open_low=True)
        check_range(self, "orphan_threshold", 0.0, open_low=True)
        check_range(self, "max_message_pressure", 0.0, open_low=True)
        for entry in self.cooldowns:
            if (
                not isinstance(entry, tuple | list)
                or len(entry) != 2
                or entry[0] not in ACTION_NAMES
                or entry[0] == "noop"
                or isinstance(entry[1], bool)
                or not isinstance(entry[1], int)
                or not 0 <= entry[1] <= RECENT_HORIZON_CYCLES
            ):
                raise ValueError(
                    f"RulesConfig.cooldowns entry {entry!r} is invalid: must be (action, cycles)"
                    f" with action in {list(ACTION_NAMES[1:])} and cycles an integer in "
                    f"[0, {RECENT_HORIZON_CYCLES}] (the observation's recency horizon)"
                )

    def cooldown_steps(self) -> np.ndarray:
        """Cooldown per action index, int64 shape (N_ACTIONS,) (0 where none is set)."""
        out = np.zeros(N_ACTIONS, dtype=np.int64)
        for action, cycles in self.cooldowns:
            out[A.action_index(action)] = cycles
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        data = asdict(self)
        data["cooldowns"] = [list(pair) for pair in self.cooldowns]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RulesConfig:
        """Inverse of :meth:`to_dict`; unknown fields raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RulesConfig fields {unknown}; allowed: {sorted(known)}")
        values = dict(data)
        if "cooldowns" in values:
            values["cooldowns"] = tuple(tuple(pair) for pair in values["cooldowns"])
        return cls(**values)


def _floor(value: float, threshold: float) -> float:
    """Severity of ``value`` below a floor: ``1 - value / threshold`` (0 when not below)."""
    return 0.0 if value >= threshold else 1.0 - max(value, 0.0) / threshold


def _ceiling(value: float, threshold: float) -> float:
    """Severity of ``value`` above a ceiling: ``1 - threshold / value`` (0 when not above)."""
    return 0.0 if value <= threshold else 1.0 - threshold / value


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: its name, the action it takes, how severe its breach is, and its guard."""

    name: str
    action: int
    severity: Callable[[dict[str, float]], float]
    guard: Callable[[dict[str, float]], bool] = lambda kpis: True
    """False holds the action back even when the breach is there."""


def build_rules(config: RulesConfig) -> tuple[Rule, ...]:
    """The rule table of :mod:`policies.rules`' docstring, with ``config``'s thresholds."""
    c = config

    def quiet(kpis: dict[str, float]) -> bool:
        return kpis["message_pressure"] <= c.max_message_pressure

    def campaign(kpis: dict[str, float]) -> bool:
        return quiet(kpis) and kpis["at_risk_share"] > c.campaign_at_risk_threshold

    def clean(kpis: dict[str, float]) -> bool:
        return (
            kpis["data_quality_issue_rate"] <= c.data_quality_threshold
            and kpis["orphaned_records"] <= c.orphan_threshold
        )

    def ltv_cac(kpis: dict[str, float]) -> float:
        return _floor(kpis["ltv_cac"], c.ltv_cac_target)

    return (
        Rule(
            "billing_backlog",
            A.PAYMENT_RETRY,
            lambda k: _ceiling(k["failed_payment_backlog"], c.backlog_threshold),
            lambda k: k["billing_failure_rate"] <= c.outage_failure_rate,
        ),
        Rule(
            "data_quality",
            A.DATA_FIX,
            lambda k: _ceiling(k["data_quality_issue_rate"], c.data_quality_threshold),
        ),
        Rule(
            "orphans",
            A.ORPHAN_CLEANUP,
            lambda k: _ceiling(k["orphaned_records"], c.orphan_threshold),
        ),
        Rule(
            "health",
            A.SCALE_INFRA,
            lambda k: _floor(k["health_score"], c.health_target),
            clean,
        ),
        Rule(
            "at_risk",
            A.RETENTION_CAMPAIGN,
            lambda k: _ceiling(k["at_risk_share"], c.campaign_at_risk_threshold),
            quiet,
        ),
        Rule(
            "ltv_cac_churn",
            A.RETENTION_CAMPAIGN,
            lambda k: ltv_cac(k) if k["churn_rate"] > c.churn_threshold else 0.0,
            campaign,
        ),
        Rule(
            "ltv_cac_acquisition",
            A.SHIFT_MARKETING,
            lambda k: ltv_cac(k) if k["churn_rate"] <= c.churn_threshold else 0.0,
        ),
        Rule(
            "activation",
            A.ONBOARDING_BOOST,
            lambda k: max(
                _floor(k["activation_rate"], c.activation_target),
                _floor(k["signup_to_activation"], c.signup_to_activation_target),
            ),
        ),
        Rule(
            "funnel",
            A.FUNNEL_FIX,
            lambda k: _floor(k["signup_to_activation"], c.signup_to_activation_target),
        ),
        Rule(
            "d7_retention",
            A.ONBOARDING_BOOST,
            lambda k: _floor(k["d7_retention"], c.d7_retention_target),
        ),
        Rule(
            "conversion",
            A.UPGRADE_PROMPT,
            lambda k: _floor(k["conversion_rate"], c.conversion_target),
            quiet,
        ),
        Rule(
            "roadmap",
            A.SHIP_FEATURE,
            lambda k: max(
                _ceiling(k["at_risk_share"], c.at_risk_target),
                _floor(k["conversion_rate"], c.conversion_target),
            ),
        ),
    )


def ready_mask(steps_since: np.ndarray, cooldowns: np.ndarray) -> np.ndarray:
    """Actions off cooldown given the cycles completed since each ran (0: the last cycle)."""
    return steps_since + 1 >= cooldowns


class RulesPolicy(ArrayPolicy):
    """The operator's rules (see the module docstring). Deterministic; episodic."""

    kind = "rules"

    def __init__(
        self,
        config: RulesConfig | None = None,
        version: str = "1",
        calibration: Calibration | None = None,
    ) -> None:
        self.config = config or RulesConfig()
        self.calibration = calibration
        """Maps the severity confidence onto P(executing beats holding)
        (:mod:`policies.calibration`); ``None``: the severity is served as it is."""
        self.name = "rules"
        self.version = version
        self._rules = build_rules(self.config)
        self._cooldowns = self.config.cooldown_steps()
        self.steps_since = np.full(N_ACTIONS, NEVER, dtype=np.int64)
        """Cycles since each action was last executed (``NEVER`` if not yet)."""

    # --- the episodic memory ----------------------------------------------------------------

    def reset(self) -> None:
        """Forget every past action."""
        self.steps_since[:] = NEVER

    def record(self, action: int) -> None:
        """One cycle passed with ``action`` executed."""
        index = check_action_index(action)
        np.minimum(self.steps_since + 1, NEVER, out=self.steps_since)
        if index != A.NOOP:
            self.steps_since[index] = 0

    def ready(self, obs: Obs | None = None) -> np.ndarray:
        """bool, shape (N_ACTIONS,): which actions are past their cooldown, i.e. may run in
        the coming cycle (an action with cooldown ``c`` executed in cycle ``t`` may run again
        in cycle ``t + c``), by the more recent of the observation's recent actions (``obs``)
        and the recorded memory."""
        steps_since = self.steps_since
        if obs is not None:
            steps_since = np.minimum(steps_since, decode_cycles_since(obs) - 1)
        return ready_mask(steps_since, self._cooldowns)

    # --- deciding ---------------------------------------------------------------------------

    def choose(self, kpis: dict[str, float], ready: np.ndarray) -> tuple[int, float, str]:
        """(action, confidence, rule name) for KPIs in natural units, given which actions are
        off cooldown. Exposed so planners can run the rules on KPIs without encoding."""
        best_action, best_severity, best_rule = A.NOOP, 0.0, ""
        held = 0.0
        for rule in self._rules:
            severity = rule.severity(kpis)
            if severity <= 0.0:
                continue
            if not ready[rule.action] or not rule.guard(kpis):
                held = max(held, severity)
            elif severity > best_severity:
                best_action, best_severity, best_rule = rule.action, severity, rule.name
        if best_action == A.NOOP:
            return A.NOOP, 1.0 - held, ""
        return best_action, best_severity, best_rule

    def explain(self, obs: Obs) -> str:
        """The rule that fires for ``obs`` (``""`` when none does), for audit messages."""
        from policies.base import check_obs

        row = check_obs(obs)
        return self.choose(decode(row), self.ready(row))[2]

    def _decide_arrays(self, obs: Obs) -> DecisionArrays:
        chosen = [self.choose(decode(row), self.ready(row)) for row in obs]
        actions = np.array([c[0] for c in chosen], dtype=np.int64)
        confidences = np.array([c[1] for c in chosen], dtype=np.float64)
        if self.calibration is not None:
            acting = actions != A.NOOP  # noop's confidence is not a chance of beating itself
            confidences[acting] = self.calibration.apply(actions[acting], confidences[acting])
        return DecisionArrays(actions, confidences, one_hot(actions))

    # --- files ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """JSON: the config, the version and the memory (so a restart keeps its cooldowns)."""
        return storage.save_json(
            path,
            self.kind,
            {
                "version": self.version,
                "config": self.config.to_dict(),
                "steps_since": self.steps_since.tolist(),
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> RulesPolicy:
        """Read a file written by :meth:`save`."""
        document = storage.load_json(path, cls.kind)
        try:
            policy = cls(
                RulesConfig.from_dict(document["config"]), str(document.get("version", "1"))
            )
            steps = np.asarray(document["steps_since"], dtype=np.int64)
            if steps.shape != (N_ACTIONS,) or (steps < 0).any():
                raise ValueError(f"steps_since must be {N_ACTIONS} integers >= 0")
        except (KeyError, TypeError, ValueError) as error:
            raise PolicyFileError(f"rules policy file {str(path)!r} is corrupt: {error}") from None
        policy.steps_since[:] = steps
        return policy


RULES_CALIBRATION = Path(__file__).parent / "data" / "rules_calibration.json"
"""The rules' shipped calibration (written by ``autopilot train --preset champion``)."""


def calibrated_rules() -> RulesPolicy:
    """The rules as the live loop runs them: with the shipped calibration when it exists."""
    if not RULES_CALIBRATION.is_file():
        return RulesPolicy()
    data = json.loads(RULES_CALIBRATION.read_text())
    return RulesPolicy(calibration=Calibration.from_dict(data))
