"""What the pages of one mounted UI are given when they are registered: how to reach the gateway's API, the
database holding the chat history, and the rule that names a browser's address.

It is built once by :func:`sluice.web.install_ui` from the gateway's services and handed to every page function
(see :mod:`sluice.web.pages`); nothing in the UI reaches for services any other way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from sluice.identity.network import TrustedProxies
from sluice.store.db import Database

TIMEOUT = httpx.Timeout(30.0, read=600.0)  # reads wait for streamed answers, which may pause in a queue


@dataclass
class UiContext:
    base_url: str  # how this process reaches its own HTTP server (loopback)
    db: Database  # the chat history (the UI's own tables), read strictly by the signed-in user's id
    proxies: Callable[[], TrustedProxies]  # read per call: the trusted proxies may change while the gateway runs
    request_id_header: str  # the header the chat page names its calls with, to find their usage records
    currency: str = "USD"  # the price table's, shown with every amount
    _http: httpx.AsyncClient | None = field(default=None, repr=False)

    def http(self) -> httpx.AsyncClient:
        """The pooled client for the gateway's API (made on first use, inside the running loop)."""
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
