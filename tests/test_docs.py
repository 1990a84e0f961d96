"""The documentation site builds in strict mode: a broken link, a missing anchor or a stale
reference to the code fails the build."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("mkdocs_gen_files")


def test_the_site_builds_strictly_with_generated_pages(tmp_path):
    env = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    flags = (tmp_path / "reference" / "flags" / "index.html").read_text()
    assert "--preset" in flags and "--resume" in flags and "--list-length" in flags
    presets = (tmp_path / "reference" / "presets" / "index.html").read_text()
    assert "target_update_env_steps" in presets and "efficient" in presets
    qmle = (tmp_path / "qmle" / "index.html").read_text()
    assert "uniform_grid_share" in qmle and "{{" not in qmle  # signatures filled in from the code
    api = (tmp_path / "reference" / "api" / "algorithm" / "qmle" / "index.html").read_text()
    assert "QMLEPolicy" in api and "m_greedy" in api
    assert "{{" not in (tmp_path / "index.html").read_text()
