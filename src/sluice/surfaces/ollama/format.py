"""The Ollama surface's error rendering: ``{"error": "..."}`` with the status, and an error line mid-stream."""

from __future__ import annotations

import orjson

from sluice.codecs.ollama.stream import error_body, error_line
from sluice.errors import SluiceError


class OllamaFormat:
    name = "ollama"

    def error_response(self, error: SluiceError) -> tuple[int, bytes]:
        return error.status, orjson.dumps(error_body(error))

    def stream_error(self, error: SluiceError) -> bytes:
        return error_line(error)


OLLAMA = OllamaFormat()
