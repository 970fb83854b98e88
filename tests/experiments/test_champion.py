"""The champion preset on a tiny budget: trained, calibrated, written with its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.champion import PRESETS, preset_path, train_champion
from experiments.tracking import Tracking
from policies.calibration import Calibration
from policies.sb3 import SB3Policy

TINY = ("imitation_seeds=1", "imitation_epochs=30", "n_steps=16", "batch_size=64")


def test_the_preset_writes_a_calibrated_champion_and_its_metadata(
    tracking: Tracking, tmp_path: Path
) -> None:
    result = train_champion(
        output=tmp_path / "champion.zip",
        tracking=tracking,
        overrides={"timesteps": 256, "eval_every": 0, "eval_seeds": 1, "register": False},
        settings=TINY,
        calibration_scenarios=("payment_outage",),
        calibration_seeds=(3_000_000,),
    )
    policy = SB3Policy.load(result.model)
    assert policy.algo == "maskable_ppo"
    meta = json.loads(result.metadata.read_text())
    assert meta["command"] == "autopilot train --preset champion"
    assert meta["timesteps"] == 256
    assert meta["mlflow_run_id"] == result.run_id
    assert (tmp_path / meta["config"]).is_file()
    assert meta["calibration_decisions"] > 0  # a policy that imitated the rules acts
    assert isinstance(policy.calibration, Calibration)
    assert policy.calibration.samples == meta["calibration_decisions"]
    rules = json.loads((tmp_path / "rules_calibration.json").read_text())
    assert Calibration.from_dict(rules).samples > 0


def test_an_unknown_preset_names_the_known_ones() -> None:
    assert preset_path("champion").is_file()
    with pytest.raises(ValueError, match=r"unknown preset 'best'; allowed: \['champion'\]"):
        preset_path("best")
    assert PRESETS == ("champion",)


def test_the_preset_registers_under_the_alias_given(tracking: Tracking, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="alias 'champion' is set only by `autopilot promote`"):
        train_champion(output=tmp_path / "champion.zip", tracking=tracking, alias="champion")
    assert not (tmp_path / "champion.zip").exists()  # refused before training
