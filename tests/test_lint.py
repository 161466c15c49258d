import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if not exe:
        pytest.skip("ruff is not installed in this environment (tools/dev-env.sh installs it)")
    r = subprocess.run([exe, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_core_never_imports_the_webui():
    for f in (ROOT / "lib_memstab").rglob("*.py"):
        src = f.read_text()
        assert "import modules" not in src and "from modules" not in src, f
