"""Cursor pagination: lists are newest first by id; ``cursor`` is the last id seen (the
previous page's ``next_cursor``) and ``limit`` the page size, :data:`DEFAULT_PAGE_SIZE` unless
given, at most :data:`MAX_PAGE_SIZE` (a larger one is a 422)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Path, Query

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_ID = 2**63 - 1
"""Largest row id any supported database stores (a signed 64-bit integer)."""

Cursor = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="the next_cursor of the previous page")
]
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A row id in a path (an approval, an execution)."""
Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"page size, at most {MAX_PAGE_SIZE}")
]


def page_of(rows: Sequence[dict[str, Any]], cursor: int | None, limit: int) -> dict[str, Any]:
    """One page of ``rows`` (dicts with ``id``, newest first)."""
    after = [row for row in rows if cursor is None or row["id"] < cursor]
    items = list(after[:limit])
    more = len(after) > limit
    return {"items": items, "next_cursor": items[-1]["id"] if more and items else None}
