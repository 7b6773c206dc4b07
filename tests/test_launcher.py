"""`pasarwatch up` as a user runs it (REDIS_URL unset, its own data directory), and the commands
run beside it: they find its Redis by themselves, and the Redis refuses anyone without the
password. Everything runs as real processes, as in the README."""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import redis

from server import auth
from base.config import PROJECT_ROOT
from server.redis_process import free_port
from stores import partitioned
from testkit.fakebot import FakeTelegram, message_update
from tests.system import wait_for

pytestmark = pytest.mark.timeout(180)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: no REDIS_URL or RQ_REDIS_URL, no data directory setting."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "RQ_REDIS_URL") and not k.startswith(("PASARWATCH_", "TELEGRAM_"))}
    return {**env, "PYTHONPATH": str(PROJECT_ROOT), **extra}


def pasarwatch(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=cwd, env=clean_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_refusal(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


class Launcher:
    """``pasarwatch up`` started in ``home`` (its data directory is home/var, the default)."""

    def __init__(self, home: Path, *args: str, **env: str):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "up.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "up", *args], cwd=home,
                env=clean_env(PASARWATCH_PORT=str(self.port), PASARWATCH_STALE_SWEEP="0.5", **env),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_serving(self, data_dir: Path) -> Launcher:
        wait_for(lambda: (data_dir / "redis.url").exists() and self._healthy(), 90,
                 f"pasarwatch up to serve (log: {self.log()[-3000:]})")
        return self

    def _healthy(self) -> bool:
        assert self.process.poll() is None, self.log()[-3000:]
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _port_open(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C reaches only the launcher's group
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    home = tmp_path_factory.mktemp("field")
    launcher = Launcher(home).wait_serving(home / "var")
    yield launcher
    launcher.stop()


def store_url(home: Path) -> str:
    return (home / "var" / "redis.url").read_text().strip()


def test_device_add_beside_up_finds_its_redis_and_the_token_works(up):
    result = pasarwatch("device", "add", "hp-petugas-17", "--market", "pasar-agung", cwd=up.home)
    assert result.returncode == 0, result.stderr
    token = result.stdout.split("token (shown once, store it on the device): ", 1)[1].split()[0]
    client = redis.Redis.from_url(store_url(up.home))
    try:
        assert "hp-petugas-17" in {row["name"] for row in auth.list_credentials(client, "device")}
    finally:
        client.close()
    tick = {"commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32",
            "price": 52000, "source": "hp-petugas-17", "seq": 1}
    response = httpx.post(up.url + "/api/v1/ticks", content=orjson.dumps([tick]), timeout=10,
                          headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    assert response.status_code == 202, response.text


def test_url_file_is_the_owners_and_redis_refuses_anyone_without_the_password(up):
    data_dir = up.home / "var"
    assert stat.S_IMODE((data_dir / "redis.url").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "redis").stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "redis" / "password").stat().st_mode) == 0o600
    for path in (data_dir / "redis").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    parts = urlsplit(store_url(up.home))
    assert parts.hostname == "127.0.0.1" and len(parts.password or "") >= 32
    with socket.create_connection(("127.0.0.1", parts.port), timeout=5) as sock:
        sock.sendall(b"PING\r\nKEYS *\r\n")
        answer = b""
        while answer.count(b"\r\n") < 2:
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"-NOAUTH") and b"*" not in answer, answer
    # The password never appears on a command line, which every local account can read.
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        assert parts.password.encode() not in cmdline, proc


def test_audit_verify_and_token_commands_beside_up(up):
    result = pasarwatch("audit", "verify", cwd=up.home)
    assert result.returncode == 0, result.stderr
    assert "audit chain intact" in result.stdout
    result = pasarwatch("token", "add", "sari", "--role", "operator", cwd=up.home)
    assert result.returncode == 0 and result.stdout.strip().startswith("pw_"), result.stderr


def test_data_dir_option_and_redis_url_override_the_default(up, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_one_line_refusal(pasarwatch("device", "list", cwd=elsewhere), "REDIS_URL is not set",
                            str(elsewhere / "var"))
    added = pasarwatch("--data-dir", str(up.home / "var"), "device", "add", "hp-elsewhere", cwd=elsewhere)
    assert added.returncode == 0, added.stderr
    listed = pasarwatch("device", "list", f"--data-dir={up.home / 'var'}", cwd=elsewhere)
    assert listed.returncode == 0 and "hp-elsewhere\tactive" in listed.stdout, listed.stderr
    dead = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_line_refusal(pasarwatch("device", "list", cwd=up.home, REDIS_URL=dead),
                            "from REDIS_URL", "127.0.0.1")
    result = pasarwatch("--data-dir", "var", "device", "list", cwd=up.home, REDIS_URL=dead)
    assert result.returncode == 0, result.stderr


def test_the_worker_module_finds_the_running_up(up):
    result = subprocess.run([sys.executable, "-m", "workers.run", "--burst"], cwd=up.home, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


def test_bot_poll_beside_up_answers_and_says_what_it_did(up):
    with FakeTelegram() as fake:
        fake.push_update(message_update(4242, "/start"))
        poll = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "bot", "--poll"], cwd=up.home,
            env=clean_env(TELEGRAM_BOT_TOKEN="123:abc", TELEGRAM_BASE_URL=fake.base_url),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            fake.wait_until(lambda: fake.messages(chat_id=4242), 60, "the reply to /start")
        finally:
            os.killpg(poll.pid, signal.SIGINT)
            out, err = poll.communicate(timeout=30)
    assert poll.returncode == 0, err[-2000:]
    assert "polling Telegram for updates" in out and "stopped polling" in out
    assert "Traceback" not in err


def test_a_second_up_in_the_same_data_directory_is_refused(up):
    result = pasarwatch("up", cwd=up.home, PASARWATCH_PORT=str(free_port()))
    assert_one_line_refusal(result, "already running", str(up.home / "var"))


def test_ctrl_c_removes_the_url_file_and_commands_then_say_up_stopped(up):
    url = store_url(up.home)
    assert up.stop() == 0
    assert not (up.home / "var" / "redis.url").exists() and not (up.home / "var" / "up.pid").exists()
    assert_one_line_refusal(pasarwatch("audit", "verify", cwd=up.home), "no `pasarwatch up` is running")
    # A launcher killed outright leaves its file behind: the command says that Redis is gone.
    (up.home / "var" / "redis.url").write_text(url + "\n")
    assert_one_line_refusal(pasarwatch("device", "list", cwd=up.home), "has stopped",
                            str(Path("var") / "redis.url"))
    assert urlsplit(url).password not in pasarwatch("device", "list", cwd=up.home).stderr


def test_a_killed_launcher_takes_its_parts_along_and_the_next_up_finds_the_data(tmp_path):
    first = Launcher(tmp_path).wait_serving(tmp_path / "var")
    url = store_url(tmp_path)
    try:
        assert pasarwatch("device", "add", "hp-before-kill", cwd=tmp_path).returncode == 0
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        # Redis and every part stop with it (SIGTERM, a clean stop), instead of running on unowned.
        wait_for(lambda: not first._port_open(), 60, "the web part to stop")
        wait_for(lambda: pasarwatch("device", "list", cwd=tmp_path).returncode == 2, 60, "Redis to stop")
        second = Launcher(tmp_path).wait_serving(tmp_path / "var")
        try:
            assert urlsplit(store_url(tmp_path)).password == urlsplit(url).password  # one per data directory
            listed = pasarwatch("device", "list", cwd=tmp_path)
            assert "hp-before-kill\tactive" in listed.stdout, listed.stderr
        finally:
            assert second.stop() == 0
    finally:
        first.stop()


def test_files_a_killed_launcher_left_beside_an_external_redis_do_not_block_the_next(tmp_path):
    from base import redis_url
    from server.launcher import PID_FILE, running_launcher
    from tests.redis_server import start_redis

    external = start_redis(tmp_path / "external", password="pw")
    try:
        data_dir = tmp_path / "var"
        data_dir.mkdir()
        redis_url.write_url_file(data_dir, external.url)
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait(timeout=30)
        (data_dir / PID_FILE).write_text(f"{gone.pid}\n")
        assert running_launcher(data_dir) is None  # its Redis answers, but the launcher is gone
        (data_dir / PID_FILE).write_text(f"{os.getpid()}\n")
        assert running_launcher(data_dir) == os.getpid()
        redis_url.write_url_file(data_dir, f"redis://127.0.0.1:{free_port()}/0")
        assert running_launcher(data_dir) is None  # a live pid, but no Redis behind the file
    finally:
        external.stop()


def test_import_and_deadletter_beside_up_find_its_redis(tmp_path):
    """The README's "Where commands find Redis" for the commands this round added (a launcher of
    its own: other tests here stop the module's one on purpose)."""
    launcher = Launcher(tmp_path).wait_serving(tmp_path / "var")
    try:
        fixture = Path(__file__).parent / "fixtures" / "imports" / "pihps-jabar-cabai-2024-01.csv"
        imported = pasarwatch("import", str(fixture), "--json", cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
        assert orjson.loads(imported.stdout)["accepted"] == 200
        listed = pasarwatch("deadletter", "list", cwd=tmp_path)
        assert listed.returncode == 0 and "dead-lettered in all" in listed.stdout, listed.stderr
    finally:
        launcher.stop()


def test_up_with_two_engines_runs_two_that_share_the_partitions(tmp_path):
    """``pasarwatch up --engines 2`` on the embedded Redis: both engines hold partitions, /readyz
    names two owners, and the ticks an import pushes are all processed."""
    launcher = Launcher(tmp_path, "--engines", "2").wait_serving(tmp_path / "var")
    try:
        def two_owners() -> bool:
            ready = httpx.get(launcher.url + "/readyz", timeout=5).json()
            return len({p["owner"] for p in ready.get("partitions", []) if p["owner"]}) == 2

        wait_for(two_owners, 30, f"two engines to hold partitions (log: {launcher.log()[-3000:]})")
        fixture = Path(__file__).parent / "fixtures" / "imports" / "pihps-jabar-cabai-2024-01.csv"
        imported = pasarwatch("import", str(fixture), "--json", cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
        client = redis.Redis.from_url(store_url(tmp_path))
        wait_for(lambda: partitioned.total(client, "processed") >= 200, 30, "the engines to process the import")
        assert partitioned.total(client, "processed") == 200
    finally:
        launcher.stop()


def test_the_demo_never_writes_into_a_deployments_notifications_redis(tmp_path):
    from tests.redis_server import start_redis

    deployment = start_redis(tmp_path / "deployment-notify")  # RQ_REDIS_URL left in the shell
    launcher = Launcher(tmp_path, "--demo", RQ_REDIS_URL=deployment.url)
    try:
        launcher.wait_serving(tmp_path / "var" / "demo")
        wait_for(lambda: "started worker" in launcher.log(), 30, f"the demo's worker (log: {launcher.log()[-2000:]})")
        demo_url = (tmp_path / "var" / "demo" / "redis.url").read_text().strip()
        with redis.Redis.from_url(demo_url) as demo:
            wait_for(lambda: demo.smembers("rq:workers"), 60, "the demo's worker registered in the demo's Redis")
        with redis.Redis.from_url(deployment.url) as notify:
            assert notify.keys("*") == []
        assert "RQ_REDIS_URL is ignored" in launcher.log()
    finally:
        launcher.stop()
        deployment.stop()
