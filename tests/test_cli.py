"""Every command that needs Redis, when no Redis is usable: one line saying what it tried and
what to do, exit status 2, never a traceback. And the bot commands say what they did."""
from __future__ import annotations

import pytest

from server.redis_process import free_port
from testkit.fakebot import FakeTelegram
from tests.redis_server import start_redis
from tests.test_launcher import assert_one_line_refusal, pasarwatch

pytestmark = pytest.mark.timeout(120)

COMMANDS = {
    "device": ("device", "list"),
    "token": ("token", "list"),
    "audit": ("audit", "verify"),
    "bot": ("bot", "--poll"),
}


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory):
    """A Redis that wants a password, as the embedded one does."""
    process = start_redis(tmp_path_factory.mktemp("locked"), password="right-password")
    yield process
    process.stop()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_nothing_running_and_no_redis_url(tmp_path, command):
    result = pasarwatch(*COMMANDS[command], cwd=tmp_path, TELEGRAM_BOT_TOKEN="1:x")
    assert_one_line_refusal(result, "REDIS_URL is not set", "pasarwatch up", str(tmp_path / "var"))


def test_stale_url_file_left_by_a_killed_launcher(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "redis.url").write_text(f"redis://:secret-pw@127.0.0.1:{free_port()}/0\n")
    result = pasarwatch(*COMMANDS["audit"], cwd=tmp_path)
    assert_one_line_refusal(result, "no Redis answers", "var/redis.url", "has stopped")
    assert "secret-pw" not in result.stderr


@pytest.mark.parametrize("url, command, words", [
    ("http://127.0.0.1:6379/0", "token", ("not a Redis URL", "REDIS_URL")),
    ("redis://127.0.0.1:{port}/0", "bot", ("needs a password",)),
    ("redis://:wrong-password@127.0.0.1:{port}/0", "device", ("refused the user or password",)),
    ("redis://:wrong-password@127.0.0.1:{port}/0", "audit", ("refused the user or password",)),
])
def test_wrong_url_or_password(tmp_path, locked_redis, url, command, words):
    url = url.format(port=locked_redis.port)
    result = pasarwatch(*COMMANDS[command], cwd=tmp_path, REDIS_URL=url, TELEGRAM_BOT_TOKEN="1:x")
    assert_one_line_refusal(result, *words)
    assert "wrong-password" not in result.stderr


def test_the_right_password_in_redis_url_works(tmp_path, locked_redis):
    result = pasarwatch("audit", "verify", cwd=tmp_path, REDIS_URL=locked_redis.url)
    assert result.returncode == 0 and "intact" in result.stdout, result.stderr


def test_set_webhook_says_what_it_registered(tmp_path):
    with FakeTelegram() as fake:
        result = pasarwatch("bot", "set-webhook", "https://pasar.example/telegram/webhook", cwd=tmp_path,
                            TELEGRAM_BOT_TOKEN="123:abc", TELEGRAM_BASE_URL=fake.base_url,
                            TELEGRAM_WEBHOOK_SECRET="s3cret")
        calls = fake.calls("setWebhook")
    assert result.returncode == 0, result.stderr
    assert "webhook registered with Telegram: https://pasar.example/telegram/webhook" in result.stdout
    assert [c.params.get("url") for c in calls] == ["https://pasar.example/telegram/webhook"]
    assert "s3cret" not in result.stdout


def test_set_webhook_without_a_secret_is_one_line(tmp_path):
    result = pasarwatch("bot", "set-webhook", "https://pasar.example/telegram/webhook", cwd=tmp_path,
                        TELEGRAM_BOT_TOKEN="123:abc")
    assert_one_line_refusal(result, "TELEGRAM_WEBHOOK_SECRET is not set")


def test_token_and_device_revoke_say_what_they_did(tmp_path, locked_redis):
    added = pasarwatch("token", "add", "rina", "--role", "viewer", cwd=tmp_path, REDIS_URL=locked_redis.url)
    assert added.returncode == 0, added.stderr
    revoked = pasarwatch("token", "revoke", "rina", cwd=tmp_path, REDIS_URL=locked_redis.url)
    assert revoked.returncode == 0 and "rina revoked" in revoked.stdout
    missing = pasarwatch("token", "revoke", "nobody", cwd=tmp_path, REDIS_URL=locked_redis.url)
    assert missing.returncode == 1 and "no person token nobody" in missing.stderr
    missing = pasarwatch("device", "revoke", "nothing", cwd=tmp_path, REDIS_URL=locked_redis.url)
    assert missing.returncode == 1 and "no device nothing" in missing.stderr
