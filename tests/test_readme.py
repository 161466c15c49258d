"""The README's example must run as written and print what the README says it prints."""

import contextlib
import io
import re

from conftest import ROOT


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Use the library.*?```python\n(.*?)```", text, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ordinary  clean"), lines
    assert lines[1].startswith("memorized memorized (strong)"), lines


def test_ci_runs_the_readme_test_command():
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith(("#", "set "))]
    assert ci[-1] in (ROOT / "README.md").read_text()
