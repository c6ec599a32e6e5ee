"""scripts/make-venv.sh, the first thing `make demo` and `make test` run on a fresh machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make-venv.sh"


def _fake_python(directory: Path, body: str) -> Path:
    python = directory / "python3"
    python.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    python.chmod(0o755)
    return python


def test_an_old_python_is_refused_with_what_to_do(tmp_path: Path) -> None:
    old = _fake_python(tmp_path, 'if [ "$1" = "-V" ]; then echo "Python 3.9.2"; exit 0; fi\nexit 1')
    result = subprocess.run(
        ["sh", str(SCRIPT), str(old), str(tmp_path / "venv")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "needs Python 3.11 or newer" in result.stderr and "Python 3.9.2" in result.stderr
    assert "PYTHON=python3.12" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_a_supported_python_gets_a_venv_with_pip(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = subprocess.run(["sh", str(SCRIPT), sys.executable, str(venv)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode == 0 and "pip" in pip.stdout
    assert not Path(f"{venv}.err").exists()
