"""Quoting untrusted values in messages shown to users: never echo them whole."""

from __future__ import annotations


def brief(value, limit: int = 80) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (ending in '…' when cut). Cheap on huge values: a long
    string is cut before it is quoted, and an integer too large to print is described by its size."""
    limit = max(int(limit), 8)
    try:
        if isinstance(value, str):
            r = repr(value[:limit])
        elif isinstance(value, (bytes, bytearray)):
            r = repr(bytes(value[:limit]))
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
            return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
        elif isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > limit:
            return f"<a {type(value).__name__} of {len(value)} items>"
        else:
            r = repr(value)
    except Exception:  # a hostile __repr__, or one too deep to print
        return f"<a {type(value).__name__}>"
    return r if len(r) <= limit else r[: limit - 1] + "…"
