"""Policies in the MLflow Model Registry: logging, registering, aliases, and loading any URI.

Every trained policy is logged as a pyfunc model (:mod:`experiments.pyfunc`) and registered as
a version of :data:`REGISTERED_MODEL` (``autopilot-policy``). Two aliases name the versions
that matter: ``challenger`` (the candidate, set by ``autopilot train`` unless it is given
another alias with ``--alias NAME``) and ``champion`` (the one the agent and the API run,
moved only by ``autopilot promote``, which keeps the one it replaces as ``previous-champion``).
An alias names one version: setting it on a new version takes it from the old one, and
:class:`LoggedPolicy` says which (``replaced``).

:func:`load_policy_uri` turns any of these into a :class:`~policies.base.Policy`:

========================================  ====================================================
``models:/autopilot-policy@champion``     a registered version by alias (or ``.../3``)
``runs:/<run_id>/policy``                 a model logged in a run
``/path/to/model`` (has ``MLmodel``)      a pyfunc model folder on disk
``/path/to/policy`` (has ``policy.json``)  a policy artifact folder on disk
``rules``, ``ppo:/path/model.zip``, ...   anything :func:`policies.registry.load_policy` reads
========================================  ====================================================

The loaded policy's ``version`` is the concrete model URI (``models:/autopilot-policy/3``,
never the moving alias), so decision logs say exactly which model decided.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from experiments import pyfunc
from experiments.tracking import Tracking, configure
from policies.base import Policy, PolicyFileError

REGISTERED_MODEL = "autopilot-policy"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
PROMOTE_ALIASES = (CHAMPION, PREVIOUS_CHAMPION)
"""Aliases only ``autopilot promote`` moves (on evidence); training may not set them."""
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,254}$")
_MLFLOW_RESERVED_ALIAS = re.compile(r"^(?:latest|[vV]\d+)$", re.IGNORECASE)
MODEL_ARTIFACT = "policy"
"""Name of the logged model within its run (``runs:/<run_id>/policy``)."""

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")

REQUIREMENTS = (
    "mlflow",
    "numpy",
    "pandas",
    "gymnasium",
    "stable-baselines3",
    "torch",
    "cloudpickle",
)


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged policy model (this package plus what it imports).

    Listed explicitly so MLflow does not infer them (inference loads the model in a
    subprocess, which is slow); ``saas-autopilot`` is this project, installed from source.
    """
    pins = []
    for dist in ("saas-autopilot", *REQUIREMENTS):
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pins.append(dist)
    return pins


@dataclass(frozen=True, slots=True)
class LoggedPolicy:
    """Where a logged policy model went."""

    model_uri: str
    """The logged model (``models:/m-...``), loadable with ``mlflow.pyfunc.load_model``."""
    run_id: str
    version: str | None = None
    """The registered version of ``autopilot-policy`` (``None`` if not registered)."""
    alias: str | None = None
    """The alias now pointing at ``version`` (``None``: none was set)."""
    replaced: str | None = None
    """The version ``alias`` named before (``None``: it named none)."""

    @property
    def registered_uri(self) -> str | None:
        """``models:/autopilot-policy/<version>`` when registered."""
        return None if self.version is None else f"models:/{REGISTERED_MODEL}/{self.version}"


def check_alias(alias: str) -> str:
    """``alias`` if training may set it on a version of ``autopilot-policy``: a letter, then
    up to 254 letters, digits, ``_`` or ``-``; not ``latest`` or ``v<N>`` (MLflow's), nor
    :data:`PROMOTE_ALIASES`. Raises ``ValueError`` naming the alias and what is allowed."""
    if alias in PROMOTE_ALIASES:
        raise ValueError(
            f"alias {alias!r} is set only by `autopilot promote`, on evidence; train under "
            f"{CHALLENGER!r} (the default) or a name of your own"
        )
    if not isinstance(alias, str) or _ALIAS.match(alias) is None:
        raise ValueError(
            f"alias {alias!r} is invalid: must start with a letter, then up to 254 letters, "
            "digits, '_' or '-'"
        )
    if _MLFLOW_RESERVED_ALIAS.match(alias):
        raise ValueError(f"alias {alias!r} is reserved by MLflow ('latest', 'v<N>'); pick another")
    return alias


def log_policy_model(
    policy: Policy,
    *,
    register: bool = True,
    alias: str | None = CHALLENGER,
    tags: dict[str, str] | None = None,
) -> LoggedPolicy:
    """Log ``policy`` as a pyfunc model in the active run; optionally register it as a new
    version of ``autopilot-policy`` and point ``alias`` at that version (taking it from the
    version it named, which the result's ``replaced`` gives)."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_policy_model needs an active MLflow run")
    if alias is not None:
        check_alias(alias)
    with tempfile.TemporaryDirectory(prefix="autopilot-policy-") as tmp:
        folder = pyfunc.save_policy_artifact(policy, Path(tmp) / "policy")
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(pyfunc.ENTRY_FILE),
            artifacts={pyfunc.POLICY_ARTIFACT: str(folder)},
            signature=pyfunc.signature(),
            input_example=pyfunc.input_example(),
            pip_requirements=pip_requirements(),
        )
    if not register:
        return LoggedPolicy(info.model_uri, run.info.run_id)
    version = mlflow.register_model(info.model_uri, REGISTERED_MODEL, tags=tags)
    client = mlflow.MlflowClient()
    client.set_tag(run.info.run_id, "registered_version", str(version.version))
    if alias is None:
        return LoggedPolicy(info.model_uri, run.info.run_id, str(version.version))
    before = _find_version(client, alias)
    client.set_registered_model_alias(REGISTERED_MODEL, alias, str(version.version))
    replaced = None if before is None else str(before.version)
    return LoggedPolicy(info.model_uri, run.info.run_id, str(version.version), alias, replaced)


def model_version(tracking: Tracking, alias_or_version: str) -> ModelVersion | None:
    """The ``autopilot-policy`` version named by an alias or a number, ``None`` if absent."""
    return _find_version(tracking.client(), alias_or_version)


def _find_version(client: mlflow.MlflowClient, alias_or_version: str) -> ModelVersion | None:
    try:
        if alias_or_version.isdigit():
            return client.get_model_version(REGISTERED_MODEL, alias_or_version)
        return client.get_model_version_by_alias(REGISTERED_MODEL, alias_or_version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(tracking: Tracking, alias: str, version: str) -> None:
    """Point ``alias`` of ``autopilot-policy`` at ``version``."""
    tracking.client().set_registered_model_alias(REGISTERED_MODEL, alias, str(version))


def _resolve_registry(uri: str, tracking: Tracking) -> tuple[str, str]:
    """(download URI, concrete ``models:/name/version`` URI) for a ``models:/`` URI; errors
    name the model, the alias or version, and what exists."""
    match = _MODELS_URI.match(uri)
    if match is None:
        raise ValueError(
            f"model URI {uri!r} is invalid: must be models:/<name>@<alias> or "
            "models:/<name>/<version>"
        )
    name, alias, version = match.group("name"), match.group("alias"), match.group("version")
    client = tracking.client()
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        raise LookupError(
            f"no registered model {name!r} in the MLflow registry at {tracking.uri!r}; "
            f"train one with `autopilot train` (it registers {REGISTERED_MODEL!r})"
        ) from None
    if alias is not None:
        aliases = sorted(registered.aliases or {})
        if alias not in aliases:
            raise LookupError(
                f"registered model {name!r} has no alias {alias!r} at {tracking.uri!r}; "
                f"aliases: {aliases}"
                + (" (promote a challenger with `autopilot promote`)" if alias == CHAMPION else "")
            )
        version = str(registered.aliases[alias])
    assert version is not None
    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise LookupError(
            f"registered model {name!r} has no version {version!r} at {tracking.uri!r}"
        ) from None
    concrete = f"models:/{name}/{version}"
    return concrete, concrete


def _policy_folder(model_dir: Path, where: str) -> Path:
    """The policy artifact folder inside a downloaded pyfunc model folder."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise PolicyFileError(f"{where} is not an MLflow model: it has no MLmodel file")
    try:
        model = mlflow.models.Model.load(str(mlmodel))
        artifacts = model.flavors["python_function"]["artifacts"]
        relative = artifacts[pyfunc.POLICY_ARTIFACT]["path"]
    except (KeyError, TypeError, MlflowException, ValueError, OSError) as error:
        raise PolicyFileError(
            f"{where} is not an autopilot policy model (its MLmodel has no "
            f"python_function artifact {pyfunc.POLICY_ARTIFACT!r}): {error}"
        ) from None
    return model_dir / relative


def load_policy_uri(uri: str, *, tracking: Tracking | None = None) -> Policy:
    """A :class:`~policies.base.Policy` from any URI of the module docstring's table.

    Errors: ``LookupError`` for a missing registered model, alias, version or run;
    ``FileNotFoundError`` for a missing local path; :class:`~policies.base.PolicyFileError`
    (a ``ValueError``) for a corrupt artifact or one whose observation shape or action count
    does not match the environment; ``ValueError`` for an unknown policy name.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"policy URI {uri!r} is invalid: must be a non-empty string")
    uri = uri.strip()
    if uri.startswith(("models:/", "runs:/")):
        store = tracking or configure()
        configure(store.uri, store.artifact_root)
        if uri.startswith("models:/"):
            download_uri, version = _resolve_registry(uri, store)
        else:
            download_uri, version = uri, uri
        with tempfile.TemporaryDirectory(prefix="autopilot-load-") as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=download_uri,
                    dst_path=tmp,
                    tracking_uri=store.uri,
                    registry_uri=store.uri,
                )
            except MlflowException as error:
                raise LookupError(
                    f"cannot fetch model {uri!r} from {store.uri!r}: {error.message}"
                ) from None
            folder = _policy_folder(Path(local), f"model {uri!r}")
            return pyfunc.load_policy_artifact(folder, version=version)
    path = Path(uri)
    if path.is_dir():
        if (path / "MLmodel").is_file():
            return pyfunc.load_policy_artifact(
                _policy_folder(path, f"model folder {uri!r}"), version=str(path.resolve())
            )
        if (path / pyfunc.META_FILE).is_file():
            return pyfunc.load_policy_artifact(path, version=str(path.resolve()))
        raise PolicyFileError(
            f"folder {uri!r} is neither an MLflow model (no MLmodel) nor a policy artifact "
            f"(no {pyfunc.META_FILE})"
        )
    if path.is_file():
        raise ValueError(
            f"policy file {uri!r} needs its kind: use KIND:PATH, e.g. 'ppo:{uri}' or 'rules:{uri}'"
        )
    from policies.registry import load_policy

    return load_policy(uri)


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "PROMOTE_ALIASES",
    "REGISTERED_MODEL",
    "LoggedPolicy",
    "check_alias",
    "load_policy_uri",
    "log_policy_model",
    "model_version",
    "pip_requirements",
    "set_alias",
]
