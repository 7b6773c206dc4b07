"""The audit chain over accepted ticks: verify that no tick was edited, removed or reordered.

Every entry of ``pw:ticks`` carries ``h = sha1(previous h + "\\n" + tick payload)``, written by
the same Lua step that accepted the tick (server/ingest.py), and ``pw:audit:head`` holds the
newest ``h``. Verification recomputes the chain from its start (or from the anchor the engine
saves when retention trims old ticks) and compares every link and the head.

>>> link = chain_hash("", b'{"price": 1}')
>>> chain_hash(link, b'{"price": 2}') != chain_hash(link, b'{"price": 3}')
True
"""
from __future__ import annotations

import hashlib

from server import keys
from server.access import requires

PAGE = 2000


def chain_hash(previous: str, payload: bytes) -> str:
    return hashlib.sha1(previous.encode() + b"\n" + payload).hexdigest()


def verify_chain(redis) -> dict:
    """Walk the tick stream (sync redis client); report intact, or the first broken entry."""
    anchor = redis.get(keys.AUDIT_ANCHOR)
    # The anchor is "<id> <h>" of the newest tick retention trimmed away; the chain goes on after it.
    anchor_id, previous = anchor.decode().split(" ", 1) if anchor else ("", "")
    head = (redis.get(keys.AUDIT_HEAD) or b"").decode()
    checked = 0
    first_id = None
    cursor = "(" + anchor_id if anchor_id else "-"
    while True:
        entries = redis.xrange(keys.TICKS, min=cursor, count=PAGE)
        for entry_id, fields in entries:
            entry = entry_id.decode()
            first_id = first_id or entry
            payload, stored = fields.get(b"t"), fields.get(b"h")
            if payload is None or stored is None:
                return _broken(checked, entry, "entry has no tick or no chain hash", first_id)
            expected = chain_hash(previous, payload)
            if stored.decode() != expected:
                return _broken(checked, entry, "chain hash does not match: the entry or one before it "
                                               "was edited, removed or reordered", first_id)
            previous = expected
            checked += 1
        if len(entries) < PAGE:
            break
        cursor = "(" + entries[-1][0].decode()
    if previous != head:
        return _broken(checked, None, "the newest entries were removed (head does not match)", first_id)
    return {"intact": True, "checked": checked, "from": first_id, "anchored": bool(anchor), "head": head}


def _broken(checked: int, entry: str | None, reason: str, first_id: str | None) -> dict:
    return {"intact": False, "checked": checked, "broken_at": entry, "reason": reason, "from": first_id}


# -- edges: the HTTP endpoint and the command ---------------------------------------------------

@requires("operate")
async def verify_endpoint(request):
    import redis as redis_sync
    from starlette.concurrency import run_in_threadpool

    from server.responses import ORJSONResponse

    client = redis_sync.Redis.from_url(request.app.state.settings.redis_url)
    try:
        result = await run_in_threadpool(verify_chain, client)
    finally:
        client.close()
    return ORJSONResponse(result, status_code=200 if result["intact"] else 409)


def _verify_command(settings, args) -> int:
    import redis as redis_sync

    result = verify_chain(redis_sync.Redis.from_url(settings.redis_url))
    if result["intact"]:
        print(f"audit chain intact: {result['checked']} ticks from {result['from']}")
        return 0
    print(f"audit chain BROKEN at {result['broken_at']} after {result['checked']} good ticks: {result['reason']}")
    return 1


def add_commands(commands) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident chain of accepted ticks")
    actions = audit.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="check the chain; exit 1 where it breaks").set_defaults(run=_verify_command)
