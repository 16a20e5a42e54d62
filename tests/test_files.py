"""Result files written atomically, with the mode a plain open gives under the user's umask (a shared
results folder stays readable by the group), not mkstemp's 0600."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_result_file_gets_the_mode_of_the_users_umask(tmp_path, umask, mode):
    """In a process started with `umask`, as a user's shell starts a stage: write_json's file has the
    mode a plain open would give it."""
    path = tmp_path / "summary.json"
    program = f"from tasks.files import write_json; write_json({{'fid': 1.0}}, {str(path)!r})"
    subprocess.run([sys.executable, "-c", program], cwd=PROJECT, check=True, preexec_fn=lambda: os.umask(umask))
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert not list(tmp_path.glob(".summary.json.*"))  # no temporary file left
