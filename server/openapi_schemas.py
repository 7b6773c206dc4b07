"""The parts of the OpenAPI description (server/openapi.py): the component schemas, built from
the catalog and settings, and the small builders of parameters and responses that every path
uses.

>>> from base.catalog import load_catalog
>>> from base.config import Settings
>>> sorted(schemas(load_catalog(), Settings.from_env())["Tick"]["required"])
['commodity', 'market', 'price', 'province']
"""
from __future__ import annotations

from typing import Any

from base.catalog import Catalog
from base.config import Settings
from server.api import MAX_LIMIT  # what the API accepts is what the description promises
from server.ticks import TS_MAX, TS_MIN

JSON = "application/json"
NDJSON = "application/x-ndjson"
# JSON Schema patterns are ECMA-262: '$' is the end of the text, never a trailing newline.
MARKET_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"
SOURCE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
STREAM_ID_PATTERN = "^[0-9]+(-[0-9]+)?$"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def refusal(description: str) -> dict:
    return json_body(ref("Errors"), description)


def list_param(name: str, what: str) -> dict:
    return {"name": name, "in": "query", "required": False, "style": "form", "explode": True,
            "description": f"{what}; repeat or separate with commas; absent = all",
            "schema": {"type": "array", "items": {"type": "string"}}}


def limit_param(default: int) -> dict:
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default}}


def path_param(name: str, pattern: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


def schemas(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    nullable_number = {"type": ["number", "null"]}
    tick = {
        "type": "object",
        "description": "One price report. Unknown fields are refused (reason unknown_field).",
        "required": ["commodity", "market", "province", "price"],
        "additionalProperties": False,
        "properties": {
            "commodity": {"type": "string", "enum": sorted(catalog.commodities)},
            "market": {"type": "string", "pattern": MARKET_PATTERN},
            "province": {"type": "string", "enum": sorted(catalog.provinces),
                         "description": "BPS province code; must be the market's if the catalog knows it"},
            "price": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e12,
                      "description": "IDR per unit of the commodity"},
            "ts": {"oneOf": [{"type": "number", "minimum": TS_MIN, "exclusiveMaximum": TS_MAX},
                             {"type": "string", "format": "date-time"}],
                   "description": "epoch seconds or RFC 3339 with offset, from 2000-01-01T00:00:00Z up to "
                                  "2070-01-01T00:00:00Z; default: when received; "
                                  f"at most {settings.max_future_skew:.0f}s in the future"},
            "unit": {"type": "string", "description": "must equal the commodity's unit when given"},
            "source": {"type": ["string", "null"], "pattern": SOURCE_PATTERN},
            "seq": {"type": ["integer", "null"], "minimum": 0,
                    "description": "per-source sequence number: a repeated (source, seq) is a duplicate"},
        },
    }
    verdict = {
        "type": "object",
        "required": ["scores", "fired", "quarantined"],
        "properties": {
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
            "fired": {"type": "array", "items": {"type": "string"}},
            "reasons": {"type": "object"},
            "quarantined": {"type": "boolean"},
            "expected": {"oneOf": [{"type": "null"}, {"type": "object"}]},
        },
    }
    price = {
        "type": "object",
        "required": ["type", "id", "commodity", "market", "province", "price", "ts", "unit", "verdict"],
        "properties": {
            "type": {"const": "price"},
            "id": {"type": "string", "pattern": STREAM_ID_PATTERN},
            "commodity": {"type": "string"}, "market": {"type": "string"}, "province": {"type": "string"},
            "price": {"type": "number"}, "ts": {"type": "number"}, "unit": {"type": "string"},
            "source": {"type": ["string", "null"]},
            "verdict": ref("Verdict"),
        },
    }
    alert = {
        "type": "object",
        "required": ["type", "id", "key", "rule", "state", "severity"],
        "properties": {
            "type": {"const": "alert"},
            "id": {"type": "string", "pattern": STREAM_ID_PATTERN},
            "key": {"type": "string"}, "rule": {"type": "string"},
            "state": {"enum": ["firing", "resolved"]},
            "severity": {"type": "string"},
            "commodity": {"type": "string"}, "market": {"type": "string"}, "province": {"type": "string"},
            "price": nullable_number, "ts": {"type": "number"},
            "started_at": nullable_number, "resolved_at": nullable_number,
            "summary": {"type": "string"},
            "message": {"type": "string", "description": "the text sent and shown: the rule's "
                                                         "message template for this transition, rendered"},
        },
    }
    error = {
        "type": "object",
        "required": ["index", "field", "reason", "detail"],
        "properties": {
            "index": {"type": ["integer", "null"], "description": "the tick's position in the request, if any"},
            "field": {"type": "string"},
            "reason": {"type": "string", "description": "a stable name a client can act on"},
            "detail": {"type": "string"},
        },
    }
    ingest_result: dict[str, Any] = {
        "type": "object",
        "required": ["accepted", "ids", "duplicates"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "ids": {"type": "array", "items": {"type": "string", "pattern": STREAM_ID_PATTERN}},
            "duplicates": {"type": "array", "items": {"type": "integer", "minimum": 0},
                           "description": "indexes of ticks whose (source, seq) was seen before"},
            "late": {"type": "array", "items": {"type": "integer", "minimum": 0},
                     "description": "indexes of accepted ticks older than their series' newest: stored as "
                                    "history, not scored (README: Late ticks)"},
            "errors": {"type": "array", "items": ref("Error")},
            "detail": {"type": "string"},
        },
    }
    credential = {
        "type": "object",
        "required": ["kind", "name", "role", "markets"],
        "properties": {
            "kind": {"enum": ["device", "person"]}, "name": {"type": "string"}, "role": {"type": "string"},
            "markets": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "number"}, "revoked_at": nullable_number,
        },
    }
    return {
        "Tick": tick,
        "Verdict": verdict,
        "Price": price,
        "Alert": alert,
        "Error": error,
        "Errors": {"type": "object", "required": ["errors"],
                   "properties": {"errors": {"type": "array", "minItems": 1, "items": ref("Error")}}},
        "IngestResult": ingest_result,
        "Refused": {"type": "object", "required": ["errors"], "description": "no tick was accepted",
                    "properties": {**ingest_result["properties"],
                                   "errors": {"type": "array", "minItems": 1, "items": ref("Error")}}},
        "Credential": credential,
        "Problems": {"type": "object", "required": ["errors"], "description": "errors without a tick index",
                     "properties": {"errors": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "required": ["field", "reason", "detail"]}}}},
        "Silence": {"type": "object", "required": ["id", "matchers", "starts_at", "ends_at", "state"],
                    "properties": {"id": {"type": "string"}, "matchers": {"type": "array"},
                                   "starts_at": {"type": "number"}, "ends_at": {"type": "number"},
                                   "author": {"type": "string"}, "comment": {"type": "string"},
                                   "state": {"enum": ["active", "pending", "expired"]}}},
        "Audit": {"type": "object", "required": ["intact", "checked"],
                  "properties": {"intact": {"type": "boolean"}, "checked": {"type": "integer", "minimum": 0},
                                 "broken_at": {"type": ["string", "null"]}, "reason": {"type": "string"}}},
    }


def ingest_operation(settings: Settings) -> dict:
    batch = {"oneOf": [ref("Tick"), {"type": "array", "minItems": 1, "maxItems": settings.max_batch,
                                     "items": ref("Tick")}]}
    return {
        "summary": "Push price ticks (a device, or an admin)",
        "description": "One tick, an array of ticks, or NDJSON (one tick per line). Each tick is "
                       "validated on its own: good ones are accepted even when others are refused. "
                       "A tick counts as accepted once it has a stream id (it is on disk).",
        "parameters": [{"name": "all_or_nothing", "in": "query", "required": False,
                        "description": "refuse the whole request if any tick is refused",
                        "schema": {"type": "string", "enum": ["1", "true", "yes", "0", "false", "no"]}}],
        "requestBody": {"required": True, "content": {
            JSON: {"schema": batch},
            NDJSON: {"schema": {"type": "string", "description": "one tick object per line"}},
        }},
        "security": [{"bearer": []}, {"queryToken": []}],  # writes always need a token
        "responses": {
            "202": json_body(ref("IngestResult"), "every tick accepted (or a known duplicate)"),
            "401": refusal("no token, or an unknown or revoked one"),
            "403": json_body(ref("Refused"), "the token may not push, or not for these markets"),
            "413": refusal(f"body above {settings.max_body_bytes} bytes or more than "
                           f"{settings.max_batch} ticks"),
            "422": json_body(ref("Refused"), "the body or some ticks were refused; accepted ones are listed"),
            "429": {**refusal("over the device's rate; retry after Retry-After seconds"),
                    "headers": {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}},
            "503": refusal("the store is unavailable: nothing was accepted, retry"),
        },
    }
