"""Agent frameworks as their users run them, through Sluice against the built-in mock: openai-agents with its
default model settings (the Responses API, strict function tools) runs a one-tool agent, and pydantic-ai's
``"openai:..."`` model returns a typed result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import agents
import pydantic
import pydantic_ai
import pytest
from openai import AsyncOpenAI

from tests.support.server import SluiceServer, make_settings


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")))) as server:
        yield server


async def test_openai_agents_runs_a_one_tool_agent(gateway: SluiceServer) -> None:
    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"It is sunny in {city}."

    agents.set_tracing_disabled(True)  # the default exporter would send traces to OpenAI
    client = AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.master_key, max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agent = agents.Agent(name="forecaster", instructions="Use the tool.", model="mock-1", tools=[get_weather])
    try:
        result = await agents.Runner.run(agent, "What is the weather in Paris?")
    finally:
        await client.close()
    assert len(calls) == 1 and isinstance(calls[0], str)
    assert isinstance(result.final_output, str) and result.final_output
    kinds = [type(item).__name__ for item in result.new_items]
    assert kinds == ["ToolCallItem", "ToolCallOutputItem", "MessageOutputItem"]


class Forecast(pydantic.BaseModel):
    city: str
    days: int = pydantic.Field(ge=1, le=14)


async def test_pydantic_ai_openai_model_returns_a_typed_result(
    gateway: SluiceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", gateway.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", gateway.master_key)
    agent = pydantic_ai.Agent("openai:mock-1", output_type=Forecast, instructions="Forecast the weather.")
    async with agent:  # closes the model's HTTP client (run_sync would leave it to a closed loop)
        result = await agent.run("Forecast for Paris")
    assert isinstance(result.output, Forecast) and 1 <= result.output.days <= 14
