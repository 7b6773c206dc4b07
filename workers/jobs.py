"""The RQ side shared by the dispatcher, the group flushes and the delivery worker: the queue,
and how a notification's delivery job is queued or scheduled."""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

from rq import Queue, Retry
from rq.job import Job

from workers import notifications as store
from workers.settings import NotifySettings

QUEUE = "notifications"
JOB_FUNC = "workers.delivery.deliver"
JOB_TIMEOUT = 300
RESULT_TTL = 86400


def at_datetime(at: float) -> datetime:
    """RQ keeps whole seconds and would round down: round up, so a job never runs before ``at``."""
    return datetime.fromtimestamp(math.ceil(at), tz=timezone.utc)


def enqueue_delivery(queue: Queue, nid: str, settings: NotifySettings, at: float | None = None,
                     attempt: str = "", pipeline: Any = None) -> Job:
    """Queue (or schedule for ``at``) the job delivering notification ``nid``."""
    options: dict[str, Any] = {
        "job_id": store.job_id(nid, attempt), "job_timeout": JOB_TIMEOUT,
        "result_ttl": RESULT_TTL, "failure_ttl": store.RETENTION,
        "description": f"Telegram notification {nid}", "pipeline": pipeline,
    }
    if settings.retry_intervals:
        options["retry"] = Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))
    if at is None or at <= time.time():
        job = queue.enqueue(JOB_FUNC, nid, **options)
    else:
        job = queue.enqueue_at(at_datetime(at), JOB_FUNC, nid, **options)
    (pipeline if pipeline is not None else queue.connection).hset(store.record_key(nid), "job", job.id)
    return job
