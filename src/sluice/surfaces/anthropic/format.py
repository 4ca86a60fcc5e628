"""The Anthropic surface's error rendering (complete responses and mid-stream ``event: error``)."""

from __future__ import annotations

import orjson

from sluice.codecs.anthropic.errors import error_body, error_frame, error_status
from sluice.errors import SluiceError


class AnthropicFormat:
    name = "anthropic"

    def error_response(self, error: SluiceError) -> tuple[int, bytes]:
        return error_status(error), orjson.dumps(error_body(error))

    def stream_error(self, error: SluiceError) -> bytes:
        return error_frame(error)


ANTHROPIC = AnthropicFormat()
