"""Answers as HTML: Markdown (tables, highlighted code), LaTeX math rendered on the server, and nothing that makes
the browser fetch anything by itself.

The pipeline, all in this process: math is cut out of the text before the Markdown renderer can mistake its
``_`` and ``*`` for emphasis, rendered by KaTeX (the ``pykatex`` package: KaTeX compiled into the wheel, so it
works offline) to MathML, which browsers draw natively (no fonts or style sheets to load); the HTML is then
sanitised with an allowlist (``nh3``: no scripts, handlers, styles beyond table alignment, or ``javascript:``
links), and every image that is not inline data becomes a link the reader may click. An answer written by a
model may be steered by whatever it read (prompt injection): an image it emits to an outside URL would otherwise
be fetched as the page renders, carrying whatever the URL encodes to whoever runs that server. Links open in a new
tab without a referrer.
"""

from __future__ import annotations

import html
import re
import secrets
from functools import lru_cache
from urllib.parse import urlsplit

import markdown2
import nh3
import pykatex
from pygments.formatters import HtmlFormatter

EXTRAS = ["fenced-code-blocks", "tables", "strike", "cuddled-lists"]

MATHML_TAGS = {
    "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mspace", "mtext", "msup", "msub",
    "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mlabeledtr",
    "mstyle", "mpadded", "mphantom", "menclose", "merror", "mglyph",
}  # fmt: skip
MATHML_ATTRIBUTES = {
    "xmlns", "display", "encoding", "mathvariant", "mathcolor", "mathbackground", "mathsize", "stretchy", "fence",
    "separator", "lspace", "rspace", "minsize", "maxsize", "symmetric", "largeop", "movablelimits", "accent",
    "accentunder", "form", "linethickness", "columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines",
    "rowlines", "frame", "framespacing", "equalrows", "equalcolumns", "displaystyle", "scriptlevel", "width",
    "height", "depth", "voffset", "notation", "side", "minlabelspacing", "href",
}  # fmt: skip
ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(MATHML_ATTRIBUTES) - {"href"} for tag in MATHML_TAGS},
    "*": {"class", "title"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "title"},
    "td": {"align", "colspan", "rowspan", "style"},
    "th": {"align", "colspan", "rowspan", "style", "scope"},
    "ol": {"start"},
}
TAGS = set(nh3.ALLOWED_TAGS) | MATHML_TAGS

# Math as people write it to models and models write back: $$…$$ and \[…\] on their own, \(…\) and $…$ inline.
# A single $ opens math only before a non-space and closes only after a non-space not followed by a digit
# (Pandoc's rule), so "$5 and $10" stays money; inline math never spans a backtick (code comes first).
_MATH = re.compile(
    r"(?P<code>`+)(?P<code_body>.*?)(?P=code)"  # inline code: left alone
    r"|\$\$(?P<display>.+?)\$\$"
    r"|\\\[(?P<bracket>.+?)\\\]"
    r"|\\\((?P<paren>.+?)\\\)"
    r"|(?<![\\$])\$(?P<inline>[^\s$`](?:[^$\n`]*?[^\s$\\`])?)\$(?!\d)",
    re.DOTALL,
)
_IMG = re.compile(r"<img\b([^>]*)>")
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')


@lru_cache(maxsize=1024)
def math_html(tex: str, display: bool) -> str:
    """KaTeX's MathML for ``tex`` (a formula KaTeX cannot parse comes back as its source, marked as an error)."""
    rendered = pykatex.renderToString(tex, displayMode=display, output="mathml", throwOnError=False)
    return f'<span class="{"math-display" if display else "math-inline"}">{rendered}</span>'


def cut_math(text: str) -> tuple[str, dict[str, str]]:
    """``text`` with each formula replaced by a placeholder the Markdown renderer leaves alone, and the HTML each
    placeholder stands for."""
    nonce = secrets.token_hex(6)
    formulas: dict[str, str] = {}

    def replace(found: re.Match[str]) -> str:
        if found.group("code") is not None:
            return found.group(0)
        display = found.group("display") or found.group("bracket")
        tex = display if display is not None else (found.group("paren") or found.group("inline") or "")
        placeholder = f"sluicemath{nonce}n{len(formulas)}x"
        formulas[placeholder] = math_html(tex.strip(), display is not None)
        return placeholder

    return _MATH.sub(replace, text), formulas


def _remote_image(attributes: str) -> str:
    """An image tag (already sanitised: quoted, escaped attributes) as what the page shows for it."""
    values = dict(_ATTRIBUTE.findall(attributes))
    source = html.unescape(values.get("src", ""))
    alt = values.get("alt", "")
    if not source:  # a scheme the sanitiser does not allow (data:, javascript:…): nothing to offer
        return f'<span class="remote-image">Image not shown: {alt or "image"}</span>'
    host = urlsplit(source).hostname or "this site"
    label = f"{alt or 'image'} ({html.escape(host)})"
    return (
        f'<a class="remote-image" href="{html.escape(source)}" target="_blank" rel="noopener noreferrer nofollow"'
        f' title="Opens the image from {html.escape(host)} in a new tab">Image not loaded: {label}</a>'
    )


def safe_html(markup: str) -> str:
    """Sanitise rendered Markdown and defuse its images (see the module's docstring)."""
    cleaned = nh3.clean(
        markup,
        tags=TAGS,
        attributes=ATTRIBUTES,
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return _IMG.sub(lambda found: _remote_image(found.group(1)), cleaned)


def markdown_html(text: str) -> str:
    """Markdown with math, as HTML still to be passed through :func:`safe_html`."""
    cut, formulas = cut_math(text)
    rendered = markdown2.markdown(cut, extras=EXTRAS)
    for placeholder, formula in formulas.items():
        rendered = rendered.replace(placeholder, formula)
    return str(rendered)


def render(text: str) -> str:
    return safe_html(markdown_html(text))


@lru_cache(maxsize=1)
def code_style() -> str:
    """The highlighting colours of fenced code, light and dark."""
    light = HtmlFormatter(nobackground=True).get_style_defs(".codehilite")
    dark = HtmlFormatter(nobackground=True, style="github-dark").get_style_defs(".body--dark .codehilite")
    return f"{light}\n{dark}"
