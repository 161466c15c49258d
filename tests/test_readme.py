"""The library example (docs/method.md) must run as written and print what it says it prints; the README gives the
test command CI runs, and every document the README links to exists."""

import contextlib
import io
import re

from conftest import ROOT


def test_library_example_runs():
    text = (ROOT / "docs" / "method.md").read_text()
    block = re.search(r"## The library.*?```python\n(.*?)```", text, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    text_lines = [ln.strip() for ln in re.search(r"It prints.*?\n\n(.*?)\n\n", text, re.S).group(1).splitlines()]
    assert lines == text_lines, (lines, text_lines)


def test_ci_runs_the_readme_test_command():
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith(("#", "set "))]
    assert ci[-1] in (ROOT / "README.md").read_text()


def test_readme_links_resolve_and_it_stays_a_user_guide():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((ROOT / link).exists() for link in links), links
    assert "shared/research" not in text, "the README cites only what the repository holds"
    assert len(text.split()) < 2000
