"""The OpenAPI 3.1 document of `tailor serve` (``GET /openapi.json``), written out by hand.

Starlette derives no schema from handlers, so each route's operation is declared here next
to the others; `tests/flows/test_serve.py` checks that the document and the app's routes name
the same paths, so a new route cannot go undocumented.
"""

from __future__ import annotations

from typing import Any

__all__ = ["document"]

_JSON = "application/json"
_ERROR = {
    "description": "what went wrong",
    "content": {
        _JSON: {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
_UNAVAILABLE = {**_ERROR, "description": "Redis cannot be reached"}
_ITEM = {
    "type": "object",
    "properties": {
        "item_id": {"type": "string"},
        "score": {"type": "number"},
        "source": {"type": "string", "description": "which recommender (a user's own list)"},
        "reason": {"type": "string", "description": "why, for the user (a user's own list)"},
    },
    "required": ["item_id", "score"],
}
_RECOMMENDATIONS = {
    "type": "object",
    "properties": {
        "user_id": {"type": ["string", "null"]},
        "version": {"type": ["integer", "null"], "description": "the list's version"},
        "fallback": {
            "type": ["string", "null"],
            "description": "null for the user's own list, else the published list served: "
            "popular, trending, segment:<id>, category:<name>",
        },
        "category": {"type": ["string", "null"], "description": "the category applied"},
        "items": {"type": "array", "items": _ITEM},
    },
    "required": ["user_id", "version", "fallback", "category", "items"],
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _ok(description: str, schema: dict[str, Any], media: str = _JSON) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _get(summary: str, parameters: list[dict[str, Any]], responses: dict[str, Any]) -> Any:
    return {"get": {"summary": summary, "parameters": parameters, "responses": responses}}


def _recs_parameters(max_items: int) -> list[dict[str, Any]]:
    return [
        _query(
            "n", "at most this many items", {"type": "integer", "minimum": 1, "maximum": max_items}
        ),
        _query("category", "prefer this category's published list", {"type": "string"}),
    ]


def document(max_items: int) -> dict[str, Any]:
    """The whole document; `max_items` is `serve.max_items` (the largest ``n``)."""
    user = _path("user_id", "the shop's own user id (hashed here when pseudonymous)")
    recs = {"200": _ok("the list", _RECOMMENDATIONS), "400": _ERROR, "503": _UNAVAILABLE}
    recs_none = {**recs, "404": {**_ERROR, "description": "no list and no fallback published"}}
    obj = {"type": "object"}
    paths = {
        "/v1/users/{user_id}/recommendations": _get(
            "A user's recommendations, or the best published fallback list",
            [user, *_recs_parameters(max_items)],
            recs_none,
        ),
        "/v1/recommendations": _get(
            "Recommendations for an anonymous visitor: the best published fallback list",
            _recs_parameters(max_items),
            recs_none,
        ),
        "/v1/users/{user_id}": _get(
            "A user's profile: the stored hash, each field decoded",
            [user],
            {"200": _ok("the profile", obj), "404": _ERROR, "503": _UNAVAILABLE},
        ),
        "/v1/segments": _get(
            "Every segment, as `tailor segments --json` lists it",
            [],
            {"200": _ok("the segments", {"type": "array", "items": obj}), "503": _UNAVAILABLE},
        ),
        "/v1/segments/{segment_id}/members": _get(
            "One page of a segment's member ids (stored ids: pseudonyms when pseudonymous)",
            [
                _path("segment_id", "cluster:<n>, rfm:<tier> or rule:<name>"),
                _query(
                    "cursor",
                    "from the previous page; 0 or absent: the first",
                    {"type": "integer", "minimum": 0},
                ),
            ],
            {
                "200": _ok("members and the next cursor (null after the last page)", obj),
                "400": _ERROR,
                "404": _ERROR,
                "503": _UNAVAILABLE,
            },
        ),
        "/healthz": _get("The process is up", [], {"200": _ok("always", obj)}),
        "/readyz": _get(
            "Redis answers and every worker's heartbeat is young enough",
            [],
            {"200": _ok("ready", obj), "503": _ok("not ready, and why", obj)},
        ),
        "/metrics": _get(
            "Prometheus metrics of this process",
            [],
            {"200": _ok("text format", {"type": "string"}, "text/plain")},
        ),
        "/openapi.json": _get("This document", [], {"200": _ok("OpenAPI 3.1", obj)}),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tailor",
            "version": "1",
            "description": "Read-only HTTP API over Tailor's Redis contract.",
        },
        "paths": paths,
    }
