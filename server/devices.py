"""Managing devices and people's tokens: the admin API and the ``pasarwatch device|token`` commands."""
from __future__ import annotations

import argparse
import sys

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import auth
from server.access import requires
from base.config import Settings
from base.redis_url import data_client
from server.responses import ORJSONResponse, error
from server.ticks import MARKET_ID, SOURCE_ID

MAX_SOURCES = 64  # sources one device may name; a device is one phone or one feed, not a fleet


def onboarding_payload(public_url: str, token: str) -> str:
    """What a device's QR code holds: the server URL and its token, as JSON."""
    return orjson.dumps({"pasarwatch": 1, "url": public_url, "token": token}).decode()


def write_qr(payload: str, path: str | None) -> None:
    """A QR code as PNG or SVG (by the file's ending), or in the terminal when path is '-'."""
    import segno  # small, pure-Python, well-kept QR encoder (PNG, SVG and terminal output)

    code = segno.make(payload, error="m")
    if path in (None, "-"):
        code.terminal(compact=True)
    else:
        code.save(path, scale=6)


def valid_sources(sources: object) -> bool:
    """The sources a device's ticks may name: a short list of source ids (empty = its own id)."""
    return isinstance(sources, list) and len(sources) <= MAX_SOURCES and all(
        isinstance(s, str) and SOURCE_ID.match(s) for s in sources)


# -- admin API ------------------------------------------------------------------------------------

def _sync_redis(request: Request):
    settings = request.app.state.settings
    return data_client(settings.redis_url, settings.redis_cluster)


@requires("admin")
async def create_device(request: Request) -> Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return error(422, "body", "invalid_json", "body must be JSON: {\"id\": ..., \"markets\": [...]}")
    if not isinstance(body, dict):
        return error(422, "body", "bad_type", "body must be an object")
    device_id, markets, sources = body.get("id"), body.get("markets"), body.get("sources", [])
    if not isinstance(device_id, str) or not SOURCE_ID.match(device_id):
        return error(422, "id", "bad_id", "id must be a short id of letters, digits and ._:@-")
    if not isinstance(markets, list) or not markets or not all(
            isinstance(m, str) and (m == "*" or MARKET_ID.match(m)) for m in markets):
        return error(422, "markets", "bad_markets", "markets must be a non-empty list of market ids (or \"*\")")
    if not valid_sources(sources):
        return error(422, "sources", "bad_sources",
                     f"sources must be a list of at most {MAX_SOURCES} source ids (default: the device's id)")
    client = _sync_redis(request)
    try:
        token = auth.issue(client, "device", device_id, "device", tuple(markets), tuple(sources))
    finally:
        client.close()
    return ORJSONResponse({"id": device_id, "markets": markets, "sources": sources or [device_id], "token": token,
                           "onboarding": onboarding_payload(request.app.state.settings.public_url, token)},
                          status_code=201)


@requires("admin")
async def list_devices(request: Request) -> Response:
    client = _sync_redis(request)
    try:
        return ORJSONResponse({"devices": auth.list_credentials(client, "device")})
    finally:
        client.close()


@requires("admin")
async def revoke_device(request: Request) -> Response:
    client = _sync_redis(request)
    try:
        revoked = auth.revoke(client, "device", request.path_params["device"])
    finally:
        client.close()
    if not revoked:
        return error(404, "device", "unknown_device", "no such device")
    return ORJSONResponse({"id": request.path_params["device"], "revoked": True})


routes = [
    Route("/api/v1/devices", create_device, methods=["POST"]),
    Route("/api/v1/devices", list_devices, methods=["GET"]),
    Route("/api/v1/devices/{device}", revoke_device, methods=["DELETE"]),
]


# -- command line ---------------------------------------------------------------------------------

def _connect(settings: Settings):
    if not settings.redis_url:
        print("REDIS_URL is not set: point it at the system's Redis", file=sys.stderr)
        raise SystemExit(2)
    return data_client(settings.redis_url, settings.redis_cluster)


def _device(settings: Settings, args: argparse.Namespace) -> int:
    client = _connect(settings)
    if args.action == "add":
        sources = args.source or []
        if not valid_sources(sources):
            print(f"--source: at most {MAX_SOURCES} ids of letters, digits and ._:@-", file=sys.stderr)
            return 2
        token = auth.issue(client, "device", args.id, "device", tuple(args.market or ["*"]), tuple(sources))
        print(f"device {args.id} may report for: {', '.join(args.market or ['*'])}")
        print(f"its ticks may name the sources: {', '.join(sources or [args.id])}")
        print(f"token (shown once, store it on the device): {token}")
        if args.qr:
            write_qr(onboarding_payload(settings.public_url, token), args.qr)
            if args.qr != "-":
                print(f"QR code written to {args.qr}")
        return 0
    if args.action == "revoke":
        if not auth.revoke(client, "device", args.id):
            print(f"no device {args.id}", file=sys.stderr)
            return 1
        print(f"device {args.id} revoked")
        return 0
    for row in auth.list_credentials(client, "device"):
        state = "revoked" if row["revoked_at"] else "active"
        print(f"{row['name']}\t{state}\t{','.join(row['markets'])}\t{','.join(row.get('sources') or [row['name']])}")
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    client = _connect(settings)
    if args.action == "add":
        print(auth.issue(client, "person", args.name, args.role))
        return 0
    if args.action == "revoke":
        if not auth.revoke(client, "person", args.name):
            print(f"no person token {args.name}", file=sys.stderr)
            return 1
        print(f"token {args.name} revoked")
        return 0
    for row in auth.list_credentials(client, "person"):
        print(f"{row['name']}\t{row['role']}\t{'revoked' if row['revoked_at'] else 'active'}")
    return 0


def add_commands(commands) -> None:
    device = commands.add_parser("device", help="device tokens: add, revoke, list")
    device_actions = device.add_subparsers(dest="action", required=True)
    add = device_actions.add_parser("add", help="register a device and print its token (once)")
    add.add_argument("id")
    add.add_argument("--market", action="append", help="a market it may report for (repeat; default any)")
    add.add_argument("--source", action="append",
                     help="a source id its ticks may name (repeat; default its own id); seq numbers are "
                          "counted per device and source")
    add.add_argument("--qr", help="also write a QR code with the URL and token: FILE.png, FILE.svg or - (terminal)")
    revoke = device_actions.add_parser("revoke", help="revoke a device's token")
    revoke.add_argument("id")
    device_actions.add_parser("list", help="list devices")
    device.set_defaults(run=_device)

    token = commands.add_parser("token", help="people's tokens (viewer, operator, admin)")
    token_actions = token.add_subparsers(dest="action", required=True)
    add = token_actions.add_parser("add", help="print a new token for a person (once)")
    add.add_argument("name")
    add.add_argument("--role", choices=auth.ROLES, required=True)
    revoke = token_actions.add_parser("revoke")
    revoke.add_argument("name")
    token_actions.add_parser("list")
    token.set_defaults(run=_token)
