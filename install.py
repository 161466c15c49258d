"""Run by the webui at start-up (in a subprocess). memstab needs nothing beyond what the webui has: torch and numpy.
Say so plainly if they are too old, instead of failing later inside a generation."""

import sys

MIN = {"torch": (1, 13), "numpy": (1, 21)}


def _version(mod) -> tuple:
    parts = []
    for piece in mod.__version__.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check() -> list:
    problems = []
    for name, need in MIN.items():
        try:
            mod = __import__(name)
        except ImportError:
            problems.append(f"{name} is not installed (need >= {'.'.join(map(str, need))})")
            continue
        if _version(mod) < need:
            problems.append(f"{name} {mod.__version__} is too old (need >= {'.'.join(map(str, need))})")
    return problems


if __name__ == "__main__" or "launch" in sys.modules:
    found = check()
    if found:
        print("[MemStab] the memorization guard will not work: " + "; ".join(found), file=sys.stderr)
    else:
        print("[MemStab] nothing to install (torch and numpy are recent enough)")
