"""The adapter's console output: the host's error reporter where there is one, and untrusted text made safe to print
(repr, cut), so that a key or value sent by a client cannot forge a log line."""

from __future__ import annotations

import sys
import traceback


def report(message: str, exc: BaseException | None = None) -> None:
    """The host's error reporter (prints the message and traceback) where there is one."""
    try:
        from modules import errors

        if exc is not None:
            try:
                raise exc
            except BaseException:
                errors.report(message, exc_info=True)
        else:
            errors.report(message)
        return
    except ImportError:
        pass
    print(message, file=sys.stderr)
    if exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
