"""The bot's side (server/telegram_bot.py, workers/commands.py): webhook, commands, buttons,
the notifications API and long polling, against a real Redis and the fake Bot API server."""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time

import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from base import keys
from base.catalog import load_catalog
from server.telegram_bot import SECRET_HEADER, routes, run_polling, set_webhook
from stores.partitioned import of_series
from testkit.fakebot import FakeTelegram, callback_update, message_update
from tests.redis_server import start_redis
from tests.test_silences import open_reads
from workers import notifications as store
from workers import subscriptions as subs
from workers.delivery import Delivery
from workers.dispatch import dispatch_alerts
from workers.settings import NotifySettings

CATALOG = load_catalog()
SECRET = "s3cret-token_for-tests"
CHAT = 4242
# The web process's partitions (the webhook's); cabai-rawit-merah and bawang-merah share one.
PARTITIONS = keys.partitions(2)
CHILLI = of_series(PARTITIONS, "cabai-rawit-merah")


@dataclasses.dataclass
class Bot:
    http: TestClient
    redis_url: str
    client: redis.Redis
    fake: FakeTelegram
    settings: NotifySettings
    update_ids: itertools.count

    def post(self, update: dict, secret: str | None = SECRET):
        update.setdefault("update_id", next(self.update_ids))
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        return self.http.post("/telegram/webhook", content=orjson.dumps(update), headers=headers)

    def say(self, text: str, chat: int = CHAT) -> str:
        """Send a command through the webhook; the text of the bot's one reply."""
        before = len(self.fake.messages(chat))
        assert self.post(message_update(chat, text)).status_code == 200
        replies = self.fake.messages(chat)[before:]
        assert len(replies) == 1, replies
        assert replies[0]["parse_mode"] == "HTML"
        return replies[0]["text"]

    def topics(self, chat: int = CHAT) -> set[str]:
        return {m.decode() for m in self.client.smembers(subs.chat_key(chat))}


def make_app(redis_url: str, settings: NotifySettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.redis = app.state.notify = AsyncRedis.from_url(redis_url)
        yield
        await app.state.redis.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gate = open_reads()
    app.state.catalog = CATALOG
    app.state.partitions = PARTITIONS
    app.state.notify_settings = settings
    return app


def settings_for(redis_url: str, fake: FakeTelegram, **env) -> NotifySettings:
    return NotifySettings.from_env({
        "REDIS_URL": redis_url, "TELEGRAM_BOT_TOKEN": "123:TEST", "TELEGRAM_BASE_URL": fake.base_url,
        "TELEGRAM_WEBHOOK_SECRET": SECRET, "PASARWATCH_PUBLIC_URL": "https://pw.example",
        "TELEGRAM_TIMEOUT": "5", "PASARWATCH_NOTIFY_GROUP_WINDOW": "0", **env})


@pytest.fixture
def bot(tmp_path):
    server = start_redis(tmp_path)
    client = redis.Redis.from_url(server.url)
    with FakeTelegram() as fake:
        settings = settings_for(server.url, fake)
        with TestClient(make_app(server.url, settings)) as http:
            yield Bot(http, server.url, client, fake, settings, itertools.count(1))
    client.close()
    server.stop()


def test_a_request_without_the_right_secret_gets_403_and_changes_nothing(bot):
    for secret in ("wrong", "", None, SECRET.upper()):
        response = bot.post(message_update(CHAT, "/langganan cabai rawit merah"), secret=secret)
        assert response.status_code == 403
    assert bot.topics() == set()
    assert bot.client.keys("pw:*") == []
    assert bot.fake.calls() == []


def test_with_no_secret_configured_the_webhook_refuses_everything(bot):
    settings = dataclasses.replace(bot.settings, webhook_secret="")
    with TestClient(make_app(bot.redis_url, settings)) as http:
        response = http.post("/telegram/webhook", content=orjson.dumps(message_update(CHAT, "/start")),
                             headers={SECRET_HEADER: ""})
    assert response.status_code == 403
    assert bot.fake.calls() == []


def test_subscribe_list_and_unsubscribe(bot):
    reply = bot.say("/langganan cabai rawit merah jawa barat")
    assert "✅ Berlangganan <b>Cabai Rawit Merah</b> di <b>Jawa Barat</b>" in reply
    assert bot.topics() == {"cabai-rawit-merah:32"}
    assert bot.client.smembers(subs.topic_key("cabai-rawit-merah", "32")) == {str(CHAT).encode()}

    assert "seluruh Indonesia" in bot.say("/subscribe Bawang Merah")  # English, any case
    assert "<b>Jawa Tengah</b>" in bot.say("/langganan@pasarwatch_test_bot beras-medium jateng")
    assert bot.topics() == {"cabai-rawit-merah:32", "bawang-merah:*", "beras-medium:33"}

    listing = bot.say("/daftar")
    assert "<b>Cabai Rawit Merah</b> di <b>Jawa Barat</b>" in listing
    assert "<b>Bawang Merah</b> di seluruh Indonesia" in listing
    assert "<b>Beras Medium</b> di <b>Jawa Tengah</b>" in listing

    assert "Berhenti berlangganan <b>Bawang Merah</b>" in bot.say("/berhenti bawang merah")
    assert "tidak berlangganan" in bot.say("/unsubscribe bawang merah")
    assert bot.topics() == {"cabai-rawit-merah:32", "beras-medium:33"}
    assert "Berhenti dari 2 langganan" in bot.say("/unsubscribe")
    assert bot.topics() == set()
    assert bot.client.smembers(subs.topic_key("cabai-rawit-merah", "32")) == set()
    assert "belum berlangganan" in bot.say("/list")


def test_unknown_names_get_close_matches_and_change_nothing(bot):
    reply = bot.say("/langganan cabe rawt")
    assert "Tidak ada komoditas bernama <b>cabe rawt</b>" in reply
    assert "<code>Cabai Rawit Merah</code>" in reply and "cabai-rawit-merah" not in reply  # names, not ids
    reply = bot.say("/langganan bawang merh jateng")
    assert "<code>Bawang Merah</code>" in reply
    reply = bot.say("/langganan cabai rawit merah jawa barta")
    assert "Tidak ada provinsi bernama <b>jawa barta</b>" in reply and "<code>Jawa Barat</code>" in reply
    reply = bot.say("/langganan <b>x</b> & y")
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in reply
    assert bot.topics() == set()
    assert "tidak dikenal" in bot.say("/frobnicate")
    assert "/langganan" in bot.say("/bantuan") and "/subscribe" in bot.say("/help")
    assert "peringatan dini" in bot.say("/start")


def test_commodities_and_provinces_by_the_names_people_use(bot):
    assert "<b>Cabai Rawit Merah</b> di <b>Jawa Barat</b>" in bot.say("/langganan cabe rawit jabar")
    assert "<b>Cabai Merah Keriting</b> di <b>DKI Jakarta</b>" in bot.say("/langganan Cabai Keriting DKI")
    assert "<b>Telur Ayam Ras</b> di <b>Sumatera Utara</b>" in bot.say("/langganan telur ayam sumut")
    assert "<b>Gula Pasir</b> di <b>Daerah Istimewa Yogyakarta</b>" in bot.say("/langganan gula-pasir DIY")
    assert "semua komoditas di <b>Nusa Tenggara Timur</b>" in bot.say("/langganan semua ntt")
    assert bot.topics() == {"cabai-rawit-merah:32", "cabai-merah-keriting:31", "telur-ayam-ras:12",
                            "gula-pasir:34", "*:53"}


def test_a_command_too_long_to_name_anything_is_refused_before_matching(bot):
    reply = bot.say("/langganan " + "cabe rawit " * 370)
    assert "Terlalu panjang" in reply
    assert bot.topics() == set()


@pytest.mark.parametrize("update, field", [
    ({"update_id": "7", "message": {"chat": {"id": CHAT}, "text": "/start"}}, "update_id"),
    ({"message": "hello"}, "message"),
    ({"message": {"chat": CHAT, "text": "/start"}}, "message.chat.id"),
    ({"message": {"chat": {"id": "4242"}, "text": "/start"}}, "message.chat.id"),
    ({"message": {"chat": {"id": True}, "text": "/start"}}, "message.chat.id"),
    ({"message": {"chat": {"id": CHAT}, "text": 42}}, "message.text"),
    ({"message": {"chat": {"id": CHAT}, "text": "/start", "from": "sari"}}, "message.from"),
    ({"callback_query": [1]}, "callback_query"),
    ({"callback_query": {"id": "1", "data": 5, "message": {"chat": {"id": CHAT}}}}, "callback_query.data"),
    ({"callback_query": {"id": "1", "data": "m:1", "message": 5}}, "callback_query.message"),
    ({"callback_query": {"id": "1", "data": "m:1", "message": {"chat": {}}}}, "callback_query.message.chat.id"),
])
def test_malformed_updates_get_400_naming_the_field(bot, update, field):
    response = bot.post(update)
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert (error["field"], error["reason"]) == (field, "bad_update")
    assert bot.fake.calls() == [] and bot.client.keys("pw:tg:update:*") == []


def test_a_webhook_body_over_1_mib_gets_413_unread(bot):
    padded = {**message_update(CHAT, "/start"), "update_id": 1, "pad": "x" * (1 << 20)}
    response = bot.http.post("/telegram/webhook", content=orjson.dumps(padded), headers={SECRET_HEADER: SECRET})
    assert response.status_code == 413 and response.json()["errors"][0]["reason"] == "body_too_large"
    assert bot.fake.calls() == []


def test_latest_shows_prices_by_market_and_firing_alerts(bot):
    now = time.time()
    for market, province, price in [("pasar-agung", "32", 62000.0), ("pasar-kosambi", "32", 75500.0),
                                    ("pasar-x-semarang", "33", 99000.0)]:
        bot.client.hset(CHILLI.latest, f"cabai-rawit-merah/{market}", orjson.dumps(
            {"type": "price", "commodity": "cabai-rawit-merah", "market": market, "province": province,
             "price": price, "ts": now, "unit": "kg"}))
    bot.client.hset(of_series(PARTITIONS, "bawang-merah").latest, "bawang-merah/pasar-agung", orjson.dumps(
        {"commodity": "bawang-merah", "market": "pasar-agung", "province": "32", "price": 1.0, "ts": now, "unit": "kg"}))
    bot.client.hset(CHILLI.firing, "price-spike/cabai-rawit-merah/pasar-kosambi", orjson.dumps(
        {"type": "alert", "key": "price-spike/cabai-rawit-merah/pasar-kosambi", "state": "firing",
         "commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "province": "32",
         "summary": "Harga melonjak", "started_at": now}))
    reply = bot.say("/harga cabai rawit merah jabar")
    lines = reply.split("\n")
    assert lines[0] == "<b>Harga terkini</b> <b>Cabai Rawit Merah</b> di <b>Jawa Barat</b>"
    assert lines[1].startswith("• <b>Pasar Kosambi</b>, Jawa Barat: <b>Rp 75.500/kg</b> · ")
    assert lines[2].startswith("• <b>Pasar Agung</b>, Jawa Barat: <b>Rp 62.000/kg</b> · ")
    assert "WIB" in lines[1]
    assert "Rp 99.000" not in reply and "Rp 1/kg" not in reply  # other province, other commodity
    assert "⚠️ <b>Pasar Kosambi</b>, Jawa Barat: Harga melonjak sejak" in reply
    everywhere = bot.say("/latest cabai-rawit-merah")
    assert "Rp 99.000/kg" in everywhere
    assert "Belum ada data harga" in bot.say("/harga beras medium")


def test_mute_for_a_while_and_unmute(bot):
    assert "🔕 Dibisukan sampai" in bot.say("/bisukan 2 jam")
    assert 7190 <= bot.client.ttl(subs.chat_mute_key(CHAT)) <= 7200
    assert "Dibisukan sampai" in bot.say("/daftar")
    assert "Peringatan aktif kembali" in bot.say("/mute off")
    assert bot.client.exists(subs.chat_mute_key(CHAT)) == 0
    assert "Contoh" in bot.say("/bisukan besok")
    bot.say("/mute 1d")
    assert 86390 <= bot.client.ttl(subs.chat_mute_key(CHAT)) <= 86400


def test_an_update_telegram_delivers_twice_is_handled_once(bot):
    update = message_update(CHAT, "/langganan bawang putih", update_id=99)
    assert bot.post(dict(update)).status_code == 200
    assert bot.post(dict(update)).status_code == 200
    assert len(bot.fake.messages(CHAT)) == 1


def test_malformed_bodies_are_refused(bot):
    headers = {SECRET_HEADER: SECRET}
    assert bot.http.post("/telegram/webhook", content=b"{nope", headers=headers).status_code == 400
    assert bot.http.post("/telegram/webhook", content=b"[1]", headers=headers).status_code == 400
    assert bot.post({"edited_channel_post": {}}).status_code == 200  # not for us: ignored
    assert bot.fake.calls() == []


def deliver_alert(bot: Bot, chat: int, n: int, key: str = "price-spike/cabai-rawit-merah/pasar-agung") -> str:
    """Dispatch an alert to ``chat`` and deliver it in this process; its notification id."""
    event = {"type": "alert", "id": f"{1719800000000 + n}-0", "key": key, "rule": "price-spike",
             "state": "firing", "severity": "warning", "commodity": "cabai-rawit-merah",
             "market": "pasar-agung", "province": "32", "price": 387500.0, "ts": 1719800000.0,
             "expected": {"level": 60000.0}, "routes": {"telegram": [chat], "topics": False}}
    bot.client.xadd(CHILLI.alerts, {"a": orjson.dumps(event)}, id=event["id"])
    bot.client.hset(CHILLI.firing, key, orjson.dumps(event))
    assert dispatch_alerts(bot.client, CATALOG, bot.settings, partitions=PARTITIONS) == 1
    nid = store.pair_id(event, chat)
    Delivery(bot.client, bot.settings, CATALOG).run(nid)
    return nid


def test_ack_button_records_the_ack_tells_dashboards_and_marks_the_message(bot):
    nid = deliver_alert(bot, CHAT, 1)
    [sent] = bot.fake.messages(CHAT)
    message_id = store.load(bot.client, nid).message_ids[0]
    pubsub = bot.client.pubsub()
    pubsub.subscribe(subs.EVENTS)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"

    assert bot.post(callback_update(CHAT, f"a:{nid}", message_id, username="sari")).status_code == 200
    ack = orjson.loads(bot.client.hget(subs.ACKS, "price-spike/cabai-rawit-merah/pasar-agung"))
    assert ack["by"] == "@sari" and abs(ack["at"] - time.time()) < 60
    published = orjson.loads(pubsub.get_message(timeout=5)["data"])
    assert published == {"type": "ack", "key": "price-spike/cabai-rawit-merah/pasar-agung",
                         "by": "@sari", "at": ack["at"]}
    [answer] = bot.fake.calls("answerCallbackQuery")
    assert answer.params["text"] == "👍 Diakui."
    [edit] = bot.fake.calls("editMessageText")
    assert int(edit.params["message_id"]) == message_id
    assert edit.params["text"].startswith(sent["text"]) and "Diakui oleh <b>@sari</b>" in edit.params["text"]
    assert edit.params["reply_markup"] == {"inline_keyboard": [[{"text": "Bisukan 1 jam", "callback_data": f"m:{nid}"}]]}
    pubsub.close()


def test_a_button_from_another_chat_or_an_expired_notification_does_nothing(bot):
    nid = deliver_alert(bot, CHAT, 1)
    bot.post(callback_update(CHAT + 1, f"a:{nid}", 1))
    bot.post(callback_update(CHAT, "a:0000", 1))
    assert bot.client.hlen(subs.ACKS) == 0
    answers = [c.params["text"] for c in bot.fake.calls("answerCallbackQuery")]
    assert answers == ["Pemberitahuan ini sudah kedaluwarsa."] * 2


def test_mute_button_silences_that_alert_for_an_hour_in_that_chat_only(bot):
    key = "price-spike/cabai-rawit-merah/pasar-agung"
    nid = deliver_alert(bot, CHAT, 1, key)
    message_id = store.load(bot.client, nid).message_ids[0]
    bot.post(callback_update(CHAT, f"m:{nid}", message_id))
    assert 3590 <= bot.client.ttl(subs.alert_mute_key(CHAT, key)) <= 3600
    # The same alert again (a new firing) to this chat is recorded as not sent ...
    again = deliver_alert(bot, CHAT, 2, key)
    record = store.load(bot.client, again)
    assert record.state == "not_sent" and "muted" in record.reason
    # ... while another chat and another alert still get through.
    assert store.load(bot.client, deliver_alert(bot, CHAT + 1, 3, key)).state == "sent"
    assert store.load(bot.client, deliver_alert(bot, CHAT, 4, "other/rule/key")).state == "sent"
    assert len(bot.fake.messages(CHAT)) == 2


def test_notifications_api_lists_newest_first_and_filters_by_state(bot):
    now = time.time()
    with bot.client.pipeline() as pipe:
        for i, chat in enumerate((1, 2, 3, 4)):
            store.queue_create(pipe, f"n{i}", chat, [b"{}"], now + i, 15)
        pipe.execute()
    store.finalize(bot.client, "n0", "sent", "1 message(s)", now)
    store.finalize(bot.client, "n1", "failed", "403 Forbidden: chat unsubscribed", now)
    store.finalize(bot.client, "n2", "not_sent", "TELEGRAM_BOT_TOKEN is not set", now)
    body = bot.http.get("/api/v1/notifications").json()
    assert [n["id"] for n in body["notifications"]] == ["n3", "n2", "n1", "n0"]
    assert body["counts"] == {"pending": 1, "sent": 1, "failed": 1, "not_sent": 1}
    failed = bot.http.get("/api/v1/notifications", params={"state": "failed"}).json()["notifications"]
    assert [(n["id"], n["chat"], n["reason"]) for n in failed] == [("n1", 2, "403 Forbidden: chat unsubscribed")]
    assert [n["id"] for n in bot.http.get("/api/v1/notifications?limit=2").json()["notifications"]] == ["n3", "n2"]
    assert bot.http.get("/api/v1/notifications?state=lost").status_code == 422
    assert bot.http.get("/api/v1/notifications?limit=0").status_code == 422
    assert bot.http.get("/api/v1/notifications?limit=x").status_code == 422


def test_long_polling_runs_the_same_handlers(bot):
    bot.fake.push_update(message_update(CHAT, "/langganan bawang merah"))
    bot.fake.push_update(message_update(CHAT, "/daftar"))
    stop = threading.Event()
    poller = threading.Thread(target=run_polling, args=(bot.settings, CATALOG, stop, 1), daemon=True)
    poller.start()
    try:
        replies = bot.fake.wait_until(lambda: len(bot.fake.messages(CHAT)) >= 2 and bot.fake.messages(CHAT))
        assert "Berlangganan <b>Bawang Merah</b>" in replies[0]["text"]
        assert "<b>Bawang Merah</b> di seluruh Indonesia" in replies[1]["text"]
        assert bot.topics() == {"bawang-merah:*"}
        # The webhook went first (Telegram refuses getUpdates while one is set) and the handled
        # updates were confirmed: the next poll asks past them.
        assert bot.fake.calls()[0].method == "deleteWebhook"
        bot.fake.wait_until(lambda: any(c.params.get("offset") == "3" for c in bot.fake.calls("getUpdates")))
    finally:
        stop.set()
        poller.join(timeout=15)
    assert not poller.is_alive()
    assert len(bot.fake.messages(CHAT)) == 2


def test_set_webhook_registers_the_url_with_the_secret(bot):
    assert set_webhook("https://pw.example/telegram/webhook", bot.settings) is True
    [call] = bot.fake.calls("setWebhook")
    assert call.params["url"] == "https://pw.example/telegram/webhook"
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message", "callback_query"]
    with pytest.raises(RuntimeError, match="TELEGRAM_WEBHOOK_SECRET"):
        set_webhook("https://pw.example/telegram/webhook", dataclasses.replace(bot.settings, webhook_secret=""))
