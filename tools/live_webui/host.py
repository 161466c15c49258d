"""The live tests' webui (tests/live, through the ``live`` fixture of tests/conftest.py): a running one named by
MEMSTAB_LIVE_URL (MEMSTAB_LIVE_LOG, MEMSTAB_LIVE_FAULT_FLAG optional), or one started here from MEMSTAB_LIVE_WEBUI (a
webui source tree) and MEMSTAB_LIVE_PYTHON (its venv's python): this checkout linked into its extensions/, on a free
local port, CPU only, API only, with the live kit's fault injector, stopped again at the end (MEMSTAB_LIVE_CKPT: the
checkpoint to start with; MEMSTAB_LIVE_START_S: how long to wait for it, default 600).

    with started(webui_root, python, ckpt=None, log=path, fault_flag=path) as url: ...

The flags are the ones tools/live_webui/setup*.sh print (A1111, or Forge and reForge, told apart by their
modules_forge/ folder); the environment is passed through, so set HF_HOME / HF_HUB_OFFLINE as for a manual start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
FAULT_INJECTOR = HERE / "fault_injector"
COMMON = ["--skip-prepare-environment", "--skip-torch-cuda-test", "--no-download-sd-model", "--api", "--nowebui",
          "--skip-version-check", "--server-name", "127.0.0.1"]
A1111 = ["--use-cpu", "all", "--no-half"]
FORGE = ["--skip-install", "--always-cpu"]  # Forge 2 and reForge


SKIP = ("no live webui: set MEMSTAB_LIVE_URL (a running webui with --api) or MEMSTAB_LIVE_WEBUI and "
        "MEMSTAB_LIVE_PYTHON (one to start)")


@dataclass
class Live:
    url: str
    log: str | None  # the server's log, scanned for tracebacks naming the extension
    fault_flag: str | None  # the path the fault injector watches (check 13), where the host has it


def configured() -> bool:
    e = os.environ
    return bool(e.get("MEMSTAB_LIVE_URL") or (e.get("MEMSTAB_LIVE_WEBUI") and e.get("MEMSTAB_LIVE_PYTHON")))


@contextlib.contextmanager
def from_env(folder: Path):
    """The configured webui as a Live (started in ``folder``'s log and flag files if it is to be started)."""
    e = os.environ
    if e.get("MEMSTAB_LIVE_URL"):
        yield Live(e["MEMSTAB_LIVE_URL"], e.get("MEMSTAB_LIVE_LOG") or None, e.get("MEMSTAB_LIVE_FAULT_FLAG") or None)
        return
    log, flag = folder / "server.log", folder / "fault.flag"
    with started(Path(e["MEMSTAB_LIVE_WEBUI"]), Path(e["MEMSTAB_LIVE_PYTHON"]), e.get("MEMSTAB_LIVE_CKPT") or None,
                 log, flag, float(e.get("MEMSTAB_LIVE_START_S", "600"))) as url:
        yield Live(url, str(log), str(flag))


class HostError(RuntimeError):
    """The webui cannot be started as asked (the message says why)."""


def flavour(root: Path) -> str:
    """"forge" for Forge and reForge (they ship modules_forge/), else "a1111"; HostError if root is no webui."""
    if not (root / "launch.py").is_file() or not (root / "modules").is_dir():
        raise HostError(f"{root} is not a webui source tree (no launch.py and modules/)")
    return "forge" if (root / "modules_forge").is_dir() else "a1111"


def flags(root: Path, port: int, ckpt: str | None = None) -> list[str]:
    out = COMMON + (FORGE if flavour(root) == "forge" else A1111) + ["--port", str(port)]
    return out + (["--ckpt", ckpt] if ckpt else [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def link(root: Path, name: str, target: Path) -> None:
    """extensions/<name> -> target, created if missing; HostError if it is something else (never replaced)."""
    path = root / "extensions" / name
    if path.is_symlink() or path.exists():
        if path.resolve() != target.resolve():
            raise HostError(f"{path} exists and is not a link to {target}: the live tests would test that instead")
        return
    path.parent.mkdir(exist_ok=True)
    path.symlink_to(target, target_is_directory=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Until the extension's own route answers (the webui has loaded its scripts and a model)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise HostError(f"the webui exited with {proc.returncode} while starting; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/memstab/v1/profiles", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(2)
    raise HostError(f"the webui did not answer within {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def started(root: Path, python: Path, ckpt: str | None, log: Path, fault_flag: Path | None = None,
            timeout: float = 600.0):
    """The running webui's URL; the server (its whole process group) is stopped on exit."""
    root, python = Path(root), Path(python)
    if not python.is_file():
        raise HostError(f"{python} is not the webui's python")
    link(root, "sd-webui-memstab", CHECKOUT)
    env = dict(os.environ)
    if fault_flag is not None:
        link(root, "memstab-fault-injector", FAULT_INJECTOR)
        env["MEMSTAB_FAULT_FLAG"] = str(fault_flag)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(python), "launch.py", *flags(root, port, ckpt)], cwd=root, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        wait_ready(url, proc, timeout, log)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
