"""Runs the API and configuration suites in fresh interpreters, once against
the native core and once against the inert one: the fork handler is never
installed in this pytest process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import IN_PROCESS_SUITES, TESTS, no_core_files


@pytest.mark.parametrize("core", ["native", "inert"])
def test_api_and_config_suites(core, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'inner'}", *IN_PROCESS_SUITES],
        # A home of its own: the user's config file never leaks into the suites.
        cwd=TESTS, env={**os.environ, "OBJCPREFORK_TEST_CORE": core, "HOME": str(tmp_path),
                        "XDG_CONFIG_HOME": str(tmp_path / "no-config")},
        preexec_fn=no_core_files,
        capture_output=True, text=True, timeout=600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    print(f"{core} core: {summary}")
