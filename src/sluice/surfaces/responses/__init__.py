"""OpenAI's Responses API (``/v1/responses``): created, streamed, stored, retrieved, continued and counted.

Passed through to upstreams that serve it themselves (OpenAI, Azure's v1 routes, any provider with
``responses_api: true``), translated through the canonical model for every other upstream kind. Stored responses
live in Sluice's own store (``sluice.stored_responses``) either way, so retrieval and ``previous_response_id`` work
the same whatever served the answer, scoped to the caller's workspace and owner.
"""
