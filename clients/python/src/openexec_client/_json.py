"""JSON as the OpenExec formats need it: strict parsing and RFC 8785 (JCS).

Strict parsing refuses what a strict JSON reader refuses and Python's
``json`` module lets through: ``NaN``/``Infinity``, numbers out of the
double range, lone surrogates in strings and (optionally) repeated keys.
"""

from __future__ import annotations

import json
import math
from typing import Any


class JSONError(ValueError):
    """Text that is not strict JSON."""


def _no_constant(name: str) -> Any:
    raise JSONError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONError(f"number out of range: {text}")
    return value


def _pairs_strict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JSONError(f"duplicate field `{key}`")
        out[key] = value
    return out


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


# Nesting a strict reader refuses (serde_json's limit: 128 open arrays or
# objects at once).
MAX_DEPTH = 127


def _depth(value: Any) -> int:
    """Greatest number of arrays and objects open at once, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def is_json(text: str) -> bool:
    """Whether the text is one JSON value, read as a validator that skips
    values without building them does: any nesting, any number size."""
    try:
        json.loads(text, parse_constant=_no_constant, parse_float=lambda t: 0.0)
    except (ValueError, RecursionError):
        return False
    return True


def loads(text: str | bytes, *, unique_keys: bool = True) -> Any:
    """Parses strict JSON; with ``unique_keys`` a repeated key is an error,
    without it the last one wins."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONError("invalid UTF-8") from e
    try:
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_float,
            # A strict reader takes "-0" for the float -0.0, not the integer 0
            # (so it is no valid u64, as in serde_json).
            parse_int=lambda t: -0.0 if t == "-0" else int(t),
            object_pairs_hook=_pairs_strict if unique_keys else dict,
        )
    except JSONError:
        raise
    except (ValueError, RecursionError) as e:
        raise JSONError(str(e)) from e
    if _has_lone_surrogate(value):
        raise JSONError("lone surrogate in a string")
    if _depth(value) > MAX_DEPTH:
        raise JSONError("recursion limit exceeded")
    return value


def _number(value: int | float) -> str:
    """A number as ECMAScript's Number.prototype.toString writes it (RFC 8785 §3.2.2.3)."""
    if isinstance(value, int):
        if abs(value) < 2**53:
            return str(value)
        value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError("NaN and infinities have no JSON form")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript does.
    mantissa, _, exp = repr(abs(value)).partition("e")
    int_part, _, frac = mantissa.partition(".")
    digits = (int_part + frac).lstrip("0")
    # Decimal exponent n such that value = 0.digits × 10^n.
    if int_part == "0":
        n = -(len(frac) - len(frac.lstrip("0")))
    else:
        n = len(int_part)
    n += int(exp) if exp else 0
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        head = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def _string(value: str) -> str:
    # json.dumps without ensure_ascii escapes exactly what RFC 8785 does:
    # quote, backslash and U+0000..U+001F (short forms where they exist,
    # else \u00xx in lowercase).
    return json.dumps(value, ensure_ascii=False)


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value."""
    return _canonical_text(value).encode("utf-8")


def _canonical_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical_text(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_string(k) + ":" + _canonical_text(value[k]) for k in keys) + "}"
    raise TypeError(f"{type(value).__name__} has no JSON form")
