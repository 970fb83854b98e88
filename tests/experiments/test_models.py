"""The pyfunc wrapper and ``load_policy_uri``: same decisions, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import environment
from environment.actions import ACTION_NAMES
from environment.kpis import N_OBS, OBS_HIGH, OBS_LOW, OBS_NAMES
from experiments import pyfunc
from experiments.models import (
    CHALLENGER,
    REGISTERED_MODEL,
    load_policy_uri,
    log_policy_model,
)
from experiments.tracking import Tracking, start_run
from policies.base import DECISION_TOLERANCE, PROPENSITY_TOLERANCE, Policy, PolicyFileError
from policies.rules import RulesPolicy
from policies.sb3 import SB3Policy, train_sb3


@pytest.fixture(scope="module")
def observations() -> np.ndarray:
    """Observations met on real episodes plus uniform draws over the box, float32 (n, 18)."""
    rng = np.random.default_rng(0)
    rows = [rng.uniform(OBS_LOW, OBS_HIGH, size=(200, N_OBS)).astype(np.float32)]
    env = environment.make_env("mixed")
    obs, _ = env.reset(seed=3)
    for _ in range(100):
        rows.append(obs[None, :])
        obs, *_ = env.step(int(rng.integers(len(ACTION_NAMES))))
    env.close()
    return np.concatenate(rows)


@pytest.fixture(scope="module")
def ppo_policy() -> SB3Policy:
    return train_sb3(
        "ppo", "steady", 128, 0, n_envs=2, reward_scale=0.1, n_steps=64, batch_size=64, n_epochs=1
    )


def _log(policy: Policy, tracking: Tracking) -> str:
    with start_run(tracking, "models-test", "log"):
        logged = log_policy_model(policy)
    assert logged.registered_uri is not None
    return logged.registered_uri


@pytest.mark.parametrize("kind", ["rules", "ppo"])
def test_pyfunc_model_predicts_what_the_policy_decides(
    tracking: Tracking, observations: np.ndarray, ppo_policy: SB3Policy, kind: str
) -> None:
    policy: Policy = RulesPolicy() if kind == "rules" else ppo_policy
    uri = _log(policy, tracking)
    model = mlflow.pyfunc.load_model(uri)

    frame = model.predict(pd.DataFrame(observations, columns=list(OBS_NAMES)))
    expected = policy.decide_batch(observations)
    np.testing.assert_array_equal(frame["action"].to_numpy(), [d.action for d in expected])
    assert list(frame["action_name"]) == [d.action_name for d in expected]
    np.testing.assert_allclose(
        frame["confidence"], [d.confidence for d in expected], rtol=0, atol=DECISION_TOLERANCE
    )
    propensities = frame[list(pyfunc.PROPENSITY_COLUMNS)].to_numpy()
    np.testing.assert_allclose(
        propensities, np.stack([d.propensities for d in expected]), rtol=0, atol=DECISION_TOLERANCE
    )
    np.testing.assert_allclose(propensities.sum(axis=1), 1.0, rtol=0, atol=PROPENSITY_TOLERANCE)
    # The signature is the KPI observation in and the decision out.
    signature = model.metadata.signature
    assert signature.inputs.input_names() == list(OBS_NAMES)
    assert signature.outputs.input_names() == list(pyfunc.OUTPUT_COLUMNS)

    # load_policy_uri returns a Policy deciding the same, versioned by the concrete URI.
    loaded = load_policy_uri(f"models:/{REGISTERED_MODEL}@{CHALLENGER}", tracking=tracking)
    assert isinstance(loaded, Policy)
    assert loaded.version == uri
    assert [d.action for d in loaded.decide_batch(observations)] == [d.action for d in expected]


def test_pyfunc_rejects_inputs_without_the_kpi_columns(tracking: Tracking) -> None:
    model = mlflow.pyfunc.load_model(_log(RulesPolicy(), tracking))
    with pytest.raises(Exception, match="activation_rate"):
        model.predict(pd.DataFrame({"x": [1.0]}))


def test_every_uri_form_loads(tracking: Tracking, tmp_path: Path) -> None:
    uri = _log(RulesPolicy(), tracking)
    run_id = tracking.client().get_model_version(REGISTERED_MODEL, "1").run_id
    model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "m")))
    saved = RulesPolicy().save(tmp_path / "rules.json")
    for spec in (
        uri,
        f"models:/{REGISTERED_MODEL}@{CHALLENGER}",
        f"runs:/{run_id}/policy",
        str(model_dir),
        str(model_dir / "artifacts" / "policy"),
        "rules",
        f"rules:{saved}",
    ):
        policy = load_policy_uri(spec, tracking=tracking)
        assert policy.name == "rules", spec


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        (
            "models:/autopilot-policy@champion",
            LookupError,
            "no registered model 'autopilot-policy'",
        ),
        ("models:/nope/1", LookupError, "no registered model 'nope'"),
        ("models:/autopilot-policy", ValueError, "must be models:/<name>@<alias>"),
        ("runs:/0123456789abcdef/policy", LookupError, "cannot fetch model"),
        ("no-such-policy", ValueError, "unknown policy 'no-such-policy'"),
        ("ppo:/does/not/exist.zip", FileNotFoundError, "does not exist"),
        ("", ValueError, "non-empty"),
    ],
)
def test_bad_uris_name_the_problem(
    tracking: Tracking, spec: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        load_policy_uri(spec, tracking=tracking)


def test_missing_alias_and_version_name_what_exists(tracking: Tracking) -> None:
    _log(RulesPolicy(), tracking)
    with pytest.raises(LookupError, match=r"no alias 'champion'.*aliases: \['challenger'\]"):
        load_policy_uri("models:/autopilot-policy@champion", tracking=tracking)
    with pytest.raises(LookupError, match="no version '7'"):
        load_policy_uri("models:/autopilot-policy/7", tracking=tracking)


def _model_copy(tracking: Tracking, tmp_path: Path) -> Path:
    uri = _log(RulesPolicy(), tracking)
    source = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "src")))
    target = tmp_path / "model"
    shutil.copytree(source, target)
    return target


def test_corrupt_artifacts_are_reported(tracking: Tracking, tmp_path: Path) -> None:
    model = _model_copy(tracking, tmp_path)
    policy_dir = model / "artifacts" / "policy"
    (policy_dir / "policy.rules").write_text("{ not json", encoding="utf-8")
    with pytest.raises(PolicyFileError, match="corrupt"):
        load_policy_uri(str(model))
    (policy_dir / "policy.json").write_text("garbage", encoding="utf-8")
    with pytest.raises(PolicyFileError, match=r"policy\.json' is corrupt"):
        load_policy_uri(str(model))
    (model / "MLmodel").unlink()
    with pytest.raises(PolicyFileError, match="neither an MLflow model"):
        load_policy_uri(str(model))
    (tmp_path / "file.bin").write_bytes(b"\0")
    with pytest.raises(ValueError, match="needs its kind"):
        load_policy_uri(str(tmp_path / "file.bin"))


def test_a_model_for_another_observation_shape_is_rejected(
    tracking: Tracking, tmp_path: Path
) -> None:
    model = _model_copy(tracking, tmp_path)
    meta_file = model / "artifacts" / "policy" / "policy.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["kpi_names"] = meta["kpi_names"][:-1]
    meta_file.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(PolicyFileError, match=rf"shape \({N_OBS - 1},\).*shape \({N_OBS},\)"):
        load_policy_uri(str(model))
