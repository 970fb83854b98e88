"""Where runs go: the MLflow tracking store, experiments, runs, and SB3's metrics stream.

The tracking URI is, in order: the ``uri`` passed in (``--tracking-uri``), the
``MLFLOW_TRACKING_URI`` environment variable, then ``sqlite:///mlflow.db`` in the working
directory (MLflow's own default since 3.7). The model registry lives in the same store.
Review runs with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``.

Artifacts go where the experiment says; experiments this module creates put them under
``artifact_root/<experiment name>`` when an ``artifact_root`` is given (tests use a temporary
folder), else in MLflow's default (``./mlruns`` beside a local store, or the server's root).

:class:`MlflowOutputFormat` is a stable-baselines3 ``KVWriter``: added to SB3's logger, it
streams every numeric value SB3 records (``train/loss``, ``rollout/ep_rew_mean``, ...) to the
active run. It buffers metrics and sends them with ``MlflowClient.log_batch(...,
synchronous=False)`` (MLflow's background logging queue), so training never waits on the
database; :meth:`MlflowOutputFormat.close` flushes and waits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.utils.async_logging.run_operations import RunOperations
from stable_baselines3.common.logger import KVWriter

from agent.settings import DEFAULT_TRACKING_URI, get_settings

ALLOWED_SCHEMES = (
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
    "http",
    "https",
    "file",
    "databricks",
)
"""URI schemes MLflow stores accept (database URLs may add a driver: ``postgresql+psycopg``)."""

MAX_METRICS_PER_BATCH = 1_000
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6_000


def check_tracking_uri(uri: str) -> str:
    """``uri`` if its scheme is one MLflow can store runs in; ``ValueError`` otherwise."""
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"tracking URI {uri!r} is invalid: must be a non-empty string")
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", uri)
    if match is None:
        # MLflow also accepts a bare local folder (a file store).
        return uri
    scheme = match.group(1).split("+", 1)[0].lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(
            f"tracking URI {uri!r} has scheme {scheme!r}; allowed: {list(ALLOWED_SCHEMES)} "
            "(database URLs may name a driver, e.g. postgresql+psycopg://)"
        )
    return uri


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else the settings' ``mlflow_tracking_uri``
    (``AUTOPILOT_MLFLOW_TRACKING_URI``, else ``$MLFLOW_TRACKING_URI``, else the default)."""
    chosen = uri or get_settings().mlflow_tracking_uri
    return check_tracking_uri(chosen)


@dataclass(frozen=True, slots=True)
class Tracking:
    """A tracking store: where runs, models and (for new experiments) artifacts go."""

    uri: str
    """Tracking (and registry) URI."""
    artifact_root: str | None = None
    """Artifact root for experiments created here (``None``: MLflow's default)."""

    def client(self) -> MlflowClient:
        """A client bound to this store (tracking and registry)."""
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


def configure(uri: str | None = None, artifact_root: str | Path | None = None) -> Tracking:
    """Point MLflow (fluent API and registry) at ``uri`` (see the module docstring)."""
    resolved = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    root = None if artifact_root is None else str(Path(artifact_root).resolve())
    return Tracking(resolved, root)


def experiment_id(tracking: Tracking, name: str) -> str:
    """The id of experiment ``name``, created (with ``tracking.artifact_root``) if missing."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"experiment name {name!r} is invalid: must be a non-empty string")
    client = tracking.client()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage != "active":
            raise ValueError(
                f"MLflow experiment {name!r} is deleted; restore it or choose another name"
            )
        return str(existing.experiment_id)
    location = None
    if tracking.artifact_root is not None:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"
        location = Path(tracking.artifact_root, slug).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


@contextmanager
def start_run(
    tracking: Tracking,
    experiment: str,
    run_name: str,
    *,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """An active MLflow run in ``experiment``; ended (FAILED on an exception) on exit."""
    configure(tracking.uri, tracking.artifact_root)
    exp_id = experiment_id(tracking, experiment)
    with mlflow.start_run(
        experiment_id=exp_id, run_name=run_name, nested=nested, tags=dict(tags or {})
    ) as run:
        yield run


def metric_key(text: str) -> str:
    """``text`` made a valid MLflow metric/param key (letters, digits, ``_ - . / space``)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", text)


def log_params(params: Mapping[str, Any], run_id: str | None = None) -> None:
    """Log ``params`` in batches (MLflow caps a batch at 100 params)."""
    client = MlflowClient()
    target = run_id or _active_run_id()
    items = [Param(metric_key(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
    for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
        client.log_batch(target, params=items[start : start + MAX_PARAMS_PER_BATCH])


def log_metrics(metrics: Mapping[str, float], step: int = 0, run_id: str | None = None) -> None:
    """Log ``metrics`` at ``step`` in one batch per 1,000 (non-finite values are skipped:
    an undefined interval from one episode is not a metric)."""
    client = MlflowClient()
    target = run_id or _active_run_id()
    now = int(time.time() * 1000)
    items = [
        Metric(metric_key(k), float(v), now, step)
        for k, v in sorted(metrics.items())
        if v is not None and float(v) == float(v) and abs(float(v)) != float("inf")
    ]
    for start in range(0, len(items), MAX_METRICS_PER_BATCH):
        client.log_batch(target, metrics=items[start : start + MAX_METRICS_PER_BATCH])


def _active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run; start one with experiments.tracking.start_run")
    return str(run.info.run_id)


class MlflowOutputFormat(KVWriter):
    """A stable-baselines3 ``KVWriter`` that streams SB3's numeric values to an MLflow run.

    Values are buffered and sent with ``log_batch(synchronous=False)`` when ``batch_size``
    metrics have accumulated or ``flush_seconds`` have passed since the last send, whichever
    comes first; :meth:`close` sends the rest and waits for every pending send. Keys excluded
    for the ``"mlflow"`` format (``logger.record(key, value, exclude="mlflow")``) and
    non-numeric values (videos, figures, text) are skipped. The values of the ``keep`` keys
    are also kept in memory (:meth:`series`) for the run's plots.
    """

    def __init__(
        self,
        run_id: str,
        client: MlflowClient | None = None,
        *,
        batch_size: int = 500,
        flush_seconds: float = 10.0,
        prefix: str = "",
        keep: tuple[str, ...] = ("rollout/ep_rew_mean", "train/episode_return"),
    ) -> None:
        if not 1 <= batch_size <= MAX_METRICS_PER_BATCH:
            raise ValueError(f"batch_size={batch_size!r} must be in [1, {MAX_METRICS_PER_BATCH}]")
        if not flush_seconds >= 0:
            raise ValueError(f"flush_seconds={flush_seconds!r} must be >= 0")
        self.run_id = run_id
        self.client = client or MlflowClient()
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.prefix = prefix
        self._buffer: list[Metric] = []
        self._pending: list[RunOperations] = []
        self._last_flush = time.monotonic()
        self.metrics_logged = 0
        self._kept: dict[str, list[tuple[int, float]]] = {key: [] for key in keep}

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        now = int(time.time() * 1000)
        for key, value in key_values.items():
            excluded = key_excluded.get(key)
            if excluded is not None and "mlflow" in excluded:
                continue
            if isinstance(value, bool) or (
                not isinstance(value, int | float) and not hasattr(value, "__float__")
            ):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if number != number or abs(number) == float("inf"):
                continue
            if key in self._kept:
                self._kept[key].append((int(step), number))
            self._buffer.append(Metric(metric_key(self.prefix + key), number, now, int(step)))
        if (
            len(self._buffer) >= self.batch_size
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def series(self, key: str) -> list[tuple[int, float]]:
        """The ``(step, value)`` pairs written for ``key``, if it is one of ``keep``."""
        return list(self._kept.get(key, []))

    def flush(self) -> None:
        """Send the buffered metrics (asynchronously)."""
        while self._buffer:
            batch = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            operation = self.client.log_batch(self.run_id, metrics=batch, synchronous=False)
            if operation is not None:
                self._pending.append(operation)
            self.metrics_logged += len(batch)
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Send the rest and wait until MLflow has stored everything."""
        self.flush()
        pending, self._pending = self._pending, []
        for operation in pending:
            operation.wait()


__all__ = [
    "DEFAULT_TRACKING_URI",
    "MlflowOutputFormat",
    "Tracking",
    "check_tracking_uri",
    "configure",
    "experiment_id",
    "log_metrics",
    "log_params",
    "metric_key",
    "resolve_tracking_uri",
    "start_run",
]
