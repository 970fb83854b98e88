"""Schedule expressions, their ticks, and the scheduling settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from agent.scheduling import latest_tick, parse_schedule
from agent.settings import Settings


@pytest.mark.parametrize(
    ("expression", "now", "tick"),
    [
        ("0 */4 * * *", datetime(2026, 12, 1, 3, 59, 59), datetime(2026, 12, 1, 0, 0)),
        ("0 */4 * * *", datetime(2026, 12, 1, 4, 0, 0), datetime(2026, 12, 1, 4, 0)),
        ("0 */4 * * *", datetime(2026, 12, 1, 4, 0, 1), datetime(2026, 12, 1, 4, 0)),
        ("30 * * * *", datetime(2026, 12, 1, 0, 29, 59), datetime(2026, 11, 30, 23, 30)),
        ("every 2s", datetime(2026, 12, 1, 0, 0, 3, 999999), datetime(2026, 12, 1, 0, 0, 2)),
        ("every 2s", datetime(2026, 12, 1, 0, 0, 4), datetime(2026, 12, 1, 0, 0, 4)),
        ("every 10m", datetime(2026, 12, 1, 0, 19, 59), datetime(2026, 12, 1, 0, 10)),
        # crontab weekdays: 0 and 7 are Sunday, 1 Monday (2026-12-01 is a Tuesday)
        ("0 3 * * 1", datetime(2026, 12, 2, 0, 0), datetime(2026, 11, 30, 3, 0)),
        ("0 3 * * 0", datetime(2026, 12, 2, 0, 0), datetime(2026, 11, 29, 3, 0)),
        ("0 3 * * 7", datetime(2026, 12, 2, 0, 0), datetime(2026, 11, 29, 3, 0)),
        ("0 3 * * 1-5", datetime(2026, 12, 6, 12, 0), datetime(2026, 12, 4, 3, 0)),
        ("0 3 * * */3", datetime(2026, 12, 2, 12, 0), datetime(2026, 12, 2, 3, 0)),
        ("0 3 * * sun", datetime(2026, 12, 2, 0, 0), datetime(2026, 11, 29, 3, 0)),
    ],
)
def test_the_latest_tick_is_the_last_fire_time_at_or_before_now(
    expression: str, now: datetime, tick: datetime
) -> None:
    trigger = parse_schedule(expression)
    assert trigger is not None
    assert latest_tick(trigger, now.replace(tzinfo=UTC)) == tick


def test_intervals_are_aligned_so_every_scheduler_agrees() -> None:
    trigger = parse_schedule("every 2s")
    assert trigger is not None
    first = trigger.get_next_fire_time(None, datetime(2026, 12, 1, 0, 0, 1, 300, tzinfo=UTC))
    assert first == datetime(2026, 12, 1, 0, 0, 2, tzinfo=UTC)


def test_off_means_never() -> None:
    assert parse_schedule(" OFF ") is None


@pytest.mark.parametrize(
    "expression",
    ["", "every", "every 0s", "every 5d", "every -1s", "0 */4 * *", "61 * * * *", "hourly"],
)
def test_bad_schedules_name_the_expression_and_the_forms(expression: str) -> None:
    with pytest.raises(ValueError, match=r"schedule '.*'"):
        parse_schedule(expression)


def test_the_defaults_are_the_seeds_schedules() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.cycle_schedule, settings.monitor_schedule) == ("0 */4 * * *", "30 * * * *")
    assert settings.misfire_grace_s == 600 and not settings.schedule_live


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("misfire_grace_s", [1.0, 86_400.0], [0.999, 86_400.001]),
        ("tick_lease_s", [1.0, 3_600.0], [0.999, 3_600.001]),
        ("visibility_timeout_s", [1.0, 86_400.0], [0.999, 86_400.001]),
        ("alert_cooldown_s", [0.0, 604_800.0], [-0.001, 604_800.001]),
        ("alert_max_attempts", [1, 50], [0, 51]),
        ("alert_backoff_s", [0.001, 600.0], [0.0, 600.001]),
    ],
)
def test_the_bounds_of_each_setting(field: str, good: list[float], bad: list[float]) -> None:
    for value in good:
        assert getattr(Settings(**{field: value}), field) == value
    for value in bad:
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: value})


def test_a_bad_schedule_setting_names_the_variable() -> None:
    with pytest.raises(ValidationError, match=r"cycle_schedule[\s\S]*'every 5d'"):
        Settings(cycle_schedule="every 5d")


def test_webhooks_are_validated_and_their_secrets_never_print() -> None:
    hook = {"name": "ops", "url": "http://127.0.0.1:9/hook", "secret": "s3cret-value"}
    settings = Settings(
        alert_webhooks=[
            hook,
            {**hook, "name": "pd", "format": "pagerduty", "routing_key": "rk-secret"},
        ]
    )
    shown = repr(settings) + str(settings.model_dump())
    assert "s3cret-value" not in shown and "rk-secret" not in shown
    with pytest.raises(ValidationError, match="format pagerduty needs a routing_key"):
        Settings(alert_webhooks=[{**hook, "format": "pagerduty"}])
    with pytest.raises(
        ValidationError, match=r"webhook names must be unique, got \['ops', 'ops'\]"
    ):
        Settings(alert_webhooks=[hook, hook])
    with pytest.raises(ValidationError, match="format"):
        Settings(alert_webhooks=[{**hook, "format": "teams"}])
    with pytest.raises(ValidationError, match="secret must not be empty"):
        Settings(alert_webhooks=[{**hook, "secret": ""}])
