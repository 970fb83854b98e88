"""Loading policies by name: every name, and errors naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.bandits import LinUCBBandit
from policies.base import Policy, PolicyFileError
from policies.registry import POLICY_NAMES, load_policy, parse_spec
from policies.rules import RulesPolicy


@pytest.mark.parametrize(
    "name", ["noop", "random", "rules", "oracle", "epsilon_greedy", "ucb1", "linucb", "thompson"]
)
def test_fresh_policies_by_name(name: str) -> None:
    policy = load_policy(name)
    assert isinstance(policy, Policy)
    assert policy.name == name


def test_spec_parsing() -> None:
    assert parse_spec(" Rules ") == ("rules", None)
    assert parse_spec("ppo:/models/a:b.zip") == ("ppo", Path("/models/a:b.zip"))
    assert set(POLICY_NAMES) >= {"ppo", "a2c", "dqn", "rules", "linucb"}


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("magic", ValueError, r"unknown policy 'magic'; known: \["),
        ("", ValueError, "policy spec must be 'NAME' or 'NAME:PATH'"),
        (3, ValueError, "policy spec must be"),
        ("linucb:", ValueError, "empty path after ':'"),
        ("ppo", ValueError, "policy 'ppo' needs a model file"),
        ("ppo:/nowhere/model.zip", FileNotFoundError, "does not exist"),
        ("rules:/nowhere/rules.json", FileNotFoundError, "does not exist"),
        ("linucb:/nowhere/linucb.npz", FileNotFoundError, "does not exist"),
    ],
)
def test_bad_specs(spec: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        load_policy(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("rules", b"{not json", "rules policy file .* is corrupt"),
        ("rules", b'{"kind": "rules", "format": 1}', "rules policy file .* is corrupt"),
        ("rules", b'{"format": 1}', "has no 'kind' field"),
        ("rules", b'{"kind": "rules", "format": 99}', "has format 99"),
        ("rules", b"\xff\xfe", "is corrupt"),
        ("random", b'{"kind": "random", "format": 1, "seed": "x"}', "is corrupt"),
        ("linucb", b"garbage", "corrupt or not an .npz archive"),
        ("thompson", b"", "corrupt or not an .npz archive"),
        ("oracle", b'{"kind": "oracle", "format": 1, "config": {"horizon": -1}}', "corrupt"),
    ],
)
def test_corrupt_files_name_the_file_and_the_problem(
    name: str, content: bytes, match: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.bin"
    path.write_bytes(content)
    with pytest.raises(PolicyFileError, match=match):
        load_policy(f"{name}:{path}")


def test_a_file_of_another_kind_is_named(tmp_path: Path) -> None:
    rules_path = RulesPolicy().save(tmp_path / "rules.json")
    with pytest.raises(PolicyFileError, match="holds a 'rules' policy, not 'noop'"):
        load_policy(f"noop:{rules_path}")
    bandit_path = LinUCBBandit().save(tmp_path / "bandit.npz")
    with pytest.raises(PolicyFileError, match="holds a 'linucb' policy, not 'thompson'"):
        load_policy(f"thompson:{bandit_path}")


def test_a_directory_is_not_a_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="is not a file"):
        load_policy(f"rules:{tmp_path}")


def test_registry_knows_every_sb3_algorithm() -> None:
    from policies.registry import SB3_ALGORITHMS
    from policies.sb3 import ALGORITHMS

    assert set(SB3_ALGORITHMS) == set(ALGORITHMS)
