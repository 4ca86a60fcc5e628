"""``GET /v1/queue``: the caller's own requests waiting for a slot, with their place in line and estimated wait."""

from __future__ import annotations

import orjson

from sluice.call import Call
from sluice.pipeline import Gateway
from sluice.server.exchange import Exchange
from sluice.surfaces.openai.format import OPENAI
from sluice.surfaces.request import run


async def queue_status(gw: Gateway, ex: Exchange) -> None:
    async def handler(gw: Gateway, ex: Exchange, call: Call) -> None:
        principal = await gw.identify(ex, call)
        call.recorded = True  # a status read is not usage: no usage record for it
        waiting = await gw.scheduler.waiting(principal)
        await ex.respond(200, orjson.dumps({"object": "list", "data": waiting}))

    await run(gw, ex, OPENAI, "queue", handler)
