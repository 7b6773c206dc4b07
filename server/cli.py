"""The ``pasarwatch`` command: one entry point for every process and tool."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

import redis

from pipeline import backtest, rules_cli
from server import audit, deadletters, devices, imports
from base import redis_url
from server.redact import redact_root_handlers
from base.config import Settings

# Commands that talk to Redis, and find it through base/redis_url.py. The long-running parts
# only need its address (they wait for it themselves); the tools check it answers first.
PARTS = {"engine", "web", "worker"}
TOOLS = {"device", "token", "audit", "deadletter", "import"}


def _web(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.redact import uvicorn_log_config
    from server.wsprotocol import FlowControlledWebSocketProtocol

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # uvicorn's websockets-sansio protocol, but it stops reading a client whose replies
        # back up (no unbounded pongs) and resets connections that cannot close (wsprotocol.py).
        ws=FlowControlledWebSocketProtocol,
        ws_ping_interval=settings.ws_ping,
        ws_ping_timeout=settings.ws_ping,
        ws_per_message_deflate=False,  # server-to-browser streams: compression costs more than it saves
        ws_max_size=1 << 20,
        log_config=uvicorn_log_config(),  # ?token= in a handshake line is redacted
        log_level="info",
        access_log=False,
    )
    return 0


def _engine(settings: Settings, args: argparse.Namespace) -> int:
    from base.catalog import load_catalog
    from server.engine_process import run_engine

    try:
        run_engine(settings, load_catalog(settings.catalog_dir))
    except KeyboardInterrupt:
        pass
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.run import main as worker_main

    if settings.notify_url is None:
        print("pasarwatch worker: on a Redis Cluster, Telegram notifications need a standalone Redis of their own "
              "(RQ does not run on a cluster): set RQ_REDIS_URL", file=sys.stderr)
        return 2
    return worker_main(settings.notify_url, data_url=settings.redis_url)


def _bot(settings: Settings, args: argparse.Namespace) -> int:
    from server.telegram_bot import run_polling, set_webhook
    from telegram.error import TelegramError
    from workers.settings import get_settings

    if settings.notify_url is None:
        print("pasarwatch bot: on a Redis Cluster the bot's subscriptions need a standalone Redis of their own: "
              "set RQ_REDIS_URL", file=sys.stderr)
        return 2
    notify = dataclasses.replace(get_settings(), redis_url=settings.notify_url)
    try:
        if args.action == "set-webhook":
            if not set_webhook(args.url, notify):
                print(f"pasarwatch bot: Telegram did not accept the webhook {args.url}", file=sys.stderr)
                return 1
            print(f"webhook registered with Telegram: {args.url} (updates carry TELEGRAM_WEBHOOK_SECRET; "
                  f"`pasarwatch bot --poll` removes it again)")
            return 0
        if not args.poll:
            print("pasarwatch bot: give --poll, or set-webhook URL", file=sys.stderr)
            return 2
        print(f"polling Telegram for updates (webhook removed; Redis at {redis_url.redact(settings.redis_url)}); "
              f"Ctrl-C stops", flush=True)
        try:
            run_polling(notify, data_url=settings.redis_url, data_cluster=settings.redis_cluster)
        except KeyboardInterrupt:
            pass
        print("stopped polling")
        return 0
    except RuntimeError as exc:  # a setting is missing: the message names it
        print(f"pasarwatch bot: {exc}", file=sys.stderr)
        return 2
    except TelegramError as exc:
        print(f"pasarwatch bot: Telegram refused: {exc} (base URL {notify.base_url})", file=sys.stderr)
        return 1


def _engine_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError("between 1 and 64 engines")
    return count


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from server.launcher import run_up

    return run_up(settings, demo=args.demo, data_dir_given=args.data_dir is not None, engines=args.engines)


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from server.demo import run_demo

    url = args.url or f"http://{settings.host}:{settings.port}"
    token = args.token or os.environ.get("PASARWATCH_DEMO_TOKEN")
    if not token:
        print("the demo feed needs a device token: --token, or PASARWATCH_DEMO_TOKEN "
              "(pasarwatch device add demo-feed)", file=sys.stderr)
        return 2
    return run_demo(url, args.speed or settings.demo_speed, token, args.days)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pasarwatch", description=__doc__)
    parser.add_argument("--data-dir", help="data directory of the `pasarwatch up` whose Redis a command "
                                           "uses, or that `up` uses (default PASARWATCH_DATA_DIR); "
                                           "may come anywhere on the line")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start Redis (unless REDIS_URL is set), engine, web and worker")
    up.add_argument("--demo", action="store_true", help="also replay real PIHPS prices as a device would")
    up.add_argument("--engines", type=_engine_count, default=1,
                    help="engine processes sharing the partitions (default 1; at most PASARWATCH_PARTITIONS do work)")
    up.set_defaults(run=_up)
    commands.add_parser("web", help="the web server (HTTP API, WebSockets, dashboard)").set_defaults(run=_web)
    commands.add_parser("engine", help="the detection engine").set_defaults(run=_engine)
    commands.add_parser("worker", help="an RQ worker for notifications").set_defaults(run=_worker)
    demo = commands.add_parser("demo", help="replay the demo price feed into a running server")
    demo.add_argument("--url", help="server base URL (default http://HOST:PORT)")
    demo.add_argument("--speed", type=float, help="days per second (default PASARWATCH_DEMO_SPEED)")
    demo.add_argument("--days", type=int, help="stop after this many days")
    demo.add_argument("--token", help="device token (default PASARWATCH_DEMO_TOKEN)")
    demo.set_defaults(run=_demo)
    rules = commands.add_parser("rules", help="rule file tools")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True)
    rules_cli.add_commands(rule_commands)
    bot = commands.add_parser("bot", help="the Telegram bot: long polling, or registering the webhook")
    bot.add_argument("--poll", action="store_true", help="receive updates by long polling (no public URL needed)")
    bot_actions = bot.add_subparsers(dest="action")
    webhook = bot_actions.add_parser("set-webhook", help="register URL (https://HOST/telegram/webhook) with Telegram")
    webhook.add_argument("url")
    bot.set_defaults(run=_bot)
    devices.add_commands(commands)
    audit.add_commands(commands)
    deadletters.add_commands(commands)
    imports.add_commands(commands)
    backtest.add_commands(commands)
    bench = commands.add_parser("bench", prefix_chars="+", help="run the benchmarks (docs/benchmarks.md)")
    bench.add_argument("bench_args", nargs="*", help="as python -m bench: --quick, --markdown, benchmark names")
    bench.set_defaults(run=lambda _, args: os.execv(sys.executable, [sys.executable, "-m", "bench", *args.bench_args]))
    return parser


def split_data_dir(argv: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--data-dir DIR`` (or ``--data-dir=DIR``) from anywhere before ``--``, so that
    ``pasarwatch device add X --data-dir var/demo`` works as well as ``pasarwatch --data-dir ...``."""
    data_dir, rest, index = None, [], 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        if arg == "--data-dir" and index + 1 < len(argv):
            data_dir, index = argv[index + 1], index + 2
            continue
        if arg.startswith("--data-dir="):
            data_dir = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        index += 1
    return data_dir, rest


def _needs_redis(args: argparse.Namespace) -> bool:
    return args.command in TOOLS or (args.command == "bot" and args.poll and not args.action)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    redact_root_handlers()
    data_dir, rest = split_data_dir(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(rest)
    args.data_dir = data_dir
    settings = Settings.from_env()
    if data_dir is not None:
        settings = dataclasses.replace(settings, data_dir=Path(data_dir))
        if not os.environ.get("PASARWATCH_AUDIT_DIR"):  # the audit key lives with the data it guards
            settings = dataclasses.replace(settings, audit_dir=Path(data_dir))
    if args.command in PARTS or _needs_redis(args):
        try:
            located = redis_url.locate(settings.data_dir, settings.redis_url, data_dir is not None)
            if _needs_redis(args):
                redis_url.connect(located).close()
        except redis_url.RedisUnavailable as exc:
            print(f"pasarwatch {args.command}: {exc}", file=sys.stderr)
            return 2
        settings = dataclasses.replace(settings, redis_url=located.url)
    if not _needs_redis(args):
        return args.run(settings, args)
    try:
        return args.run(settings, args)
    except redis.RedisError as exc:  # Redis went away, or refused a command, after it answered
        print(f"pasarwatch {args.command}: Redis at {redis_url.redact(settings.redis_url)} failed: "
              f"{' '.join(str(exc).split())[:200]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
