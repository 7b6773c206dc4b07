"""The audit chain over accepted ticks: no tick edited, removed, reordered or forged unseen.

Each partition's tick stream (``pw:{pN}:ticks``) is its own chain: every entry carries
``h = HMAC-SHA256(key, previous h + "\\n" + tick payload)`` and ``pw:{pN}:audit:head`` holds the
newest ``h``. The key lives in a file outside Redis
(``<audit dir>/audit.key``, 0600, made by the web process on first start), so someone who can
only reach Redis cannot compute a link: an edited, forged or reordered tick breaks the chain.

What a key cannot show is the *newest* entries being removed and the head set back: the
shorter chain is still a valid chain. So the web process also pins, outside Redis
(``audit.head``, one fixed-size record per partition), the id and link of the newest entry it
appended to each; verification requires that
entry to still be there. If Redis' head ever moved away from the pinned entry behind the web
process' back (entries removed, head reset), the web process writes what it saw to
``audit.breaks`` before appending again, so a later append cannot hide it.

Entries written before the chain was keyed carry a 40-character SHA-1 link; they are accepted
only before the first keyed entry (whose link covers the last of them).

>>> key = bytes(32)
>>> link = keyed_link(key, "", b'{"price": 1}')
>>> keyed_link(key, link, b'{"price": 2}') != keyed_link(key, link, b'{"price": 3}')
True
>>> keyed_link(bytes(32), "", b"x") != keyed_link(b"\\x01" * 32, "", b"x")
True
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from base import keys
from base.redis_url import data_client
from stores import partitioned
from server.access import requires

log = logging.getLogger("pasarwatch.audit")

PAGE = 2000
KEYED, LEGACY = 64, 40  # lengths of an HMAC-SHA256 and of an old SHA-1 link, in hex
PIN_RECORD = 128  # bytes: "<id> <link>" padded, rewritten in place so a reader never sees half of two
MAX_BREAKS_BYTES = 1 << 20  # the first breaks are the evidence; later ones need not fill the disk


def keyed_link(key: bytes, previous: str, payload: bytes) -> str:
    return hmac.new(key, previous.encode() + b"\n" + payload, hashlib.sha256).hexdigest()


def chain_hash(previous: str, payload: bytes) -> str:
    """The link of an entry written before the chain was keyed."""
    return hashlib.sha1(previous.encode() + b"\n" + payload).hexdigest()


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class AuditError(Exception):
    """The chain's files outside Redis are missing or unreadable."""


class AuditFiles:
    """The key and the witnesses kept outside Redis, in one owner-only directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.key_path = self.directory / "audit.key"
        self.pin_path = self.directory / "audit.head"
        self.breaks_path = self.directory / "audit.breaks"

    def key(self, create: bool = False) -> bytes:
        """The chain key; with ``create``, a new random one when there is none yet."""
        try:
            text = self.key_path.read_text().strip()
        except FileNotFoundError:
            if not create:
                raise AuditError(f"no audit key at {self.key_path} (the web process makes it; "
                                 f"set PASARWATCH_AUDIT_DIR to where it is)") from None
            return self._create_key()
        # A strict format: a file Redis could be made to write (an RDB dump) is never taken as a key.
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise AuditError(f"{self.key_path} is not an audit key (64 hex characters)")
        return bytes.fromhex(text)

    def _create_key(self) -> bytes:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        draft = self.directory / f".audit.key.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, key.hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(draft, self.key_path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            return self.key(create=False)
        finally:
            draft.unlink()
        log.info("made a new audit key at %s: keep it, and a copy, away from Redis", self.key_path)
        return key

    def pins(self) -> dict[int, tuple[str, str]]:
        """Partition number -> ``(entry id, link)`` of the newest entry appended to it."""
        try:
            data = self.pin_path.read_bytes()
        except FileNotFoundError:
            return {}
        pins = {}
        for number in range(len(data) // PIN_RECORD + (1 if len(data) % PIN_RECORD else 0)):
            text = data[number * PIN_RECORD:(number + 1) * PIN_RECORD].decode(errors="replace").strip(" \n\0")
            if not text:  # a partition nothing was appended to yet
                continue
            parts = text.split(" ")
            if len(parts) != 2 or len(parts[1]) != KEYED or "-" not in parts[0]:
                raise AuditError(f"{self.pin_path} is unreadable at partition {number}: {text[:80]!r}")
            pins[number] = (parts[0], parts[1])
        return pins

    def open_pin(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(self.pin_path, os.O_WRONLY | os.O_CREAT, 0o600)

    @staticmethod
    def write_pin(fd: int, number: int, entry_id: str, link: str) -> None:
        # One small write into the page cache, in place: microseconds, so it may run on the event loop.
        os.pwrite(fd, f"{entry_id} {link}".ljust(PIN_RECORD - 1).encode() + b"\n", number * PIN_RECORD)

    def record_break(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.breaks_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if os.fstat(fd).st_size < MAX_BREAKS_BYTES:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                os.write(fd, f"{stamp} {text}\n".encode())
        finally:
            os.close(fd)

    def breaks(self) -> list[str]:
        try:
            return self.breaks_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []


class Witness:
    """What the appending process keeps outside Redis: the key, and a pin on the newest entry
    of each partition's chain."""

    def __init__(self, files: AuditFiles):
        self.files = files
        self.key = files.key(create=True)
        try:
            self.pins = files.pins()
        except AuditError as exc:
            log.error("%s; it is rewritten with the next append", exc)
            self.pins = {}
        self._fd = files.open_pin()

    def links(self, previous: str, payloads: list[bytes]) -> list[str]:
        out = []
        for payload in payloads:
            previous = keyed_link(self.key, previous, payload)
            out.append(previous)
        return out

    def settle(self, number: int, entry_id: str, link: str) -> None:
        self.pins[number] = (entry_id, link)
        self.files.write_pin(self._fd, number, entry_id, link)

    def moved(self, number: int, head: str, pinned_entry: bytes | None, anchor: bytes | None) -> None:
        """Redis' head is not the one this process left: keep evidence if the pinned entry is gone.

        Another writer, or a reply lost after Redis applied a batch, moves the head past the
        pinned entry, which stays. Removing entries, or resetting the head, does not.
        """
        pin = self.pins.get(number)
        if pin is None:
            return
        entry_id, link = pin
        if pinned_entry is not None and pinned_entry.decode() == link:
            return
        if anchor and id_key(entry_id) <= id_key(anchor.decode().split(" ", 1)[0]):
            return  # retention trimmed it away
        found = "missing" if pinned_entry is None else f"with link {pinned_entry.decode()[:80]}"
        text = f"partition {number}: pinned entry {entry_id} (link {link}) is {found}; Redis head is {head[:80]}"
        log.error("audit chain: %s", text)
        self.files.record_break(text)


# -- verification (sync redis client) -----------------------------------------------------------

def verify_chain(redis, key: bytes, pin: tuple[str, str] | None = None, breaks: Sequence[str] = (),
                 retention_ms: int | None = None, partition: keys.Partition | None = None) -> dict:
    """Walk one partition's tick stream (the first by default); report intact, or the first
    broken entry."""
    partition = partition or keys.Partition(0)
    # Anchor, head and newest entry in one transaction: ticks appended while the walk runs are
    # left for the next run instead of reading as a head that does not match.
    pipe = redis.pipeline(transaction=True)
    pipe.get(partition.audit_anchor)
    pipe.get(partition.audit_head)
    pipe.xrevrange(partition.ticks, count=1)
    anchor, head, last = pipe.execute()
    # The anchor is "<id> <h>" of the newest tick retention trimmed away; the chain goes on after it.
    anchor_id, previous = anchor.decode().split(" ", 1) if anchor else ("", "")
    head = (head or b"").decode()
    end = last[0][0].decode() if last else None
    checked = legacy = 0
    first_id = newest = None
    keyed = pin_seen = False
    cursor = "(" + anchor_id if anchor_id else "-"
    while end is not None:
        entries = redis.xrange(partition.ticks, min=cursor, max=end, count=PAGE)
        for entry_id, fields in entries:
            entry = entry_id.decode()
            first_id = first_id or entry
            payload, stored = fields.get(b"t"), (fields.get(b"h") or b"").decode()
            if payload is None or not stored:
                return _broken(checked, entry, "entry has no tick or no chain link", first_id)
            if len(stored) == KEYED:
                expected, keyed = keyed_link(key, previous, payload), True
            elif len(stored) == LEGACY and not keyed:
                expected, legacy = chain_hash(previous, payload), legacy + 1
            else:
                return _broken(checked, entry, "an unkeyed link after keyed ones: a forged entry", first_id)
            if not hmac.compare_digest(stored, expected):
                return _broken(checked, entry, "chain link does not match: this entry or one before it was "
                                               "edited, removed, reordered or forged", first_id)
            if pin and entry == pin[0]:
                if stored != pin[1]:
                    return _broken(checked, entry, "differs from the entry pinned outside Redis", first_id)
                pin_seen = True
            previous, newest = expected, entry
            checked += 1
        if len(entries) < PAGE:
            break
        cursor = "(" + entries[-1][0].decode()
    if previous != head:
        return _broken(checked, None, "the newest entries were removed (head does not match)", first_id)
    if pin and not pin_seen and not (anchor_id and id_key(pin[0]) <= id_key(anchor_id)):
        return _broken(checked, None, f"entry {pin[0]}, pinned outside Redis when it was appended, is gone: "
                                      "the newest entries were removed and the head reset", first_id)
    if anchor_id and newest and retention_ms is not None and \
            id_key(anchor_id)[0] >= id_key(newest)[0] - retention_ms:
        return _broken(checked, None, f"the anchor {anchor_id} is newer than retention trims: "
                                      "the oldest entries were removed", first_id)
    if breaks:
        return _broken(checked, None, f"the web process saw the chain's newest entries removed: {breaks[0]}"
                                      f" ({len(breaks)} in audit.breaks)", first_id)
    return {"intact": True, "checked": checked, "from": first_id, "anchored": bool(anchor), "head": head,
            "newest": newest, "unkeyed": legacy, "pinned": pin[0] if pin else None}


def _broken(checked: int, entry: str | None, reason: str, first_id: str | None) -> dict:
    return {"intact": False, "checked": checked, "broken_at": entry, "reason": reason, "from": first_id}


def verify_with_files(redis, settings) -> dict:
    """Verify every partition's chain against the key and witnesses in the audit directory:
    intact when all are (``checked`` sums them), else the first broken one, named."""
    partitions = partitioned.stored(redis)
    files = AuditFiles(settings.audit_dir)
    try:
        key, pins = files.key(), files.pins()
    except AuditError as exc:
        if not any(redis.exists(p.ticks, p.audit_head, p.audit_anchor) for p in partitions):
            # Nothing accepted yet, so nothing to check (the key is made with the first web start).
            return {"intact": True, "checked": 0, "from": None, "head": None, "newest": None,
                    "unkeyed": 0, "pinned": None, "anchored": False, "partitions": []}
        return _broken(0, None, str(exc), None)
    retention_ms = int(settings.ticks_retention_days * 86_400_000)
    results = []
    for partition in partitions:
        anchor = redis.get(partition.audit_anchor)
        result = verify_chain(redis, key, pins.get(partition.number), files.breaks(), retention_ms, partition)
        if not result["intact"] and redis.get(partition.audit_anchor) != anchor:
            # Retention trimmed ahead of the walk while it ran: walk again from the new anchor.
            result = verify_chain(redis, key, pins.get(partition.number), files.breaks(), retention_ms, partition)
        result["partition"] = partition.number
        if not result["intact"]:
            return result
        results.append(result)
    walked = [r for r in results if r["checked"]]
    return {"intact": True, "checked": sum(r["checked"] for r in results),
            "from": min((r["from"] for r in walked), key=id_key, default=None),
            "newest": max((r["newest"] for r in walked), key=id_key, default=None),
            "head": walked[-1]["head"] if walked else None,
            "unkeyed": sum(r["unkeyed"] for r in results), "anchored": any(r["anchored"] for r in results),
            "pinned": next((r["pinned"] for r in results if r["pinned"]), None), "partitions": results}


# -- edges: the HTTP endpoint and the command ---------------------------------------------------

@requires("operate")
async def verify_endpoint(request):
    from starlette.concurrency import run_in_threadpool

    from server.responses import ORJSONResponse

    settings = request.app.state.settings
    client = data_client(settings.redis_url, settings.redis_cluster)
    try:
        result = await run_in_threadpool(verify_with_files, client, settings)
    finally:
        client.close()
    return ORJSONResponse(result, status_code=200 if result["intact"] else 409)


def _verify_command(settings, args) -> int:

    result = verify_with_files(data_client(settings.redis_url, settings.redis_cluster), settings)
    if result["intact"] and not result["checked"]:
        print("audit chain intact: no ticks accepted yet")
        return 0
    if result["intact"]:
        print(f"audit chain intact: {result['checked']} ticks from {result['from']}")
        # Printed so an operator can keep it elsewhere and compare next time.
        for part in result["partitions"]:
            if part["checked"]:
                print(f"partition {part['partition']}: newest entry {part['newest']}, head {part['head']}")
        return 0
    where = f" in partition {result['partition']}" if "partition" in result else ""
    print(f"audit chain BROKEN{where} at {result['broken_at']} after {result['checked']} good ticks: "
          f"{result['reason']}")
    return 1


def add_commands(commands) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident chain of accepted ticks")
    actions = audit.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="check the chain; exit 1 where it breaks").set_defaults(run=_verify_command)
