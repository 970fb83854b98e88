"""Cursor pagination: lists are newest first by id; ``cursor`` is the last id seen and
``limit`` at most ``settings.api_max_page_size`` (default ``settings.api_page_size``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query

from agent.settings import Settings
from api.problems import Problem

Cursor = Annotated[int | None, Query(ge=1, description="the next_cursor of the previous page")]
Limit = Annotated[int | None, Query(ge=1, description="page size (bounded by the server)")]


def check_limit(limit: int | None, settings: Settings) -> int:
    """The page size: ``limit`` or the default; 422 above the maximum."""
    if limit is None:
        return settings.api_page_size
    if limit > settings.api_max_page_size:
        raise Problem(
            422,
            f"limit: {limit} exceeds the maximum page size {settings.api_max_page_size}",
            errors=[{"field": "limit", "message": f"at most {settings.api_max_page_size}"}],
        )
    return limit


def page_of(
    rows: Sequence[dict[str, Any]], cursor: int | None, limit: int | None, settings: Settings
) -> dict[str, Any]:
    """One page of ``rows`` (dicts with ``id``, newest first)."""
    size = check_limit(limit, settings)
    after = [row for row in rows if cursor is None or row["id"] < cursor]
    items = list(after[:size])
    more = len(after) > size
    return {"items": items, "next_cursor": items[-1]["id"] if more and items else None}
