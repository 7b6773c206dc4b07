"""Who may push and who may operate: device and person tokens, roles, market scopes.

Tokens are random (256 bits), shown once, and stored only as their SHA-256. A token reads
``pw_<key id>_<secret>``: the key id finds the stored record, and the presented token's hash
is compared with the stored hash in constant time. A device token may push ticks
for its own markets only, and its ticks may name only its own sources (by default just its
name), so no device can fill another's duplicate check or pose as a second witness; a person's
token carries a role:

    viewer    read APIs and /ws/prices (when reads are not public)
    operator  + silences and acknowledgements
    admin     + devices, people and rules

>>> credential = Credential(kind="device", name="hp-17", role="device", markets=("pasar-agung",))
>>> credential.may("ingest"), credential.may("operate"), credential.may_report("pasar-agung")
(True, False, True)
>>> credential.may_report("pasar-kosambi")
False
>>> credential.may_use_source("hp-17"), credential.may_use_source("hp-18")
(True, False)
>>> Credential(kind="person", name="ani", role="operator").may("read")
True
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass

import orjson

from base import keys

ROLES = ("viewer", "operator", "admin")
# What each role may do; a device may only ingest (for its markets).
PERMISSIONS = {
    "device": {"ingest"},
    "viewer": {"read"},
    "operator": {"read", "operate"},
    "admin": {"read", "operate", "admin", "ingest"},
}
CREDENTIALS = keys.CREDENTIALS
NAMES = keys.CREDENTIAL_NAMES


@dataclass(frozen=True)
class Credential:
    kind: str                       # "device" or "person"
    name: str
    role: str                       # "device" or one of ROLES
    markets: tuple[str, ...] = ()   # devices: the markets it may report for ("*" = any)
    sources: tuple[str, ...] = ()   # devices: the sources its ticks may name (empty = its own name)
    created_at: float = 0.0
    revoked_at: float | None = None

    def may(self, action: str) -> bool:
        return self.revoked_at is None and action in PERMISSIONS.get(self.role, set())

    def may_report(self, market: str) -> bool:
        if self.role == "admin":
            return True
        return self.role == "device" and ("*" in self.markets or market in self.markets)

    def may_use_source(self, source: str) -> bool:
        if self.role == "admin":
            return True
        return self.role == "device" and source in (self.sources or (self.name,))

    def public(self) -> dict:
        return asdict(self)


def new_token() -> tuple[str, str]:
    """(key id, token)."""
    key_id = secrets.token_hex(8)
    return key_id, f"pw_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    parts = token.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "pw" else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def verify(raw: bytes | None, token: str) -> Credential | None:
    """The stored credential if ``token`` hashes to its stored hash (constant-time compare)."""
    if raw is None:
        return None
    data = orjson.loads(raw)
    stored = data.pop("hash", "")
    if not hmac.compare_digest(token_hash(token).encode(), stored.encode()):
        return None
    data["markets"] = tuple(data.get("markets") or ())
    data["sources"] = tuple(data.get("sources") or ())
    return Credential(**data)


# -- the store (sync for the CLI, async for the web process) -------------------------------------

def issue(redis, kind: str, name: str, role: str, markets: tuple[str, ...] = (),
          sources: tuple[str, ...] = ()) -> str:
    """Create (or replace) a credential and return its token; only the hash is stored."""
    if kind == "person" and role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key_id, token = new_token()
    credential = Credential(kind=kind, name=name, role=role, markets=tuple(markets),
                            sources=tuple(sources), created_at=time.time())
    previous = redis.hget(NAMES, f"{kind}:{name}")
    pipe = redis.pipeline(transaction=True)
    if previous:
        pipe.hdel(CREDENTIALS, previous)
    pipe.hset(CREDENTIALS, key_id, orjson.dumps({**credential.public(), "hash": token_hash(token)}))
    pipe.hset(NAMES, f"{kind}:{name}", key_id)
    pipe.execute()
    return token


def revoke(redis, kind: str, name: str) -> bool:
    key_id = redis.hget(NAMES, f"{kind}:{name}")
    raw = redis.hget(CREDENTIALS, key_id) if key_id else None
    if raw is None:
        return False
    data = orjson.loads(raw)
    data["revoked_at"] = time.time()
    redis.hset(CREDENTIALS, key_id, orjson.dumps(data))
    return True


def list_credentials(redis, kind: str | None = None) -> list[dict]:
    rows = []
    for raw in redis.hvals(CREDENTIALS):
        data = orjson.loads(raw)
        data.pop("hash", None)
        if kind is None or data["kind"] == kind:
            rows.append(data)
    return sorted(rows, key=lambda d: (d["kind"], d["name"]))


async def lookup(redis, token: str | None) -> Credential | None:
    """The live credential of a presented token, or None (unknown, revoked or absent)."""
    key_id = key_id_of(token) if token else None
    if not key_id or not token:
        return None
    credential = verify(await redis.hget(CREDENTIALS, key_id), token)
    if credential is None or credential.revoked_at is not None:
        return None
    return credential
