"""The OpenAI surface's error rendering (complete responses and mid-stream events)."""

from __future__ import annotations

import orjson

from sluice.codecs.openai.errors import error_body, error_status
from sluice.codecs.openai.stream import error_frame
from sluice.errors import SluiceError


class OpenAIFormat:
    name = "openai"

    def error_response(self, error: SluiceError) -> tuple[int, bytes]:
        return error_status(error), orjson.dumps(error_body(error))

    def stream_error(self, error: SluiceError) -> bytes:
        return error_frame(error)


OPENAI = OpenAIFormat()
