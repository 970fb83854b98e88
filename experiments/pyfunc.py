"""A policy as an MLflow ``pyfunc`` model: KPI observation in; action, confidence and
propensities out.

Signature (what ``mlflow models serve`` and ``mlflow.pyfunc.load_model(...).predict`` accept):

- input: a DataFrame with one float column per observation entry (the KPIs, then the
  recent actions), named and ordered as
  :data:`environment.kpis.OBS_NAMES`, holding the *encoded* observation
  (:func:`environment.kpis.encode`), one row per observation; a float array of shape
  (n, N_OBS) is accepted too;
- output: a DataFrame with one row per observation: ``action`` (long, the index),
  ``action_name`` (string), ``confidence`` (double in [0, 1]) and ``propensity_<action>``
  (double, one column per action of :data:`environment.actions.ACTION_NAMES`, summing to 1).

The model's files: the policy in its own format (``policy/``, written by ``policy.save``) and
``policy/policy.json`` saying which loader reads it and which observation it expects::

    {"format": 1, "kind": "rules", "file": "policy.json.rules", "name": "rules",
     "version": "1", "kpi_names": [...30 names...], "n_actions": 13}

:func:`load_policy_artifact` reads that folder back into a :class:`~policies.base.Policy`
without unpickling anything, so ``experiments.models.load_policy_uri`` does not depend on the
pickled :class:`PolicyModel` class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, DataType, Schema

from environment.actions import ACTION_NAMES, N_ACTIONS
from environment.kpis import N_OBS, OBS_NAMES
from policies.base import ArrayPolicy, Policy, PolicyFileError, check_obs

ARTIFACT_FORMAT = 1
META_FILE = "policy.json"
POLICY_ARTIFACT = "policy"
"""The name of the policy folder among the pyfunc model's artifacts."""
PROPENSITY_COLUMNS = tuple(f"propensity_{name}" for name in ACTION_NAMES)
OUTPUT_COLUMNS = ("action", "action_name", "confidence", *PROPENSITY_COLUMNS)


def signature() -> ModelSignature:
    """The model signature described in the module docstring."""
    inputs = Schema([ColSpec(DataType.float, name) for name in OBS_NAMES])
    outputs = Schema(
        [
            ColSpec(DataType.long, "action"),
            ColSpec(DataType.string, "action_name"),
            ColSpec(DataType.double, "confidence"),
            *(ColSpec(DataType.double, column) for column in PROPENSITY_COLUMNS),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


ENTRY_FILE = Path(__file__).with_name("pyfunc_entry.py")
"""The models-from-code file logged with every policy model."""


def input_example(obs: np.ndarray | None = None) -> pd.DataFrame:
    """Observations, float32 shape (n, N_OBS), as the model's input DataFrame; by default
    the first observation of the ``steady`` scenario with seed 0."""
    if obs is None:
        import environment

        env = environment.make_env("steady")
        obs, _ = env.reset(seed=0)
        env.close()
    batch = check_obs(np.atleast_2d(obs), batch=True)
    return pd.DataFrame(batch, columns=list(OBS_NAMES))


def observations(model_input: Any) -> np.ndarray:
    """The model's input as a validated float32 batch, shape (n, N_OBS).

    A DataFrame must have exactly the KPI columns (any order: they are reordered by name).
    """
    if isinstance(model_input, pd.DataFrame):
        missing = [name for name in OBS_NAMES if name not in model_input.columns]
        extra = [str(c) for c in model_input.columns if c not in OBS_NAMES]
        if missing or extra:
            raise ValueError(
                f"input columns must be the {N_OBS} observation names {list(OBS_NAMES)}; "
                f"missing {missing}, unexpected {extra}"
            )
        model_input = model_input[list(OBS_NAMES)].to_numpy(dtype=np.float32)
    array = np.asarray(model_input, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    return check_obs(array, batch=True)


def predict_frame(policy: Policy, model_input: Any) -> pd.DataFrame:
    """``policy``'s decisions for ``model_input`` as the output DataFrame."""
    batch = observations(model_input)
    if isinstance(policy, ArrayPolicy):
        arrays = policy.decide_arrays(batch)
        actions, confidences, propensities = (
            arrays.actions,
            arrays.confidences,
            arrays.propensities,
        )
    else:
        decisions = policy.decide_batch(batch)
        actions = np.array([d.action for d in decisions], dtype=np.int64)
        confidences = np.array([d.confidence for d in decisions])
        propensities = np.stack([d.propensities for d in decisions])
    frame = pd.DataFrame(
        {
            "action": actions.astype(np.int64),
            "action_name": [ACTION_NAMES[a] for a in actions],
            "confidence": confidences.astype(np.float64),
        }
    )
    probabilities = pd.DataFrame(
        np.asarray(propensities, dtype=np.float64), columns=list(PROPENSITY_COLUMNS)
    )
    return pd.concat([frame, probabilities], axis=1)


class PolicyModel(PythonModel):
    """The pyfunc wrapper: loads the policy from the ``policy`` artifact and decides.

    Logged as code (:mod:`experiments.pyfunc_entry`), not pickled.
    """

    def __init__(self) -> None:
        self.policy: Policy | None = None

    def load_context(self, context: Any) -> None:
        self.policy = load_policy_artifact(context.artifacts[POLICY_ARTIFACT])

    # ``pd.DataFrame`` is a hint MLflow does not try to infer a schema from: the signature
    # below is the schema.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.policy is None:
            raise RuntimeError("PolicyModel.predict called before load_context")
        return predict_frame(self.policy, model_input)


# --- the policy folder ----------------------------------------------------------------------


def policy_kind(policy: Policy) -> str:
    """The loader name of ``policy`` (its class's ``kind``, e.g. ``rules``, ``ppo``)."""
    # SB3Policy names its kind ``algo``; every other policy class has a ``kind``.
    kind = getattr(policy, "kind", None) or getattr(policy, "algo", None)
    if not isinstance(kind, str) or not kind:
        raise ValueError(
            f"policy {policy.name!r} ({type(policy).__name__}) has no 'kind'; only policies "
            "that policies.registry can load back can be logged as models"
        )
    return kind


def save_policy_artifact(policy: Policy, folder: str | Path) -> Path:
    """Write ``policy`` and its ``policy.json`` into ``folder`` (created); return it."""
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    kind = policy_kind(policy)
    written = Path(policy.save(directory / f"policy.{kind}"))
    meta = {
        "format": ARTIFACT_FORMAT,
        "kind": kind,
        "file": written.name,
        "name": policy.name,
        "version": policy.version,
        "kpi_names": list(OBS_NAMES),
        "n_actions": N_ACTIONS,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return directory


def load_policy_artifact(folder: str | Path, *, version: str | None = None) -> Policy:
    """Read a folder written by :func:`save_policy_artifact` back into a policy.

    Raises ``FileNotFoundError`` when the folder or its files are missing, and
    :class:`~policies.base.PolicyFileError` (a ``ValueError``) when ``policy.json`` is corrupt
    or the policy expects another observation (KPI names or count) or action count than this
    environment's.
    """
    from policies.registry import load_policy

    directory = Path(folder)
    meta_file = directory / META_FILE
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"policy artifact {str(directory)!r} has no {META_FILE}; it was not written by "
            "experiments.pyfunc (log policies with experiments.models.log_policy_model)"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        kind, file_name = str(meta["kind"]), str(meta["file"])
        kpi_names = list(meta["kpi_names"])
        n_actions = int(meta["n_actions"])
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, this version reads {ARTIFACT_FORMAT}")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise PolicyFileError(f"policy artifact {str(meta_file)!r} is corrupt: {error}") from None
    if kpi_names != list(OBS_NAMES):
        raise PolicyFileError(
            f"policy artifact {str(directory)!r} expects observations of shape "
            f"({len(kpi_names)},) over KPIs {kpi_names}, but the environment's observation has "
            f"shape ({N_OBS},) over {list(OBS_NAMES)}"
        )
    if n_actions != N_ACTIONS:
        raise PolicyFileError(
            f"policy artifact {str(directory)!r} has {n_actions} actions; the environment "
            f"has {N_ACTIONS}"
        )
    policy_file = directory / file_name
    if not policy_file.exists():
        raise FileNotFoundError(f"policy artifact {str(directory)!r} lacks its file {file_name!r}")
    policy = load_policy(f"{kind}:{policy_file}")
    if version is not None:
        policy.version = version
    return policy


__all__ = [
    "OUTPUT_COLUMNS",
    "POLICY_ARTIFACT",
    "PolicyModel",
    "input_example",
    "load_policy_artifact",
    "observations",
    "predict_frame",
    "save_policy_artifact",
    "signature",
]
