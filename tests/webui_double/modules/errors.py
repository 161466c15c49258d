"""errors.report: the host prints the message and the traceback and carries on; the double records them too."""

import sys
import traceback

REPORTED: list[tuple[str, str]] = []


def report(message: str, *, exc_info: bool = False) -> None:
    tb = traceback.format_exc() if exc_info else ""
    REPORTED.append((message, tb))
    print("***", message, file=sys.stderr)
    if tb:
        print(tb, file=sys.stderr)
