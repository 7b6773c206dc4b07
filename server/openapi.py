"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

It is built from the catalog and settings the server runs with, so what it promises is what
the server accepts: commodity ids and province codes are enums of the catalog, the batch limit
is PASARWATCH_MAX_BATCH, and read operations need a token only when PASARWATCH_PUBLIC_READ is
off. tests/test_openapi.py checks that every HTTP route is described and runs schemathesis
against a live web process with it. The WebSockets (``/ws/prices``, ``/ws/ingest``) are not
OpenAPI operations; docs/architecture.md describes their protocol.

>>> from base.catalog import load_catalog
>>> from base.config import Settings
>>> schema = describe(load_catalog(), Settings.from_env())
>>> schema["openapi"], sorted(schema["paths"]["/api/v1/ticks"])
('3.1.0', ['post'])
"""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from base.catalog import Catalog
from base.config import Settings
from server.forecast_api import MAX_HORIZON
from server.openapi_schemas import (JSON, MARKET_PATTERN, SOURCE_PATTERN, STREAM_ID_PATTERN,
                                    ingest_operation, json_body, limit_param, list_param, path_param, ref, refusal,
                                    schemas)

def describe(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    """The OpenAPI document for a server running with this catalog and these settings."""
    token: list[dict[str, list[str]]] = [{"bearer": []}, {"queryToken": []}]
    read_security = [{}, *token] if settings.public_read else token

    def guarded(summary: str, responses: dict, security: list, role: str, **operation: Any) -> dict:
        return {"summary": summary, "security": security, **operation, "responses": {
            **responses, "401": refusal("no token (where one is needed), or an unknown or revoked one"),
            "403": refusal(f"only {role} may do this"), "503": refusal("the store is unavailable, retry")}}

    def read(summary: str, ok: dict, parameters: list | None = None, **extra: dict) -> dict:
        return guarded(summary, {"200": ok, **extra}, read_security, "a reader", parameters=parameters or [])

    def admin(summary: str, responses: dict, **operation: Any) -> dict:
        return guarded(summary, responses, token, "an admin", **operation)

    def operate(summary: str, responses: dict, write: bool = True, **operation: Any) -> dict:
        problems = {"422": json_body(ref("Problems"), "the request was refused: errors say why")}
        return guarded(summary, {**responses, **problems}, token if write else read_security,
                       "an operator or admin", **operation)

    silence_reply = {"type": "object", "required": ["silence"], "properties": {"silence": ref("Silence")}}
    bad_query = {"422": refusal("a query parameter is out of range or malformed")}
    no_route = {"404": {"description": "no such route (a path parameter holding '/')",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}
    health = {"type": "object", "required": ["ready", "checks"], "properties": {
        "ready": {"type": "boolean"},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "partitions": {"type": "array", "items": {
            "type": "object", "required": ["partition", "owner", "lag", "waiting", "stalled"], "properties": {
                "partition": {"type": "integer"}, "owner": {"type": ["string", "null"]},
                "lag": {"type": "integer"}, "waiting": {"type": "boolean"}, "stalled": {"type": "boolean"}}}}}}
    paths = {
        "/": {"get": {"summary": "The dashboard", "responses": {
            "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This description", "responses": {
            "200": json_body({"type": "object"}, "the OpenAPI 3.1 document")}}},
        "/healthz": {"get": {"summary": "Liveness: the web process answers", "responses": {
            "200": json_body({"type": "object", "required": ["status"],
                              "properties": {"status": {"const": "ok"}}}, "alive")}}},
        "/readyz": {"get": {"summary": "Readiness: Redis answers, the engine has loaded its rules and no "
                                       "partition is stuck on waiting ticks (no owner, or no progress)",
                            "responses": {"200": json_body(health, "ready"),
                                          "503": json_body(health, "not ready; checks tell what is missing")}}},
        "/metrics": {"get": {"summary": "Counters and gauges in Prometheus' text format", "responses": {
            "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "503": refusal("the store is unavailable")}}},
        "/api/v1/ticks": {"post": ingest_operation(settings)},
        "/api/v1/catalog": {"get": read("Commodities, provinces and markets", json_body(
            {"type": "object", "required": ["commodities", "provinces", "markets"],
             "properties": {name: {"type": "array", "items": {"type": "object"}}
                            for name in ("commodities", "provinces", "markets")}}, "the catalog"))},
        "/api/v1/series": {"get": read("Latest price of every series", json_body(
            {"type": "object", "required": ["series"],
             "properties": {"series": {"type": "array", "items": ref("Price")}}}, "latest prices"),
            [list_param("commodity", "commodity ids"), list_param("province", "province codes"),
             list_param("market", "market ids")])},
        "/api/v1/series/{commodity}/{market}/history": {"get": read("Recent prices of one series", json_body(
            {"type": "object", "required": ["commodity", "market", "points"],
             "properties": {"commodity": {"type": "string"}, "market": {"type": "string"},
                            "points": {"type": "array", "items": ref("Price")}}}, "oldest first"),
            [path_param("commodity", "^[^/]+$"), path_param("market", "^[^/]+$"), limit_param(500)],
            **bad_query, **no_route)},
        "/api/v1/alerts": {"get": {**read(
            "Alerts firing now (state=firing), or the alert event history, oldest first",
            json_body({"type": "object", "required": ["alerts"],
                       "properties": {"alerts": {"type": "array", "items": ref("Alert")}}},
                      "with state=firing and no history: one entry per alert key, its latest event; "
                      "otherwise alert events (firing and resolved) in the order they happened"),
            [limit_param(200),
             {"name": "state", "in": "query", "required": False, "schema": {"enum": ["firing", "resolved"]},
              "description": "firing: the alerts firing now, one per key (the engine's current set); "
                             "resolved: the resolution events of the history"},
             {"name": "history", "in": "query", "required": False,
              "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]},
              "description": "true: read the event history, where one alert that fired, escalated and "
                             "repeated is several events; with state=firing, the past firing events. "
                             "Without state the history is read anyway"},
             {"name": "since", "in": "query", "required": False,
              "description": "history only: events after this alert id (default: the newest `limit`); "
                             "refused with state=firing unless history=true",
              "schema": {"type": "string", "pattern": STREAM_ID_PATTERN}},
             list_param("commodity", "commodity ids"), list_param("province", "province codes"),
             list_param("market", "market ids"), list_param("severity", "severities")],
            **bad_query),
            "description": "`?state=firing` answers \"what is firing now?\": one entry per alert key, "
                           "as many as `pasarwatch_alerts_firing` counts. The event history (every "
                           "firing and resolved event, what `/ws/prices` resumes with `since`) is "
                           "`?history=true` (or no `state`)."}},
        "/api/v1/forecast": {"get": read("The online model's forecast of one series, with a 95% interval",
            json_body({"type": "object",
                       "required": ["commodity", "market", "horizon", "interval", "warm", "steps"],
                       "properties": {"commodity": {"type": "string"}, "market": {"type": "string"},
                                      "horizon": {"type": "integer"}, "interval": {"type": "number"},
                                      "model": {"type": "string"}, "last_ts": {"type": ["number", "null"]},
                                      "step_seconds": {"type": ["number", "null"]}, "warm": {"type": "boolean"},
                                      "steps": {"type": "array", "items": {"type": "object"}}}},
                      "forecast steps (empty until the model is warm)"),
            [{"name": name, "in": "query", "required": True, "schema": {"type": "string", "pattern": "^[^/]+$"}}
             for name in ("commodity", "market")]
            + [{"name": "horizon", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON, "default": 7}}],
            **{"404": refusal("the engine has no state for this series"),
               "422": refusal("a missing or bad commodity, market or horizon")})},
        "/api/v1/references": {"get": read(
            "Each series' price against its 3-month average, Lebaran-aligned level a year earlier "
            "and HAP/HET, with the draft crisis criterion; per series, province and nationally",
            json_body({"type": "object",
                       "required": ["commodity", "window_days", "min_days", "series", "provinces", "national"],
                       "properties": {"commodity": {"type": "string"}, "province": {"type": ["string", "null"]},
                                      "window_days": {"type": "integer"}, "min_days": {"type": "integer"},
                                      "crisis_thresholds": {"type": "array", "items": {"type": "number"}},
                                      "crisis_days": {"type": "integer"},
                                      "series": {"type": "array", "items": {"type": "object"}},
                                      "provinces": {"type": "array", "items": {"type": "object"}},
                                      "national": {"type": "object"}}},
                      "references and deviations (a reference is null while unknown)"),
            [{"name": "commodity", "in": "query", "required": True,
              "schema": {"type": "string", "enum": sorted(catalog.commodities)}},
             {"name": "province", "in": "query", "required": False,
              "schema": {"type": "string", "enum": sorted(catalog.provinces)}}],
            **{"422": refusal("a missing or unknown commodity, or an unknown province")})},
        "/api/v1/rules": {"get": read("Rules in force and the errors of the last reload", json_body(
            {"type": "object", "required": ["ok", "files", "rules", "errors"],
             "properties": {"ok": {"type": "boolean"}, "files": {"type": "array", "items": {"type": "string"}},
                            "rules": {"type": "array", "items": {"type": "object"}},
                            "errors": {"type": "array", "items": {
                                "type": "object", "required": ["file", "line", "reason"]}}}},
            "rule status"))},
        "/api/v1/sources": {"get": read("Sources whose reliability standing changed, suspect ones first", json_body(
            {"type": "object", "required": ["sources"], "properties": {"sources": {"type": "array", "items": {
                "type": "object", "required": ["source", "state"],
                "properties": {"source": {"type": "string"}, "state": {"enum": ["ok", "suspect"]}}}}}},
            "sources"))},
        "/api/v1/audit/verify": {"get": guarded("Check the hash chain over accepted ticks", {
            "200": json_body(ref("Audit"), "the chain is intact"),
            "409": json_body(ref("Audit"), "the chain breaks: broken_at and reason say where and why")},
            token, "an operator or admin")},
        "/api/v1/silences": {
            "get": operate("Silences, newest first", {"200": json_body(
                {"type": "object", "required": ["silences"],
                 "properties": {"silences": {"type": "array", "items": ref("Silence")}}}, "silences")},
                parameters=[{"name": "state", "in": "query", "required": False,
                             "schema": {"enum": ["active", "pending", "expired"]}}], write=False),
            "post": operate("Silence the alerts that match, for a while", {
                "201": json_body(silence_reply, "created"),
                "409": json_body(ref("Problems"), "1,000 silences already active or pending"),
                "413": json_body(ref("Problems"), "body above 64 KiB")},
                requestBody={"required": True, "content": {JSON: {"schema": {
                    "type": "object", "required": ["matchers", "author", "comment"],
                    "properties": {"matchers": {"type": "array", "minItems": 1, "items": {"type": "string"},
                                                "description": "e.g. commodity=\"cabai-rawit-merah\""},
                                   "starts_at": {"type": ["number", "string"]},
                                   "ends_at": {"type": ["number", "string"]},
                                   "duration": {"type": "string", "description": "e.g. 2h, 3d"},
                                   "author": {"type": "string"}, "comment": {"type": "string"}}}}}}),
        },
        "/api/v1/silences/{id}": {
            "get": operate("One silence", {"200": json_body(silence_reply, "the silence"),
                                           "404": json_body(ref("Problems"), "no such silence")},
                           parameters=[path_param("id", "^[^/]+$")], write=False),
            "delete": operate("End a silence now (kept for audit)", {
                "200": json_body(silence_reply, "ended"), "404": json_body(ref("Problems"), "no such silence")},
                parameters=[path_param("id", "^[^/]+$"),
                            {"name": "by", "in": "query", "required": False, "schema": {"type": "string"}}]),
        },
        "/api/v1/alerts/{key}/ack": {"post": operate("Acknowledge a firing alert", {
            "200": json_body({"type": "object", "required": ["key", "ack"]}, "acknowledged"),
            "404": {"description": "no firing alert has this key (text: no route, e.g. a key with a newline)",
                    "content": {JSON: {"schema": ref("Problems")}, "text/plain": {"schema": {"type": "string"}}}},
            "413": json_body(ref("Problems"), "body above 64 KiB")},
            parameters=[{**path_param("key", ".+"), "description": "rule/commodity/market"}],
            requestBody={"required": True, "content": {JSON: {"schema": {
                "type": "object", "required": ["by"],
                "properties": {"by": {"type": "string", "minLength": 1, "maxLength": 200},
                               "comment": {"type": "string", "maxLength": 1000}}}}}})},
        "/api/v1/imports": {"post": operate("Import price history from files; runs in the background", {
            "202": json_body({"type": "object", "required": ["id", "state", "url"],
                              "properties": {"id": {"type": "string"}, "state": {"const": "queued"},
                                             "url": {"type": "string"}}}, "started: GET url for progress and report"),
            "413": json_body(ref("Problems"), f"upload above {settings.max_import_bytes} bytes"),
            "415": json_body(ref("Problems"), "not multipart/form-data"),
            "429": json_body(ref("Problems"), "imports already running in this web process: retry later")},
            requestBody={"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "array", "items": {"type": "string", "contentMediaType":
                                                                        "application/octet-stream"}},
                               "commodity": {"type": "string"}, "market": {"type": "string"},
                               "province": {"type": "string"}}}}}})},
        "/api/v1/imports/{id}": {"get": operate("An import's progress and, once done, its report", {
            "200": json_body({"type": "object", "required": ["id", "state", "files", "progress", "report"]},
                             "state: queued, reading, appending, done, failed or interrupted"),
            "404": json_body(ref("Problems"), "no such import (reports are kept 7 days)")},
            parameters=[path_param("id", "^[^/]+$")])},
        "/api/v1/notifications": {"get": read("Telegram notification records, newest first", json_body(
            {"type": "object", "required": ["notifications", "counts"],
             "properties": {"notifications": {"type": "array", "items": {"type": "object"}},
                            "counts": {"type": "object", "additionalProperties": {"type": "integer"}}}},
            "records and the count per state"),
            [{"name": "state", "in": "query", "required": False,
              "schema": {"enum": ["pending", "sent", "failed", "not_sent"]}},
             {"name": "limit", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
            **{"422": json_body({"type": "object", "required": ["errors"]}, "a bad state or limit")})},
        "/api/v1/devices": {
            "get": admin("List devices", {"200": json_body(
                {"type": "object", "required": ["devices"],
                 "properties": {"devices": {"type": "array", "items": ref("Credential")}}}, "devices")}),
            "post": admin("Register a device; its token is shown once", {
                "201": json_body({"type": "object", "required": ["id", "markets", "token", "onboarding"],
                                  "properties": {"id": {"type": "string"}, "token": {"type": "string"},
                                                 "markets": {"type": "array", "items": {"type": "string"}},
                                                 "onboarding": {"type": "string",
                                                                "description": "JSON for the QR code"}}},
                                 "registered"),
                "422": refusal("a bad id or market list")},
                requestBody={"required": True, "content": {JSON: {"schema": {
                    "type": "object", "required": ["id", "markets"],
                    "properties": {"id": {"type": "string", "pattern": SOURCE_PATTERN},
                                   "sources": {"type": "array", "maxItems": 64,
                                               "items": {"type": "string", "pattern": SOURCE_PATTERN},
                                               "description": "sources its ticks may name (default: its id)"},
                                   "markets": {"type": "array", "minItems": 1, "items": {
                                       "anyOf": [{"const": "*"}, {"type": "string", "pattern": MARKET_PATTERN}]}}}}}}}),
        },
        "/api/v1/devices/{device}": {"delete": admin("Revoke a device's token", {
            "200": json_body({"type": "object", "required": ["id", "revoked"],
                              "properties": {"id": {"type": "string"}, "revoked": {"const": True}}}, "revoked"),
            "404": refusal("no such device")},
            parameters=[path_param("device", "^[^/]+$")])},
        "/api/v1/deadletters": {"get": operate("Ticks the engine could not process, newest first", {
            "200": json_body({"type": "object", "required": ["deadletters", "total"], "properties": {
                "deadletters": {"type": "array", "items": {"type": "object"}},
                "total": {"type": "integer", "description": "ticks ever dead-lettered"}}}, "dead letters")},
            parameters=[{"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}])},
        "/api/v1/deadletters/{id}/replay": {"post": operate("Append a dead-lettered tick to the stream again", {
            "202": json_body({"type": "object", "required": ["replayed", "ids"]}, "appended as a new entry"),
            "404": json_body(ref("Problems"), "no such dead letter"),
            "413": json_body(ref("Problems"), "a corrected tick above 64 KiB")},
            parameters=[path_param("id", "^[0-9]+:[0-9]+-[0-9]+$")],  # "<partition>:<stream id>", as listed
            requestBody={"required": False, "content": {JSON: {"schema": {
                "type": "object", "description": "a corrected tick (as POST /api/v1/ticks takes one); "
                                                 "without a body the tick is replayed as it was"}}}})},
        "/api/v1/deadletters/{id}": {"delete": operate("Discard a dead-lettered tick", {
            "200": json_body({"type": "object", "required": ["discarded"]}, "discarded"),
            "404": json_body(ref("Problems"), "no such dead letter")},
            parameters=[path_param("id", "^[^/]+$")])},
        "/api/v1/demo": {"get": {"summary": "The demo replay's state and period", "responses": {
            "200": json_body({"type": "object", "required": ["state"], "properties": {
                "state": {"enum": ["off", "running", "finished", "failed"]},
                "from": {"type": "string"}, "to": {"type": "string"}}}, "the demo's state")}}},
        "/telegram/webhook": {"post": {
            "summary": "Updates from Telegram",
            "security": [{"telegramSecret": []}],
            "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
            "responses": {name: json_body({"type": "object"}, description) for name, description in (
                ("200", "handled"), ("400", "not a JSON object, or a field of the wrong type"),
                ("403", "wrong or missing secret token"), ("413", "body above 1 MiB"),
                ("503", "no Redis for notifications (a Redis Cluster without RQ_REDIS_URL)"))}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pasarwatch", "version": "1",
                 "description": "Real-time early warning for food prices in Indonesian markets. Errors are "
                                "{\"errors\": [{\"index\", \"field\", \"reason\", \"detail\"}]}."},
        "servers": [{"url": settings.public_url}],
        "paths": paths,
        "components": {
            "schemas": schemas(catalog, settings),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a device or person token"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "the same token, for browsers' WebSockets"},
                "telegramSecret": {"type": "apiKey", "in": "header", "name": "X-Telegram-Bot-Api-Secret-Token"},
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    document = describe(request.app.state.catalog, request.app.state.settings)
    return Response(orjson.dumps(document), media_type=JSON)


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
