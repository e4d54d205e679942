"""A server-only install in a fresh venv: `pip install --no-index --find-links <wheelhouse> .`
from a copy of the checkout's sources, nothing downloaded (scripts/wheelhouse fills the
wheelhouse during scripts/test's setup)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(os.environ.get("HUBBUB_WHEELHOUSE", REPO_ROOT / ".cache" / "wheelhouse"))
INSTALL_TIMEOUT = 600.0
SOURCES = ("pyproject.toml", "setup.py", "README.md")


def wheelhouse_stamp() -> str:
    """What scripts/wheelhouse writes to .complete for the current pyproject.toml."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        meta = tomllib.load(f)
    lines = meta["project"]["dependencies"] + meta["build-system"]["requires"]
    tag = f"{sys.version_info[0]}.{sys.version_info[1]} {sysconfig.get_platform()}"
    return "\n".join([tag, *lines])


def wheelhouse_missing() -> str | None:
    """Why the server-only venv cannot be built here, or None."""
    stamp = WHEELHOUSE / ".complete"
    if not stamp.is_file():
        return (f"no complete wheelhouse at {WHEELHOUSE}: run scripts/wheelhouse (scripts/test's "
                "setup does)")
    if stamp.read_text().strip() != wheelhouse_stamp():
        return (f"the wheelhouse at {WHEELHOUSE} predates pyproject.toml's dependencies: run "
                "scripts/wheelhouse (scripts/test's setup does)")
    return None


def clean_env() -> dict[str, str]:
    """This environment minus pip's configuration and anything that points Python at the
    checkout or at this interpreter's packages."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONSAFEPATH"] = "1"  # `python -m hubbub` from the checkout must not find src/
    return env


def build_server_venv(where: Path) -> Path:
    """A venv at `where/venv` with `pip install .` (no extras) from a copy of the sources;
    returns its python. The copy keeps the checkout free of build/ and egg-info."""
    source = where / "source"
    source.mkdir(parents=True)
    for name in SOURCES:
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
    venv = where / "venv"
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env,
                   timeout=INSTALL_TIMEOUT)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links",
         str(WHEELHOUSE), str(source)],
        capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT)
    if install.returncode != 0:
        raise RuntimeError(f"pip install . failed ({install.returncode}):\n{install.stdout}\n"
                           f"{install.stderr}")
    return python
