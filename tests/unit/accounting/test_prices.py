"""Cost in integer nanos: exact sums, reservations rounded up, well-known defaults by prefix."""

from __future__ import annotations

from sluice.accounting.prices import DEFAULT_PRICES, FREE, ModelPrice, PriceBook, default_price
from sluice.canonical import Usage


def test_cost_counts_cached_input_at_its_own_price() -> None:
    price = ModelPrice(input=2.5, output=10.0, cached_input=1.25)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    # 600 fresh x 2.5 + 400 cached x 1.25 + 100 x 10 = 1500 + 500 + 1000 = 3000 micro-units
    assert price.cost_nanos(usage) == 3_000_000


def test_worst_case_is_never_below_the_actual_cost() -> None:
    price = ModelPrice(0.15, 0.6)
    assert price.worst_case_nanos(7, 3) == 3 * 600 + 7 * 150 >= price.cost_nanos(Usage(7, 3))


def test_dated_snapshots_get_the_family_price() -> None:
    assert default_price("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert default_price("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert default_price("llama3:8b") is None


def test_price_book_precedence() -> None:
    book = PriceBook({"public": ModelPrice(9, 9)})
    deployment, model = ModelPrice(1, 1), ModelPrice(2, 2)
    assert book.price("public", deployment, model, "gpt-4o") == ModelPrice(9, 9)
    assert book.price("other", deployment, model, "gpt-4o") == deployment
    assert book.price("other", None, model, "gpt-4o") == model
    assert book.price("other", None, None, "gpt-4o") == DEFAULT_PRICES["gpt-4o"]
    assert book.price("other", None, None, "unknown") == FREE
