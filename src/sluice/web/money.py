"""Money as people read it: the currency's symbol (or code), and as many digits as the amount needs."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "CHF": "CHF "}


def money(amount: float | None, currency: str = "USD") -> str:
    """'$1.23', '$0.0042', '$0.000018', '€12,345.60', '$0' — cents from a cent up, two significant digits below
    (so a fraction of a cent per answer still reads as something), never an exponent."""
    if amount is None:
        return "—"
    symbol = SYMBOLS.get(currency)
    sign = "-" if amount < 0 else ""
    value = Decimal(str(abs(amount)))
    if value < Decimal("0.01"):
        # two significant digits: scaled by the place of the first one (-4 for 0.00042)
        value = value.quantize(Decimal(1).scaleb(value.adjusted() - 1), ROUND_HALF_UP) if value else value
    if value == 0:
        digits = "0"
    elif value >= Decimal("0.01"):
        digits = f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    else:
        digits = f"{value.normalize():f}"
    return f"{sign}{symbol}{digits}" if symbol is not None else f"{sign}{digits} {currency}"
