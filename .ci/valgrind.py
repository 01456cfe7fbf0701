"""make sanitize, second half: valgrind memcheck on a fork loop that installs,
reconfigures and forks; fails if any error or leak record involves the
extension (Python's own allocations are not ours to judge)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

LOOP = r"""
import os, objcprefork, threading
import ctypes; ctypes.CDLL("libobjc.so.4"); ctypes.CDLL(os.environ["FIXTURES"] + "/libfixtures.so")
for round_ in range(20):
    objcprefork.install(["FXAlpha", "FXMissing"], defaults=round_ % 2 == 0)
    objcprefork.add_classes(["FXBeta", "FXAlpha"])
    objcprefork.set_classes(["FXGamma", "FXSub"])
    objcprefork.status(); objcprefork._native.core.inspect(None)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    objcprefork.uninstall()
objcprefork.set_classes([])
print("fork loop done")
"""


def main() -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "objc"))
    from build import build

    fixtures = tempfile.mkdtemp(prefix="objcprefork-valgrind-")
    build(Path(fixtures))
    log = os.path.join(fixtures, "memcheck.log")
    cmd = ["valgrind", "--tool=memcheck", "--leak-check=full",
           "--show-leak-kinds=definite,indirect", "--num-callers=30", f"--log-file={log}",
           sys.executable, "-c", LOOP]
    env = {**os.environ, "PYTHONMALLOC": "malloc", "FIXTURES": fixtures}
    result = subprocess.run(cmd, env=env, cwd=fixtures, capture_output=True, text=True)
    if result.returncode != 0 or "fork loop done" not in result.stdout:
        print(result.stdout, result.stderr)
        return 1
    with open(log) as f:
        text = f.read()
    records = re.split(r"\n==\d+== \n", text)
    ours = [r for r in records if "_objcprefork" in r and ("Invalid" in r or "uninitialised" in r
                                                           or "definitely lost" in r
                                                           or "indirectly lost" in r)]
    summary = [line for line in text.splitlines() if "ERROR SUMMARY" in line or "lost:" in line]
    print("valgrind memcheck (whole process, Python included):")
    print("\n".join(summary[-6:]))
    if ours:
        print(f"\n{len(ours)} record(s) involve the extension:\n" + "\n\n".join(ours))
        return 1
    print("no error or leak record involves objcprefork's extension")
    return 0


if __name__ == "__main__":
    sys.exit(main())
