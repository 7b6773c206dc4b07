"""The fan-out baseline: what a Python user would write today, encode/broadcaster's README pattern.

A Starlette app; each ``/ws/prices`` connection subscribes to the Redis channel the engine
publishes to and sends every message on as its own frame. It runs in its own virtual
environment (bench/.venv-baseline, made by bench/baseline.py) and never imports Pasarwatch.

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn baseline_app:app --app-dir bench
"""
import contextlib
import os

import anyio
from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

CHANNEL = "pw:events"
broadcast = Broadcast(os.environ["REDIS_URL"])


async def prices_ws(websocket):
    await websocket.accept()
    async with anyio.create_task_group() as task_group:
        async def run_receiver():
            await receiver(websocket)
            task_group.cancel_scope.cancel()

        task_group.start_soon(run_receiver)
        await sender(websocket)


async def receiver(websocket):
    # The README's chat room publishes what clients say; price clients only subscribe.
    async for _ in websocket.iter_text():
        pass


async def sender(websocket):
    async with broadcast.subscribe(channel=CHANNEL) as subscriber:
        async for event in subscriber:
            await websocket.send_text(event.message)


@contextlib.asynccontextmanager
async def lifespan(app):
    await broadcast.connect()
    yield
    await broadcast.disconnect()


app = Starlette(routes=[WebSocketRoute("/ws/prices", prices_ws)], lifespan=lifespan)
