"""The HTTP edge: the raw-ASGI exchange, the front dispatcher, the connection protocol and serving options.

``exchange.py`` (one request and its response on raw ASGI: body limits, disconnect watch) is a leaf that the
surfaces, the pipeline and identity use; ``dispatch.py`` (exact ``(method, path)`` to a proxy handler, else the
FastAPI app) sits above the surfaces; ``protocol.py`` and ``coalesce.py`` shape connections (uvicorn's httptools
protocol, bounded, one send per loop turn); ``serving.py`` holds the options ``sluice serve`` and the tests share.

May import: :mod:`sluice.config`, :mod:`sluice.errors`, :mod:`sluice.observability`, and for the dispatcher
:mod:`sluice.pipeline` and :mod:`sluice.surfaces`.
"""
