"""Keyset pagination of the API's lists: the opaque ``cursor`` (the last id of the previous page) and
the RFC 8288 ``Link: <…>; rel="next"`` header. One spelling for every list (orders, catalog)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query
from starlette.requests import Request

from app.api.errors import Problem
from app.api.schemas import MAX_ID

Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page.")]


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id a page continues after (0: from the start); a cursor not made here is a 422."""
    if not cursor:
        return 0
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if value.isdigit() and 0 < int(value) <= MAX_ID:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Problem(
        422, "invalid-cursor", "Invalid cursor", "cursor must be a next_cursor from a previous page"
    )


def next_link(request: Request, next_cursor: str | None) -> dict[str, str]:
    """The ``Link`` header pointing at the next page, when there is one."""
    if next_cursor is None:
        return {}
    url = request.url.include_query_params(cursor=next_cursor)
    return {"Link": f'<{url.path}?{url.query}>; rel="next"'}
