"""The README's "Cat or dog?" block, run as written against a real `descent serve` (only the
key line is given the server's key): pictures in class folders in, the new picture's class
and probabilities out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from descent.processes import clean_env
from tests.e2e.client_flow import descent_command
from tests.e2e.helpers import free_port, process, wait_for, wait_healthy

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block() -> str:
    text = README.read_text()
    marker = text.index("<!-- cat-or-dog:")
    start = text.index("```python\n", marker) + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readme_cat_or_dog_example_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env()
    argv = [*descent_command(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")]
    log = tmp_path / "serve.log"
    with process(argv, env=env, log=log, cwd=tmp_path) as serve:
        key = wait_for(
            lambda: (m := re.search(r"^API key: (\S+)$", log.read_text(), re.M)) and m[1],
            timeout=30, what="the API key line",
        )  # fmt: skip
        wait_healthy(f"http://127.0.0.1:{port}", serve, log)
        code = readme_block()
        assert 'KEY = "dsk_..."' in code and "127.0.0.1:8000" in code
        code = code.replace('KEY = "dsk_..."', f'KEY = "{key}"').replace(
            "127.0.0.1:8000", f"127.0.0.1:{port}"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    label, _, probabilities = done.stdout.strip().partition(" ")
    assert label == "cat", done.stdout
    cat = float(re.search(r"'cat': ([0-9.]+)", probabilities)[1])  # type: ignore[index]
    assert cat > 0.5 and (tmp_path / "pets.zip").stat().st_size > 10_000
