"""make test-cpython-fork: CPython's fork-related regression tests, run twice
with the same interpreter: plainly, and with objcprefork active at start-up
(OBJCPREFORK=1, the default list) and GNUstep Foundation loaded into every
process (LD_PRELOAD). Each test must end the same way in both runs."""

from __future__ import annotations

import ctypes.util
import os
import re
import subprocess
import sys

SUITES = [
    ["test_fork1", "test_wait3", "test_wait4"],
    ["test_threading", "test_os", "-m", "*fork*"],
]
RESULT = re.compile(r"^(test\w*) \(([\w.]+)\)\S* \.\.\. (ok|skipped.*|FAIL|ERROR|expected failure)",
                    re.MULTILINE)


def run(env: dict[str, str]) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for suite in SUITES:
        done = subprocess.run([sys.executable, "-m", "test", "-v", *suite], env=env,
                              capture_output=True, text=True, timeout=1800)
        found = {f"{cls}.{name}": outcome.split(" ")[0].rstrip(":")
                 for name, cls, outcome in RESULT.findall(done.stdout)}
        if not found:
            print(done.stdout[-3000:], done.stderr[-3000:])
            raise SystemExit("test-cpython-fork: FAILED: no test result parsed")
        outcomes.update(found)
    return outcomes


def main() -> int:
    gnustep = ctypes.util.find_library("gnustep-base")
    if gnustep is None:
        raise SystemExit("test-cpython-fork: needs GNUstep Foundation (libgnustep-base-dev)")
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("OBJCPREFORK", "OBJC_"))}
    active = {**plain, "OBJCPREFORK": "1", "LD_PRELOAD": gnustep}
    check = subprocess.run(
        [sys.executable, "-c", "import objcprefork; s = objcprefork.status(); "
         "print(s.installed, bool(s.runtime), len(s.names('initialized')))"],
        env=active, capture_output=True, text=True, check=True).stdout.split()
    if check[:2] != ["True", "True"] or int(check[2]) == 0:
        raise SystemExit(f"test-cpython-fork: FAILED: objcprefork not active as intended: {check}")
    print(f"objcprefork active at start-up with GNUstep loaded: {check[2]} classes initialized")
    without, with_it = run(plain), run(active)
    differ = {t: (without.get(t), with_it.get(t)) for t in without.keys() | with_it.keys()
              if without.get(t) != with_it.get(t)}
    counts = {o: list(with_it.values()).count(o) for o in sorted(set(with_it.values()))}
    print(f"CPython {sys.version.split()[0]}: {len(with_it)} fork-related tests, {counts}")
    if differ:
        for test, (a, b) in sorted(differ.items()):
            print(f"  {test}: without objcprefork {a}, with {b}")
        print("test-cpython-fork: FAILED: results differ")
        return 1
    print("test-cpython-fork: every test ends the same way with and without objcprefork")
    return 0


if __name__ == "__main__":
    sys.exit(main())
