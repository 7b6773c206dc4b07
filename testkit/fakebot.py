"""A fake Telegram Bot API server on 127.0.0.1 for tests.

It answers the methods Pasarwatch uses (getMe, sendMessage, editMessageText,
answerCallbackQuery, setWebhook, deleteWebhook, getUpdates) the way the real API does, records
every request, and can be told to fail: answer 429 with ``retry_after``, a 5xx, 403 Forbidden,
or hang without answering, for the next N matching calls or for one chat. Point
python-telegram-bot at it with ``base_url=fake.base_url``.

    with FakeTelegram() as fake:
        fake.fail("429", times=1, retry_after=1)
        ...
        fake.wait_until(lambda: len(fake.messages(chat_id=42)) == 1)
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER = {"id": 777000111, "is_bot": True, "first_name": "Pasarwatch Test", "username": "pasarwatch_test_bot"}
FAULT_KINDS = ("429", "5xx", "403", "hang")


@dataclass
class Call:
    """One request as the fake server saw it; ``outcome`` is ok, 429, 5xx, 403 or hang."""

    method: str
    token: str
    params: dict[str, Any]
    outcome: str
    at: float = field(default_factory=time.time)

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None


@dataclass
class Fault:
    kind: str
    times: int | None  # None: until cleared
    method: str | None
    chat_id: int | None
    retry_after: int
    status: int
    skip: int = 0  # matching calls to let through before failing

    def matches(self, method: str, chat_id: int | None) -> bool:
        return ((self.method is None or self.method == method)
                and (self.chat_id is None or self.chat_id == chat_id)
                and (self.times is None or self.times > 0))


class FakeTelegram:
    def __init__(self, max_hang: float = 60.0) -> None:
        self.max_hang = max_hang
        self._lock = threading.Condition()
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self._updates: list[dict] = []
        self._next_update_id = 1
        self._next_message_id = 1
        self._hanging = 0
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # -- steering -------------------------------------------------------------------------------
    def fail(self, kind: str, times: int | None = 1, method: str | None = "sendMessage",
             chat_id: int | None = None, retry_after: int = 1, status: int = 500, skip: int = 0) -> None:
        """Make ``times`` matching calls (``None``: all, until ``clear``) fail, after letting
        ``skip`` of them through."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append(Fault(kind, times, method, chat_id, retry_after, status, skip))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def release(self) -> None:
        """Let every hanging request go; each is closed without an answer (never delivered)."""
        self._released.set()

    def push_update(self, update: dict) -> int:
        """Queue an update for getUpdates; returns its update_id."""
        with self._lock:
            update = {**update, "update_id": self._next_update_id}
            self._next_update_id += 1
            self._updates.append(update)
            self._lock.notify_all()
            return update["update_id"]

    # -- what happened ---------------------------------------------------------------------------
    def calls(self, method: str | None = None, outcome: str | None = None,
              chat_id: int | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls
                    if (method is None or c.method == method)
                    and (outcome is None or c.outcome == outcome)
                    and (chat_id is None or c.chat_id == chat_id)]

    def messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Parameters of every sendMessage that was answered with success (was delivered)."""
        return [c.params for c in self.calls("sendMessage", "ok", chat_id)]

    @property
    def hanging(self) -> int:
        with self._lock:
            return self._hanging

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        """Wait, without sleeping blindly, until ``predicate()`` is truthy; woken by each request."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what or predicate}; calls: "
                                     f"{[(c.method, c.chat_id, c.outcome) for c in self.calls()]}")
            with self._lock:
                # Bounded so that conditions on other state (Redis) are re-checked too.
                self._lock.wait(min(remaining, 0.05))

    # -- serving --------------------------------------------------------------------------------
    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
            self._lock.notify_all()

    def _take_fault(self, method: str, chat_id: int | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, chat_id):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def handle(self, method: str, token: str, params: dict[str, Any]) -> tuple[int, dict] | None:
        """The status and JSON body to answer, or None to hang and close without answering."""
        chat_id = _int_or_none(params.get("chat_id"))
        fault = self._take_fault(method, chat_id)
        if fault is not None:
            self._record(Call(method, token, params, fault.kind))
            return self._fault_answer(fault)
        if method == "getUpdates":
            result = self._get_updates(params)
            self._record(Call(method, token, params, "ok"))
            return 200, {"ok": True, "result": result}
        answer = self._answer(method, params, chat_id)
        self._record(Call(method, token, params, "ok" if answer[0] == 200 else str(answer[0])))
        return answer

    def _fault_answer(self, fault: Fault) -> tuple[int, dict] | None:
        if fault.kind == "429":
            return 429, {"ok": False, "error_code": 429,
                         "description": f"Too Many Requests: retry after {fault.retry_after}",
                         "parameters": {"retry_after": fault.retry_after}}
        if fault.kind == "5xx":
            return fault.status, {"ok": False, "error_code": fault.status, "description": "Internal Server Error"}
        if fault.kind == "403":
            return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        with self._lock:
            self._hanging += 1
            self._lock.notify_all()
        try:
            self._released.wait(self.max_hang)
        finally:
            with self._lock:
                self._hanging -= 1
        return None

    def _answer(self, method: str, params: dict[str, Any], chat_id: int | None) -> tuple[int, dict]:
        if method == "getMe":
            return 200, {"ok": True, "result": BOT_USER}
        if method in ("answerCallbackQuery", "setWebhook", "deleteWebhook"):
            return 200, {"ok": True, "result": True}
        if method in ("sendMessage", "editMessageText"):
            if chat_id is None or not params.get("text"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id and text required"}
            with self._lock:
                message_id = _int_or_none(params.get("message_id")) or self._next_message_id
                if method == "sendMessage":
                    self._next_message_id += 1
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
            if chat_id < 0:
                chat["title"] = "Test group"
            return 200, {"ok": True, "result": {"message_id": message_id, "date": int(time.time()),
                                                "chat": chat, "text": params["text"], "from": BOT_USER}}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _get_updates(self, params: dict[str, Any]) -> list[dict]:
        offset = _int_or_none(params.get("offset")) or 0
        timeout = min(float(params.get("timeout") or 0), 5.0)
        deadline = time.monotonic() + timeout
        with self._lock:
            # As the real API: asking with an offset confirms every update before it.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return list(self._updates)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _parse_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query))
    if body:
        if content_type.startswith("application/json"):
            params.update(json.loads(body))
        elif content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body)
            for part in message.iter_parts():
                params[part.get_param("name", header="content-disposition")] = part.get_content()
        else:
            params.update(parse_qsl(body.decode()))
    # PTB sends nested values (reply_markup, allowed_updates) as JSON text.
    for key in ("reply_markup", "allowed_updates", "link_preview_options"):
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                pass
    for key in ("disable_notification",):
        if isinstance(params.get(key), str):
            params[key] = params[key].lower() == "true"
    return params


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = url.path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        token, method = parts[0][3:], parts[1]
        params = _parse_params(self.headers.get("Content-Type", ""), body, url.query)
        answer = self.server.fake.handle(method, token, params)  # type: ignore[attr-defined]
        if answer is None:
            self.close_connection = True
            return
        self._send(*answer)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --- updates as Telegram sends them (to the webhook, or from getUpdates) --------------------------

def message_update(chat_id: int, text: str, update_id: int | None = None, username: str = "sari",
                   user_id: int | None = None) -> dict:
    """A text message (a command) from a user in a chat."""
    user = {"id": user_id or abs(chat_id), "is_bot": False, "first_name": "Sari", "username": username}
    chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
    update = {"message": {"message_id": 1, "date": int(time.time()), "chat": chat, "from": user, "text": text}}
    if update_id is not None:
        update["update_id"] = update_id
    return update


def callback_update(chat_id: int, data: str, message_id: int, update_id: int | None = None,
                    username: str = "sari") -> dict:
    """A press of an inline button under message ``message_id``."""
    user = {"id": abs(chat_id), "is_bot": False, "first_name": "Sari", "username": username}
    chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
    update = {"callback_query": {
        "id": f"cb{message_id}{data}", "chat_instance": "1", "data": data, "from": user,
        "message": {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": "..."}}}
    if update_id is not None:
        update["update_id"] = update_id
    return update
