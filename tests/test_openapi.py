"""The OpenAPI description is complete and true, and no generated request makes the server fail.

schemathesis reads ``/openapi.json`` from a running web process (with an engine, so reads see
real prices and alerts) and sends generated requests, valid and invalid, to every operation.
Reads need a token in this run so that every operation's auth is checked too.
"""
from __future__ import annotations

import re

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import max_response_time, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from base.catalog import load_catalog
from server import auth, openapi
from server.app import create_app
from server.openapi_schemas import NDJSON
from base.config import Settings
from tests.system import System

CONVERTOR = re.compile(r":\w+}")  # Starlette's {key:path} is OpenAPI's {key}
EXAMPLES = 40  # per operation and generation mode; the run stays well inside the test timeout
CHECKS = [not_a_server_error, max_response_time, status_code_conformance, content_type_conformance,
          response_schema_conformance, ignored_auth]
PATHS = openapi.describe(load_catalog(), Settings.from_env())["paths"]
OPERATIONS = [(method.upper(), path) for path, item in PATHS.items() for method in item]
# Invalid requests need something to make invalid: parameters or a body.
RUNS = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    (method, path, GenerationMode.NEGATIVE) for method, path in OPERATIONS
    if PATHS[path][method.lower()].get("parameters") or "requestBody" in PATHS[path][method.lower()]]


@schemathesis.serializer(NDJSON)
def _ndjson(ctx, value) -> bytes:
    # The NDJSON body is described as text: generated text goes out as is.
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    running = System(tmp_path_factory.mktemp("openapi"), env={"PASARWATCH_PUBLIC_READ": "false"}).start()
    ticks = [{"commodity": "cabai-rawit-merah", "market": market, "province": "32", "price": price,
              "ts": 1_704_067_200.0 + day * 86400} for day in range(3)
             for market, price in (("pasar-kosambi", 45000), ("pasar-anyar", 46000))]
    assert running.post(ticks).status_code == 202
    running.wait_processed(len(ticks))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_schema(system):
    return schemathesis.openapi.from_url(f"{system.url}/openapi.json", headers=system.auth_headers)


def test_the_description_is_valid_openapi_3_1(api_schema):
    api_schema.validate()
    assert api_schema.raw_schema["openapi"] == "3.1.0"


def test_every_http_route_is_described(system):
    app = create_app(Settings.from_env())
    served = {(method, CONVERTOR.sub("}", route.path)) for route in app.routes if isinstance(route, Route)
              for method in route.methods if method != "HEAD"}
    described = set(OPERATIONS)
    assert served - described == set(), "routes missing from server/openapi.py"
    assert described - served == set(), "server/openapi.py describes routes the server does not have"
    assert httpx.get(f"{system.url}/openapi.json").json()["paths"].keys() == {path for _, path in OPERATIONS}


def test_every_write_needs_a_token_with_the_right_role(system):
    viewer = auth.issue(system.redis, "person", "openapi-viewer", "viewer")
    writes = [(method, path) for method, path in OPERATIONS if method != "GET"]
    assert len(writes) >= 6, writes  # ticks, devices, silences, acknowledgements, the webhook
    for method, path in writes:
        url = system.url + path.replace("{", "").replace("}", "")  # any value: the refusal comes first
        for headers, refused in (({}, {401, 403}), ({"authorization": f"Bearer {viewer}"}, {403})):
            response = httpx.request(method, url, headers=headers, json={}, timeout=10)
            assert response.status_code in refused, (method, path, headers, response.text)


def test_the_description_follows_the_settings(system):
    document = httpx.get(f"{system.url}/openapi.json").json()
    series = document["paths"]["/api/v1/series"]["get"]
    assert {} not in series["security"], "reads need a token in this run"
    tick = document["components"]["schemas"]["Tick"]
    assert "cabai-rawit-merah" in tick["properties"]["commodity"]["enum"]
    public = openapi.describe(load_catalog(), Settings.from_env())
    assert {} in public["paths"]["/api/v1/series"]["get"]["security"]
    assert {} not in public["paths"]["/api/v1/ticks"]["post"]["security"], "writes always need a token"


@pytest.mark.parametrize("method,path,mode", RUNS, ids=[f"{m} {p} {mode.value}" for m, p, mode in RUNS])
def test_no_generated_request_fails_the_server(system, api_schema, method, path, mode):
    operation = api_schema[path][method]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case):
        # Spelled as the security scheme names it, so the auth check can take it away again.
        case.call_and_validate(base_url=system.url, headers={"Authorization": f"Bearer {system.admin_token}"},
                               checks=CHECKS, timeout=10)

    exercise()
    assert system.processes["web"].poll() is None, "the web process died"
    assert httpx.get(f"{system.url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("path,params", [
    ("/api/v1/alerts", {"since": "²"}),                      # str.isdigit() takes it, Redis does not
    ("/api/v1/alerts", {"since": "1-18446744073709551616"}),  # past Redis's 64-bit ids
    ("/api/v1/alerts", {"since": "18446744073709551615-18446744073709551615"}),
    ("/api/v1/notifications", {"limit": "²"}),
    ("/api/v1/series/cabai-rawit-merah/pasar-anyar/history", {"limit": "²"}),
])
def test_malformed_query_parameters_are_a_422_not_a_retry(system, path, params):
    response = system.http.get(path, params=params)
    assert response.status_code == 422, response.text

