"""`autopilot simulate`: paired comparison tables from the command line."""

from __future__ import annotations

import pytest

from cli.main import main


def test_simulate_prints_a_paired_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["simulate", "--policies", "noop,rules", "--scenarios", "steady", "--seeds", "2"]) == 0
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("noop", "rules"))]
    assert len(rows) == 4  # one scenario row and one overall row per policy
    assert "mean return (95% CI)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policies", "oracle9"], "oracle9"),
        (["--scenarios", "doomsday"], "unknown scenarios ['doomsday']"),
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    ],
)
def test_simulate_rejects_bad_input(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--seeds", "1", "--scenarios", "steady", *argv]) == 2
    assert message in capsys.readouterr().err
