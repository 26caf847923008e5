"""Parameter values and time points: converting what users supply to EQL's types
(`convert_param` for a parameter, `convert` for text and literals).

Pure functions; failures raise `ValueError` with a message the binder turns into a diagnostic.
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
from typing import Any

from eql import types
from eql.types import Kind, Type


def parse_time(text: str) -> dt.datetime:
    """An ISO date or timestamp; naive values are UTC."""
    s = text.strip()
    try:
        if len(s) == 10:
            d = dt.date.fromisoformat(s)
            return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
        value = dt.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or timestamp; use '2026-11-01' or '2026-11-01T10:00:00Z'"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def to_utc(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def minus(t: dt.datetime, n: int, unit: str) -> dt.datetime:
    """`t - n units`; months and years are calendar steps (the day is clamped to month end)."""
    if unit == "HOUR":
        return t - dt.timedelta(hours=n)
    if unit == "DAY":
        return t - dt.timedelta(days=n)
    if unit == "WEEK":
        return t - dt.timedelta(weeks=n)
    months = n * (12 if unit == "YEAR" else 1)
    total = t.year * 12 + (t.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    if year < 1:
        raise ValueError("the window reaches before year 1")
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day)


def infer_type(value: Any) -> Type:
    if isinstance(value, bool):
        return types.BOOL
    if isinstance(value, int):
        return types.INT
    if isinstance(value, float):
        return types.FLOAT
    if isinstance(value, decimal.Decimal):
        exp = value.as_tuple().exponent
        scale = max(0, -exp) if isinstance(exp, int) else 0
        return types.decimal(38, min(scale, 18))
    if isinstance(value, dt.datetime):
        return types.TIMESTAMP
    if isinstance(value, dt.date):
        return types.DATE
    if value is None:
        return types.NULL
    return types.STRING


def convert_param(value: Any, t: Type) -> Any:
    """A parameter's value as type `t`. Text (a `--param name=value`, a JSON string) is read as
    `t` as `convert` reads it; a value with a type of its own must have `t`'s: a number is not
    text (`{"city": 5}` for `city = $city`) and a timestamp with a time of day is not a date.
    Raises ValueError saying what was expected."""
    number = isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)
    if t.kind is Kind.STRING and number:
        raise ValueError(f'expected text, got the number {value} (text is in quotes: "{value}")')
    if t.kind is Kind.DATE and isinstance(value, dt.datetime):
        utc = to_utc(value)
        if utc.time() != dt.time(0):
            raise ValueError(
                f"expected a date, got the timestamp {utc.isoformat()}, which has a time of day"
            )
        return utc.date()
    return convert(value, t)


def convert(value: Any, t: Type) -> Any:
    """`value` (from JSON or a `k=v` command line) as a value of type `t`."""
    if value is None:
        return None
    k = t.kind
    if k is Kind.STRING:
        if isinstance(value, str | int | float | decimal.Decimal) and not isinstance(value, bool):
            text = str(value)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"the text holds a lone surrogate at character {exc.start + 1}, which is not "
                    "a Unicode character"
                ) from None
            return text
        raise ValueError(f"expected text, got {type(value).__name__}")
    if k is Kind.INT:
        if isinstance(value, bool):
            raise ValueError("expected a whole number, got true/false")
        number: int | None = None
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if number is None:
            raise ValueError(f"expected a whole number, got {value!r}")
        if not -(2**63) <= number < 2**63:
            raise ValueError(f"{number} is outside the 64-bit whole numbers")
        return number
    if k is Kind.FLOAT:
        if isinstance(value, bool):
            raise ValueError("expected a number, got true/false")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
    if k is Kind.DECIMAL:
        if isinstance(value, bool):
            raise ValueError("expected a number, got true/false")
        try:
            d = decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation:
            raise ValueError(f"expected a decimal number, got {value!r}") from None
        if not d.is_finite():
            raise ValueError(f"expected a finite number, got {value!r}")
        return d
    if k is Kind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"expected true or false, got {value!r}")
    if k is Kind.DATE:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError(f"expected a date (YYYY-MM-DD), got {value!r}")
    if k is Kind.TIMESTAMP:
        if isinstance(value, dt.date):
            return to_utc(value)
        if isinstance(value, str):
            return parse_time(value)
        raise ValueError(f"expected a timestamp, got {value!r}")
    if k is Kind.NULL:
        return value
    raise ValueError(f"parameters of type {t} are not supported")
