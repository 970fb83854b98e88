"""Per-action confidence thresholds that maximize expected value, for the guardrails.

The guardrails (:mod:`agent.guardrails`) execute a decision when its confidence is at or above
its action's threshold and hold it for approval otherwise. A held action is not executed in
that cycle, so a threshold trades the value of the actions the policy gets right against the
harm of those it gets wrong. This module picks, per action, the threshold that maximizes the
expected value of that rule, from evidence:

**Evidence** (:func:`collect_decisions`): the policy runs episodes across scenarios and seeds;
every ``stride`` steps, when it chooses an action other than ``noop``, the decision's value is
measured *counterfactually* on the simulator: from the same hidden state and the same random
stream (common random numbers), roll ``horizon`` steps with the action executed, and again
with it held, each continued by the policy itself (a copy, so its memory is not disturbed).
A held decision stays held: the guardrails hold the same action again in the next cycles
while its confidence stays below the threshold and nobody approves, so in the hold rollout
the policy's later choices of that action run as ``noop`` too (holding one cycle only would
measure timing, not whether the action is worth taking: retrying payments now rather than
four hours later is a coin flip, retrying rather than never is not)::

    value_i = sum_{h < H} r_h(execute a_i, then the policy)
              - sum_{h < H} r_h(hold, then the policy without a_i)

Later the same samples can come from logged decisions with estimated values; the optimizer
below only needs (action, confidence, value) triples (:class:`DecisionSamples`).

**Optimization** (:func:`optimal_thresholds`): for action ``a`` with samples ``(c_i, v_i)``,
``n_a`` of them, the expected value per decision of threshold ``t`` is::

    EV_a(t) = (1 / n_a) * sum_i v_i * [c_i >= t]

Held decisions contribute 0 (the hold counterfactual is the reference). ``EV_a`` is a step
function that changes only at the observed confidences, so the candidates are those values
and ``+inf`` (hold everything); the maximizer is taken, ties going to the higher threshold
(fewer unsupervised actions for the same value). Actions with fewer than ``min_samples``
samples get no threshold: the guardrails keep their built-in default for them.

**File** (:func:`write_thresholds`), YAML, default ``guardrails/thresholds.yaml``::

    version: 1                       # schema version
    thresholds:                      # what the guardrails read: action -> minimum confidence
      data_fix: 0.62                 # execute when confidence >= 0.62, else needs approval
      price_increase: .inf           # never executes without approval
    evidence:                        # per action with a threshold, and those without one
      data_fix:
        samples: 140                 # decisions measured
        threshold: 0.62
        expected_value: 0.41         # EV_a(threshold), reward units per decision
        execute_all_value: 0.12      # EV_a(0): no threshold at all
        executed_share: 0.71         # share of the samples at or above the threshold
      ship_feature: {samples: 3, threshold: null, reason: "fewer than 10 samples"}
    policy: {name: ppo, version: "models:/autopilot-policy/3"}   # + note: why, if not the one asked
    source: {scenarios: [...], seeds: [...], horizon: 24, stride: 6}
    mlflow_run_id: 0123abcd...       # the run holding the same figures
    generated_at: "2026-01-01T00:00:00+00:00"

**Calibration** (:func:`calibration_of`): the same evidence checks what a confidence means.
Confidence is read as the probability that executing the action now beats holding it (the one
statement of that meaning is in :mod:`policies.feedback`); here the outcome is observed, not
estimated: ``o_i = [value_i > 0]``. :func:`calibration_of` returns the reliability table, the
Brier score and the ECE of :mod:`policies.feedback` on these pairs; run it on seeds no training
or tuning saw. ``autopilot thresholds`` logs them as ``calibration/ece`` and
``calibration/brier``.

Every action name is one of :data:`environment.actions.ACTION_NAMES`; ``noop`` never appears
(the guardrails always let it through). A threshold is a number in [0, 1] or ``.inf``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from numpy.typing import NDArray

import environment
from agent.cycle_config import resolve_policy
from agent.settings import get_settings
from agent.thresholds_file import SCHEMA_VERSION
from environment.actions import ACTION_NAMES, N_ACTIONS, NOOP
from experiments.config import expand_scenarios
from experiments.models import load_policy_uri
from experiments.tracking import configure, log_metrics, log_params, start_run
from policies.base import EnvAware, Episodic, Policy
from policies.feedback import (
    DEFAULT_BINS,
    brier_score,
    expected_calibration_error,
    reliability_table,
)
from policies.validation import check_number, check_seeds

DEFAULT_THRESHOLDS_PATH = Path("guardrails/thresholds.yaml")
"""Where ``autopilot thresholds`` writes by default (relative to the working directory)."""

EVALUATION_SEED_START = 1_000
HOLD_ALL = math.inf
"""The threshold that holds every decision of an action for approval."""


# --- evidence -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionSamples:
    """Measured decisions: ``actions`` int64 (n,), ``confidences`` float64 (n,), ``values``
    float64 (n,): the value of executing minus holding, in reward units."""

    actions: NDArray[np.int64]
    confidences: NDArray[np.float64]
    values: NDArray[np.float64]
    scenarios: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    horizon: int = 0
    stride: int = 0

    def __post_init__(self) -> None:
        n = len(self.actions)
        if self.confidences.shape != (n,) or self.values.shape != (n,):
            raise ValueError(
                f"actions, confidences and values must have the same shape (n,), got "
                f"{self.actions.shape}, {self.confidences.shape}, {self.values.shape}"
            )
        if n and (self.actions.min() < 0 or self.actions.max() >= N_ACTIONS):
            raise ValueError(f"actions must be in [0, {N_ACTIONS - 1}]")
        if not np.isfinite(self.values).all() or not np.isfinite(self.confidences).all():
            raise ValueError("confidences and values must be finite")


def _rollout_value(
    env: Any,
    first: int,
    continuation: Policy,
    horizon: int,
    state: Any,
    rng_state: Any,
    withheld: int = NOOP,
) -> float:
    """Return over ``horizon`` steps of ``env`` (unwrapped) from ``state``, taking ``first``
    then following ``continuation``, whose choices of ``withheld`` run as ``noop``."""
    env.set_state(state)
    env.np_random.bit_generator.state = rng_state
    policy = copy.deepcopy(continuation)
    episodic = isinstance(policy, Episodic)
    if isinstance(policy, EnvAware):
        policy.attach(env)
    total, action = 0.0, first
    for _ in range(horizon):
        obs, reward, terminated, _, _ = env.step(action)
        total += float(reward)
        if episodic:
            policy.record(action)  # type: ignore[attr-defined]
        if terminated:
            break
        action = policy.decide(obs).action
        if action == withheld:
            action = NOOP
    return total


def collect_decisions(
    policy: Policy,
    scenarios: Sequence[str],
    seeds: Sequence[int],
    *,
    horizon: int = 24,
    stride: int = 6,
) -> DecisionSamples:
    """Run ``policy`` for one episode per (scenario, seed) and measure the counterfactual
    value of every ``stride``-th non-noop decision over ``horizon`` steps (module docstring).
    The policy's memory is reset at each episode start, as evaluation does."""
    check_number("horizon", horizon, 1, integer=True)
    check_number("stride", stride, 1, integer=True)
    if not scenarios or not seeds:
        raise ValueError("collect_decisions needs at least one scenario and one seed")
    actions: list[int] = []
    confidences: list[float] = []
    values: list[float] = []
    for scenario in scenarios:
        env = environment.make_env(scenario)
        base = env.unwrapped
        try:
            for seed in seeds:
                obs, _ = env.reset(seed=int(seed))
                if isinstance(policy, Episodic):
                    policy.reset()
                if isinstance(policy, EnvAware):
                    policy.attach(env)
                t = 0
                while True:
                    decision = policy.decide(obs)
                    if t % stride == 0 and decision.action != NOOP:
                        state = base.get_state()  # type: ignore[attr-defined]
                        rng_state = copy.deepcopy(base.np_random.bit_generator.state)
                        execute = _rollout_value(
                            base, decision.action, policy, horizon, state, rng_state
                        )
                        hold = _rollout_value(
                            base, NOOP, policy, horizon, state, rng_state, decision.action
                        )
                        base.set_state(state)  # type: ignore[attr-defined]
                        base.np_random.bit_generator.state = rng_state
                        if isinstance(policy, EnvAware):
                            policy.attach(env)
                        actions.append(decision.action)
                        confidences.append(decision.confidence)
                        values.append(execute - hold)
                    obs, _, terminated, truncated, _ = env.step(decision.action)
                    if isinstance(policy, Episodic):
                        policy.record(decision.action)
                    t += 1
                    if terminated or truncated:
                        break
        finally:
            env.close()
    return DecisionSamples(
        np.asarray(actions, dtype=np.int64),
        np.asarray(confidences, dtype=np.float64),
        np.asarray(values, dtype=np.float64),
        tuple(scenarios),
        tuple(int(s) for s in seeds),
        horizon,
        stride,
    )


def calibration_of(samples: DecisionSamples, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Calibration of the samples' confidences against ``[value > 0]`` (module docstring):
    ``{"n", "beats_holding_rate", "mean_confidence", "brier", "ece", "table"}``; the figures
    are ``nan`` and the table empty when there are no samples."""
    outcomes = (samples.values > 0).astype(np.float64)
    n = len(outcomes)
    if n == 0:
        nan = math.nan
        return {
            "n": 0,
            "beats_holding_rate": nan,
            "mean_confidence": nan,
            "brier": nan,
            "ece": nan,
            "table": [],
        }
    return {
        "n": n,
        "beats_holding_rate": float(outcomes.mean()),
        "mean_confidence": float(samples.confidences.mean()),
        "brier": brier_score(samples.confidences, outcomes),
        "ece": expected_calibration_error(samples.confidences, outcomes, n_bins),
        "table": reliability_table(samples.confidences, outcomes, n_bins),
    }


# --- optimization ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionThreshold:
    """The chosen threshold of one action and the evidence for it (``threshold`` is ``None``
    when there were fewer than ``min_samples`` samples)."""

    action: str
    samples: int
    threshold: float | None
    expected_value: float = 0.0
    execute_all_value: float = 0.0
    executed_share: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``evidence`` entry of the file."""
        if self.threshold is None:
            return {"samples": self.samples, "threshold": None, "reason": self.reason}
        return {
            "samples": self.samples,
            "threshold": _yaml_number(self.threshold),
            "expected_value": round(self.expected_value, 6),
            "execute_all_value": round(self.execute_all_value, 6),
            "executed_share": round(self.executed_share, 6),
        }


def _yaml_number(value: float) -> float:
    # Full precision: a threshold rounded up would hold the decisions it was chosen to execute.
    return float(value)


def best_threshold(
    confidences: NDArray[np.float64], values: NDArray[np.float64]
) -> tuple[float, float]:
    """(threshold, EV per decision) maximizing ``EV(t) = mean(values * [confidences >= t])``,
    ties to the higher threshold; ``+inf`` (hold all, EV 0) is a candidate."""
    n = len(values)
    if n == 0:
        raise ValueError("best_threshold needs at least one sample")
    order = np.argsort(-confidences, kind="stable")
    c, v = confidences[order], values[order]
    # Executing the k highest-confidence decisions is EV(c_k) only at the last index of a
    # run of equal confidences (every tie executes together).
    cumulative = np.cumsum(v) / n
    last_of_run = np.append(c[1:] != c[:-1], True)
    candidates = [(HOLD_ALL, 0.0)] + [
        (float(c[k]), float(cumulative[k])) for k in np.flatnonzero(last_of_run)
    ]
    best_value = max(value for _, value in candidates)
    # Candidates are in decreasing threshold order: the first maximizer is the highest one.
    tolerance = 1e-12 * max(1.0, abs(best_value))
    return next((t, ev) for t, ev in candidates if ev >= best_value - tolerance)


def optimal_thresholds(
    samples: DecisionSamples, *, min_samples: int = 10
) -> dict[str, ActionThreshold]:
    """The threshold of every action but ``noop`` (module docstring), by action name."""
    check_number("min_samples", min_samples, 1, integer=True)
    out: dict[str, ActionThreshold] = {}
    for index, name in enumerate(ACTION_NAMES):
        if index == NOOP:
            continue
        mask = samples.actions == index
        n = int(mask.sum())
        if n < min_samples:
            out[name] = ActionThreshold(
                name, n, None, reason=f"fewer than {min_samples} samples ({n})"
            )
            continue
        c, v = samples.confidences[mask], samples.values[mask]
        threshold, value = best_threshold(c, v)
        out[name] = ActionThreshold(
            action=name,
            samples=n,
            threshold=threshold,
            expected_value=value,
            execute_all_value=float(v.mean()),
            executed_share=float((c >= threshold).mean()),
        )
    return out


# --- the file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdsFile:
    """The contents of the guardrail thresholds file (schema in the module docstring)."""

    thresholds: dict[str, ActionThreshold]
    policy_name: str
    policy_version: str
    scenarios: tuple[str, ...]
    seeds: tuple[int, ...]
    horizon: int
    stride: int
    mlflow_run_id: str | None = None
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    policy_note: str = ""
    """Why the policy is not the one asked for (empty when it is), e.g. no champion yet."""

    def guardrail_thresholds(self) -> dict[str, float]:
        """``{action: threshold}`` for the actions that have one (what the agent reads)."""
        return {
            name: entry.threshold
            for name, entry in self.thresholds.items()
            if entry.threshold is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """The YAML document."""
        return {
            "version": SCHEMA_VERSION,
            "thresholds": {k: _yaml_number(v) for k, v in self.guardrail_thresholds().items()},
            "evidence": {name: entry.to_dict() for name, entry in self.thresholds.items()},
            "policy": {"name": self.policy_name, "version": self.policy_version}
            | ({"note": self.policy_note} if self.policy_note else {}),
            "source": {
                "scenarios": list(self.scenarios),
                "seeds": list(self.seeds),
                "horizon": self.horizon,
                "stride": self.stride,
            },
            "mlflow_run_id": self.mlflow_run_id,
            "generated_at": self.generated_at,
        }


def write_thresholds(document: ThresholdsFile, path: str | Path = DEFAULT_THRESHOLDS_PATH) -> Path:
    """Write ``document`` as YAML at ``path`` (parents created; replaced atomically)."""
    file = Path(path)
    if file.exists() and file.is_dir():
        raise ValueError(f"thresholds path {str(file)!r} is a folder; give a file path")
    file.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Confidence thresholds for the guardrails, written by `autopilot thresholds`.\n"
        "# An action executes when confidence >= its threshold; otherwise it needs approval.\n"
        "# Schema: experiments/thresholds.py. Actions not listed keep the built-in defaults.\n"
    )
    text = header + yaml.safe_dump(document.to_dict(), sort_keys=False)
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(file)
    return file


# --- the command ----------------------------------------------------------------------------


def run_thresholds(
    policy_uri: str | None = None,
    *,
    scenarios: Sequence[str] | None = None,
    seeds: int | Sequence[int] = 3,
    horizon: int = 24,
    stride: int = 6,
    min_samples: int = 10,
    output: str | Path = DEFAULT_THRESHOLDS_PATH,
    tracking: Any = None,
    experiment: str = "autopilot-thresholds",
) -> ThresholdsFile:
    """``autopilot thresholds``: collect evidence for ``policy_uri`` (any URI
    :func:`experiments.models.load_policy_uri` reads), choose the thresholds, log them to
    MLflow (params ``threshold.<action>``; metrics ``expected_value.<action>``,
    ``execute_all_value.<action>``, ``executed_share.<action>``, ``samples.<action>``; the
    file as artifact ``thresholds/thresholds.yaml``) and write the file at ``output``.

    ``policy_uri`` ``None``: the policy a cycle runs (:func:`agent.cycle_config.resolve_policy`):
    ``AUTOPILOT_POLICY_URI``, by default the registry's champion, else the calibrated rules a
    cycle falls back to, with the reason as the document's ``policy_note``; a URI given is
    loaded as it is, and its errors raise.

    Evaluation seeds ``1000 ..`` are used (``seeds`` is a count or a list), kept apart from the
    promotion seeds.
    """
    names = expand_scenarios(
        "all"
        if scenarios is None or (isinstance(scenarios, str) and scenarios == "all")
        else scenarios
        if isinstance(scenarios, str)
        else list(scenarios)
    )
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seed_list = tuple(EVALUATION_SEED_START + s for s in check_seeds(seeds))
    else:
        seed_list = check_seeds(seeds)
    check_number("horizon", horizon, 1, integer=True)
    check_number("stride", stride, 1, integer=True)
    check_number("min_samples", min_samples, 1, integer=True)
    target = Path(output)
    if target.exists() and target.is_dir():
        raise ValueError(f"thresholds output {str(target)!r} is a folder; give a file path")
    store = tracking or configure()
    if policy_uri is None:
        policy_uri = get_settings().policy_uri
        policy, note = resolve_policy(
            policy_uri, load_policy=lambda uri: load_policy_uri(uri, tracking=store)
        )
    else:
        policy, note = load_policy_uri(policy_uri, tracking=store), ""
    tags = {"autopilot.command": "thresholds", "policy": policy_uri}
    if note:
        tags["policy_note"] = note
    with start_run(store, experiment, f"thresholds {policy.name}", tags=tags) as run:
        log_params(
            {
                "policy": policy_uri,
                "policy_version": policy.version,
                "scenarios": ",".join(names),
                "seeds": ",".join(map(str, seed_list)),
                "horizon": horizon,
                "stride": stride,
                "min_samples": min_samples,
            }
        )
        samples = collect_decisions(policy, names, seed_list, horizon=horizon, stride=stride)
        chosen = optimal_thresholds(samples, min_samples=min_samples)
        log_params(
            {
                f"threshold.{name}": "none" if e.threshold is None else str(e.threshold)
                for name, e in chosen.items()
            }
        )
        metrics: dict[str, float] = {"decisions": float(len(samples.actions))}
        calibration = calibration_of(samples)
        if calibration["n"]:
            metrics["calibration/ece"] = calibration["ece"]
            metrics["calibration/brier"] = calibration["brier"]
        for name, entry in chosen.items():
            metrics[f"samples.{name}"] = float(entry.samples)
            if entry.threshold is not None:
                metrics[f"expected_value.{name}"] = entry.expected_value
                metrics[f"execute_all_value.{name}"] = entry.execute_all_value
                metrics[f"executed_share.{name}"] = entry.executed_share
        log_metrics(metrics)
        document = ThresholdsFile(
            thresholds=chosen,
            policy_name=policy.name,
            policy_version=policy.version,
            scenarios=names,
            seeds=seed_list,
            horizon=horizon,
            stride=stride,
            mlflow_run_id=run.info.run_id,
            policy_note=note,
        )
        written = write_thresholds(document, target)
        mlflow.log_artifact(str(written), "thresholds")
    return document
