"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the settings anew, so ``monkeypatch.setenv`` reaches them."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
