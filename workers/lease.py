"""A worker's claim on one notification, kept alive by a thread while the worker lives.

Only the holder of the lease may send a notification's messages. While the job runs, a
thread renews the lease and pushes the notification's deadline (``pw:notif:due``) forward; if
the worker dies (SIGKILL, power loss), renewals stop, the lease expires within ``seconds``, and
the recovery sweep (``workers.dispatch.recover_stalled``) hands the notification to another
worker, which resumes after the parts already recorded as sent.
"""
from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from workers.notifications import DUE, lease_key

# The deadline only moves forward: a job that rescheduled itself set a later one on purpose.
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local current = redis.call('ZSCORE', KEYS[2], ARGV[4])
if current and tonumber(current) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
return 1
"""
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class Lease:
    def __init__(self, client: Any, nid: str, seconds: float):
        self.client = client
        self.nid = nid
        self.seconds = seconds
        self.token = secrets.token_hex(8)
        self.key = lease_key(nid)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self.client.set(self.key, self.token, nx=True, px=self._ms()):
            return False
        return self.renew()

    def renew(self) -> bool:
        """Extend the lease; False if it is gone (expired, maybe taken by another worker)."""
        return bool(self._renew(keys=[self.key, DUE],
                                args=[self.token, self._ms(), time.time() + self.seconds, self.nid]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])

    def __enter__(self) -> Lease:
        self._thread = threading.Thread(target=self._keep_alive, name=f"lease-{self.nid}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.release()

    def _keep_alive(self) -> None:
        # Renew three times per lease period, so one slow round trip does not lose it.
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.renew():
                    return
            except Exception:  # noqa: BLE001 - a Redis blip: try again next period
                continue

    def _ms(self) -> int:
        return max(1, int(self.seconds * 1000))
