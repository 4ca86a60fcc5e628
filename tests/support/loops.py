"""Ending the event loop of a server a test runs in a background thread, as ``asyncio.run`` ends its own."""

from __future__ import annotations

import asyncio
import gc


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the loop and close it, so no task, generator or connection outlives the server.

    A task left pending would keep its database connection to be garbage-collected later: aiosqlite's finaliser
    then hands its worker thread a future of whatever loop is current in the collecting thread, and a closed one
    makes that thread die with "Event loop is closed" (pytest reports it in whichever test runs then). So what is
    left is collected while the loop is still open, and the thread's current loop is unset once it is closed.
    """
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        gc.collect()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
