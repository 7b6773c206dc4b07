"""Backfill from files: ``pasarwatch import FILE...`` and ``POST /api/v1/imports``.

Both run server/import_runner.py's ``Importer``: the files' prices, validated like HTTP ticks,
appended in time order through the process' one ``TickAppender`` (the keyed audit chain), so
the engine scores them as if they had arrived live, in order.

From the shell, against a running system (Redis found as every command finds it)::

    pasarwatch import pihps-jabar/*.csv prices.xlsx [--json] [--commodity C | --market M --province P]

shows a progress bar on stderr and ends with the report; exit 0 when every price was accepted
(or was already there), 1 when some were refused, 2 when it could not run (no Redis, no audit
key, an unreadable file, a layout it does not know; then nothing was appended). Over HTTP, an
operator uploads the files (multipart, part ``file``, at most PASARWATCH_MAX_IMPORT_BYTES, fields
``commodity``/``market``/``province`` as the options) and gets 202 with an id; the import runs in
the web process' background, and ``GET /api/v1/imports/{id}`` shows its progress and, once done,
its report (kept IMPORT_TTL in Redis).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from base.catalog import load_catalog
from server import params
from base import keys
from server.access import requires
from server.audit import AuditError, AuditFiles, Witness
from base.config import Settings
from server.import_files import FileError, Source
from server.import_formats import LayoutError, Options
from server.import_runner import Importer, ImportStalled, Report
from server.ingest import TickAppender
from stores.partitions import partition_count_async
from server.responses import ORJSONResponse, error

log = logging.getLogger("pasarwatch.imports")

IMPORT_TTL = 7 * 86400  # seconds an import's progress and report stay readable
MAX_FILES = 20
MAX_RUNNING = 2  # imports at once per web process; more are refused (429), not queued without bound
PUBLISH_EVERY = 0.5  # seconds between progress updates in Redis
STALE = 30.0  # an unfinished import not updated for this long was cut short (its process stopped)
JOB_ID = re.compile(r"[0-9a-f]{16}")
SUFFIXES = (".csv", ".xlsx", ".ndjson", ".jsonl")  # the files a directory argument stands for
_RUNNING: set[asyncio.Task] = set()  # strong references: a task nobody holds may be collected


# -- the command --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pasarwatch import", description="Load price history from files "
                                     "(tick CSV, PIHPS exports, the monthly provincial table; CSV, XLSX, NDJSON) "
                                     "into a running system.")
    parser.add_argument("files", nargs="+", type=Path, help="files (a directory: its .csv, .xlsx, .ndjson files)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--commodity", help="a PIHPS table whose rows are regions: the commodity it prices")
    parser.add_argument("--market", help="a PIHPS table whose rows are commodities: the market they are for")
    parser.add_argument("--province", help="the province of --market, or of market rows (code or name)")
    return parser


def add_commands(commands) -> None:
    """``pasarwatch import`` in server/cli.py's parser; Redis is the one the command found."""
    parser = build_parser()
    commands.add_parser("import", parents=[parser], add_help=False, description=parser.description,
                        help="load price history from files into the running system").set_defaults(
        run=lambda settings, args: run(args, settings))


def main(argv: list[str] | None, redis_url: str) -> int:
    """The command on its own (``python -m server.imports``), against ``redis_url``."""
    return run(build_parser().parse_args(argv), dataclasses.replace(Settings.from_env(), redis_url=redis_url))


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The command with the settings the caller resolved (Redis, the audit directory)."""
    redis_url = settings.redis_url
    try:
        sources = [Source(path) for path in _expand(args.files)]
    except FileError as exc:
        return _cannot(exc)
    if not redis_url:
        return _cannot("no Redis to import into: set REDIS_URL, or start the system with `pasarwatch up`")
    options = Options(args.commodity, args.market, args.province)
    return asyncio.run(_command(settings, redis_url, sources, options, args.json))


async def _command(settings: Settings, redis_url: str, sources: list[Source], options: Options, as_json: bool) -> int:
    redis = Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=3)
    try:
        await redis.ping()
        files = AuditFiles(settings.audit_dir)
        files.key()  # never made here: a key of our own would break the web process' chain
        partitions = keys.partitions(await partition_count_async(redis, settings.partitions))
        appender = TickAppender(redis, Witness(files), partitions)
        importer = Importer(redis, appender, load_catalog(settings.catalog_dir), options,
                            settings.max_future_skew, settings.max_tick_age_days * 86400, partitions)
        shown = asyncio.create_task(_show(importer))
        try:
            report = await importer.run(sources)
        finally:
            shown.cancel()
        if importer.progress is not None:
            print(_bar(importer.progress.line(), sys.stderr.isatty()), file=sys.stderr)
    except (LayoutError, FileError, AuditError) as exc:
        return _cannot(exc)
    except ImportStalled as exc:
        _print_report(importer.report, as_json)
        return _cannot(exc)
    except RedisError as exc:
        return _cannot(f"Redis at {redis_url.rsplit('@', 1)[-1]} failed: {type(exc).__name__}: {exc}")
    finally:
        await redis.aclose()
    _print_report(report, as_json)
    return 0 if report.refused == 0 else 1


async def _show(importer: Importer) -> None:
    """The progress bar on stderr: redrawn in place on a terminal, a line every few seconds else."""
    tty = sys.stderr.isatty()
    while True:
        await asyncio.sleep(0.2 if tty else 5.0)
        if importer.progress is not None:
            print(_bar(importer.progress.line(), tty), end="" if tty else "\n", file=sys.stderr, flush=True)


def _bar(line: str, tty: bool) -> str:
    # On a terminal: back to the line's start, the bar, and clear what a longer one left.
    return f"\r{line}\033[K" if tty else line


def _print_report(report: Report, as_json: bool) -> None:
    data = report.as_json()
    if as_json:
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"imported {len(data['files'])} file(s) in {data['seconds']:.1f}s"
          + (f" ({data['ticks_per_second']:,.0f} ticks/s)" if data["ticks_per_second"] else ""))
    for file in data["files"]:
        print(f"  {file['file']}: {file['layout']} layout, {file['rows']:,} rows")
    print(f"rows read   {data['rows']:>10,}\n"
          f"prices      {data['values']:>10,}  ({data['empty']:,} empty cells skipped)")
    print(f"accepted    {data['accepted']:>10,}\nduplicates  {data['duplicates']:>10,}  (already there, skipped)"
          + (f"  first: {', '.join(data['duplicates_first'])}" if data["duplicates_first"] else ""))
    print(f"refused     {data['refused']:>10,}")
    for reason, entry in sorted(data["refused_by_reason"].items(), key=lambda item: -item[1]["count"]):
        print(f"  {reason}: {entry['count']:,}")
        for sample in entry["first"]:
            column = f" [{sample['column']}]" if sample["column"] else ""
            print(f"    {sample['where']}{column} {sample['field']}: {sample['detail']}")
    span = f"  ({data['from'][:10]} to {data['to'][:10]})" if data["from"] else ""
    print(f"series      {data['series']:>10,}{span}")


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its import files (recursively, by name)."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            files.append(path)
    return files


def _cannot(problem: object) -> int:
    print(f"pasarwatch import: {problem}", file=sys.stderr)
    return 2


# -- over HTTP ----------------------------------------------------------------------------------

class UploadTooLarge(Exception):
    pass


@requires("operate")
async def post_import(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    limit = settings.max_import_bytes
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return error(415, "body", "unsupported_media_type", "send multipart/form-data with the file(s) in part 'file'")
    declared = params.whole_number(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        return error(413, "body", "upload_too_large", f"upload above {limit} bytes (PASARWATCH_MAX_IMPORT_BYTES)")
    if len([task for task in _RUNNING if not task.done()]) >= MAX_RUNNING:
        return error(429, "body", "imports_busy",
                     f"{MAX_RUNNING} imports are running in this process; retry when one is done")
    try:
        form = await MultiPartParser(request.headers, _capped(request, limit), max_files=MAX_FILES,
                                     max_fields=10, max_part_size=1024).parse()
    except UploadTooLarge:
        return error(413, "body", "upload_too_large", f"upload above {limit} bytes (PASARWATCH_MAX_IMPORT_BYTES)")
    except MultiPartException as exc:
        return error(422, "body", "bad_multipart", exc.message)
    uploads = [part for part in form.getlist("file") if isinstance(part, UploadFile)]
    try:
        if not uploads:
            return error(422, "file", "required", "send the file(s) to import in multipart part 'file'")
        fields = {}
        for name in ("commodity", "market", "province"):
            value = form.get(name)
            fields[name] = value.strip()[:64] or None if isinstance(value, str) else None
        directory = Path(tempfile.mkdtemp(prefix="pasarwatch-upload-"))
        try:
            sources = await asyncio.to_thread(_save, uploads, directory)
        except FileError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            return error(422, "file", "unreadable", str(exc))
    finally:
        await form.close()
    job = {"id": secrets.token_hex(8), "state": "queued", "by": request.state.credential.name,
           "files": [source.name for source in sources], "options": fields, "created": time.time(),
           "updated": time.time(), "progress": None, "report": None, "error": None}
    try:
        await request.app.state.redis.set(keys.IMPORT_PREFIX + job["id"], orjson.dumps(job), ex=IMPORT_TTL)
    except RedisError:
        await asyncio.to_thread(shutil.rmtree, directory, True)
        raise  # 503: nothing was started
    task = asyncio.create_task(_run(request.app.state, job, sources, Options(**fields), directory))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return ORJSONResponse({"id": job["id"], "state": "queued", "url": f"/api/v1/imports/{job['id']}"},
                          status_code=202)


@requires("operate")
async def get_import(request: Request) -> Response:
    job_id = request.path_params["id"]
    raw = await request.app.state.redis.get(keys.IMPORT_PREFIX + job_id) if JOB_ID.fullmatch(job_id) else None
    if raw is None:
        return error(404, "id", "not_found", f"no import {job_id[:40]!r} (reports are kept {IMPORT_TTL // 86400} days)")
    job = orjson.loads(raw)
    if job["state"] not in ("done", "failed") and time.time() - job["updated"] > STALE:
        job["state"] = "interrupted"
        job["error"] = ("the process running this import stopped; upload the files again: "
                        "the prices already imported are skipped")
    return ORJSONResponse(job)


async def _capped(request: Request, limit: int):
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge()
        yield chunk


def _save(uploads: list[UploadFile], directory: Path) -> list[Source]:
    """Copy the uploads out of the request (their files close with it) and open them as sources."""
    sources = []
    for number, upload in enumerate(uploads):
        name = _display_name(upload.filename)
        path = directory / f"{number}-{re.sub(r'[^A-Za-z0-9._-]', '_', name)}"
        upload.file.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        sources.append(Source(path, name))
    return sources


def _display_name(filename: str | None) -> str:
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable())[:100]
    return name or "upload"


async def _run(state, job: dict, sources: list[Source], options: Options, directory: Path) -> None:
    settings: Settings = state.settings
    importer = Importer(state.redis, state.ingestor.appender, state.catalog, options,
                        settings.max_future_skew, settings.max_tick_age_days * 86400, state.partitions)

    async def publish() -> None:
        while True:
            await asyncio.sleep(PUBLISH_EVERY)
            if importer.progress is not None:
                job.update(state=importer.progress.phase, progress=importer.progress.snapshot())
            await _store(state.redis, job)

    publisher = asyncio.create_task(publish())
    try:
        report = await importer.run(sources)
        job.update(state="done", report=report.as_json())
    except (LayoutError, FileError, ImportStalled) as exc:
        job.update(state="failed", error=str(exc), report=importer.report.as_json())
    except Exception as exc:  # noqa: BLE001 - a background task has no caller: its failure is its report
        log.exception("import %s failed", job["id"])
        job.update(state="failed", error=f"{type(exc).__name__}: {exc}"[:500], report=importer.report.as_json())
    finally:
        publisher.cancel()
        await asyncio.to_thread(shutil.rmtree, directory, True)
    if importer.progress is not None:
        job["progress"] = importer.progress.snapshot()
    await _store(state.redis, job)


async def _store(redis: Redis, job: dict) -> None:
    job["updated"] = time.time()
    try:
        await redis.set(keys.IMPORT_PREFIX + job["id"], orjson.dumps(job), ex=IMPORT_TTL)
    except RedisError as exc:
        log.warning("import %s: progress not stored (%s)", job["id"], exc)


routes = [
    Route("/api/v1/imports", post_import, methods=["POST"]),
    Route("/api/v1/imports/{id}", get_import),
]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], Settings.from_env().redis_url))
