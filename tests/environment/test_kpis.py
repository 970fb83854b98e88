"""The KPI vocabulary: encoding, decoding, alignment and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from environment import dynamics
from environment.kpis import (
    KPI_NAMES,
    KPI_SPECS,
    N_KPIS,
    N_OBS,
    OBS_HIGH,
    OBS_LOW,
    SPEC_BY_NAME,
    alignment_score,
    check_kpis,
    decode,
    encode,
    encode_vector,
)
from environment.params import BusinessParams


def test_encode_decode_round_trip(params: BusinessParams) -> None:
    kpis = dynamics.true_kpis(dynamics.steady_start(params), params)
    decoded = decode(encode(kpis))
    for name in KPI_NAMES:
        assert decoded[name] == pytest.approx(kpis[name], rel=1e-5, abs=1e-6), name


@pytest.mark.parametrize("value", [-1e9, -1.0, 0.0, 1e-9, 0.5, 3.0, 150.0, 1e6, 1e12])
def test_encoding_never_leaves_the_box(value: float) -> None:
    encoded = encode_vector(np.full(N_KPIS, value))
    assert (encoded >= OBS_LOW).all()
    assert (encoded <= OBS_HIGH).all()


def test_encoding_formulas() -> None:
    kpis = dict.fromkeys(KPI_NAMES, 0.0)
    kpis.update(activation_rate=0.3, health_score=85.0, mrr=250_000.0, mrr_growth=0.05)
    encoded = dict(zip(KPI_NAMES, encode(kpis).tolist()[:N_KPIS], strict=True))
    assert encoded["activation_rate"] == pytest.approx(0.3)
    assert encoded["health_score"] == pytest.approx(0.85)
    assert encoded["mrr"] == pytest.approx(0.5)  # x / (x + half) at x == half
    assert encoded["mrr_growth"] == pytest.approx(math.tanh(1.0))


def test_alignment_is_100_only_when_every_target_is_met(params: BusinessParams) -> None:
    kpis = dynamics.true_kpis(dynamics.steady_start(params), params)
    met = dict(kpis)
    for spec in KPI_SPECS:
        if spec.target is not None:
            met[spec.name] = spec.target
    assert alignment_score(met) == pytest.approx(100.0)
    missed = dict(met, activation_rate=0.2)  # half of the 0.40 target
    n_targets = sum(spec.target is not None for spec in KPI_SPECS)
    assert alignment_score(missed) == pytest.approx(100.0 - 50.0 / n_targets)
    worse = dict(met, billing_failure_rate=0.16)  # twice the 8% ceiling
    assert alignment_score(worse) == pytest.approx(100.0 - 50.0 / n_targets)


def test_seed_targets() -> None:
    assert SPEC_BY_NAME["activation_rate"].target == 0.40
    assert SPEC_BY_NAME["d7_retention"].target == 0.25
    assert SPEC_BY_NAME["signup_to_activation"].target == 0.40
    assert SPEC_BY_NAME["ltv_cac"].target == 4.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mrr": None}, "KPIs missing: \\['mrr'\\]"),
        ({"nps": 50.0}, "unknown KPI names \\['nps'\\]"),
        ({"cac": math.inf}, "must be finite numbers, got {'cac': inf}"),
    ],
)
def test_check_kpis_rejects_bad_sets(
    params: BusinessParams, change: dict[str, float | None], message: str
) -> None:
    kpis: dict[str, float] = dict(dynamics.true_kpis(dynamics.steady_start(params), params))
    for name, value in change.items():
        if value is None:
            del kpis[name]
        else:
            kpis[name] = value
    with pytest.raises(ValueError, match=message):
        check_kpis(kpis)


def test_decode_rejects_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match=rf"shape \({N_OBS},\) or \({N_KPIS},\), got \(3,\)"):
        decode(np.zeros(3))
