"""Fake upstream servers that speak the real wire formats of OpenAI, Anthropic and Ollama.

Each fake is a real aiohttp server on 127.0.0.1 (a free port) running in its own thread, so tests can call it
from sync or async code alike::

    with FakeOpenAI() as fake:
        fake.reply = Reply(text="Hello there", prompt_tokens=12, completion_tokens=5)
        fake.enqueue(Fault("status", status=429, retry_after=1))   # the next generation request fails
        ...                                                        # point the gateway at fake.base_url
        assert fake.attempts == 2

A `Reply` is format-neutral: one scripted reply is the same answer on every fake. A `Fault` applies to the next
generation request:

- ``status``: the format's own error body with `status` (and ``Retry-After`` when `retry_after` is set);
- ``refuse``: the connection is closed without an answer;
- ``hang``: no answer for `seconds` (then the connection drops); a client that gives up is recorded;
- ``reset_mid_stream``: `after_chunks` chunks, then the TCP connection is aborted;
- ``fragments``: a correct answer written one byte per write;
- ``bad_json``: `after_chunks` good chunks, then a frame whose JSON does not parse, then a clean end;
- ``no_terminator``: a stream without its terminator ([DONE] and the finish chunk / message_stop / done line);
- ``in_band_error``: `after_chunks` chunks, then the format's mid-stream error, then a clean end;
- ``endless``: a text chunk every `interval` seconds until the client leaves;
- ``stall``: `after_chunks` chunks, `seconds` of silence, then the rest;
- ``huge``: a body of `size` bytes (a stream: at least `size` bytes of frames).

What a test reads: ``requests`` (every `RecordedRequest`), ``attempts`` (generation requests only),
``disconnects`` (clients that left before their answer was finished), ``in_flight`` / ``max_in_flight``,
``open_connections`` (TCP connections still open; with ``keep_alive = False`` every answer closes its connection,
so what stays open is a connection a client still holds mid-answer), and ``wait_for`` / ``wait_for_async`` to
poll for any of them with a bound. ``api_key`` makes a fake demand its
vendor's credentials (FakeAnthropic takes ``x-api-key`` or a Bearer token, as recent SDKs send the latter, and
always demands ``anthropic-version``).

"Chunks" are content-bearing frames; the preamble (OpenAI's role delta, Anthropic's message_start,
content_block_start and ping) is always sent first. On a non-streamed request the stream faults mean the nearest
thing for a single body (see `delivery.play_json`).
"""

from .anthropic_fake import FakeAnthropic
from .delivery import Frame, JsonAnswer, StreamPlan
from .ollama_fake import FakeOllama
from .openai_fake import FakeOpenAI
from .script import Fault, FaultKind, Finish, Reply, ToolCallSpec, embedding_vector
from .server import FakeUpstream, RecordedRequest

__all__ = [
    "FakeAnthropic",
    "FakeOllama",
    "FakeOpenAI",
    "FakeUpstream",
    "Fault",
    "FaultKind",
    "Finish",
    "Frame",
    "JsonAnswer",
    "RecordedRequest",
    "Reply",
    "StreamPlan",
    "ToolCallSpec",
    "embedding_vector",
]
