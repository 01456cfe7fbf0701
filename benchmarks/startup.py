"""Interpreter start: `python -c pass` in a venv with the objcprefork wheel
installed (OBJCPREFORK unset, then set) against a venv without it, runs
interleaved; and the import time of objcprefork (-X importtime). Targets:
ratio <= 1.01 unset; <= 5 ms added with OBJCPREFORK=1 and no runtime loaded."""

from __future__ import annotations

import os
import subprocess
import time

from _common import build_wheel, make_venv, median, run, table, workdir

RUNS = 60


def main() -> None:
    where = workdir()
    wheel = build_wheel(where)
    with_wheel = make_venv(where / "with", wheel)
    enabled = make_venv(where / "enabled", wheel)  # `objcprefork enable`d: no variable
    subprocess.run([str(enabled.bin / "objcprefork"), "enable"], check=True,
                   stdout=subprocess.DEVNULL)
    without = make_venv(where / "without")
    # Many venvs already hold an import-line .pth (setuptools' distutils-precedence.pth):
    # the first such line costs its process the parser's first compile, whoever owns it.
    other = make_venv(where / "other")
    (other.site_packages / "other.pth").write_text("import os\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBJCPREFORK", "PYTHON"))}
    variants = {
        "venv without objcprefork": (without.python, env),
        "venv without objcprefork, with another import .pth": (other.python, env),
        "objcprefork installed, OBJCPREFORK unset (off: one stat)": (with_wheel.python, env),
        "objcprefork installed and enabled, no variable": (enabled.python, env),
        "objcprefork installed, OBJCPREFORK=1": (with_wheel.python, {**env, "OBJCPREFORK": "1"}),
    }
    times: dict[str, list[int]] = {label: [] for label in variants}
    for _ in range(RUNS):
        for label, (python, variant_env) in variants.items():
            start = time.perf_counter_ns()
            subprocess.run([python, "-c", "pass"], env=variant_env, check=True)
            times[label].append(time.perf_counter_ns() - start)
    base = median(times["venv without objcprefork"])
    unset = median(times["objcprefork installed, OBJCPREFORK unset (off: one stat)"])
    rows = [[label, RUNS, f"{median(t) / 1e6:.2f}", f"{median(t) / base:.3f}",
             f"{(median(t) - unset) / 1e6:+.2f}"] for label, t in times.items()]
    table("interpreter start: python -c pass (interleaved; medians)",
          ["variant", "runs", "median ms", "ratio", "added ms vs unset"], rows)

    imports = []
    for _ in range(15):
        out = run([with_wheel.python, "-X", "importtime", "-c", "import objcprefork"], env=env)
        line = next(x for x in out.stderr.splitlines() if x.rstrip().endswith("| objcprefork"))
        imports.append(int(line.split("|")[1]))
    table("import time of objcprefork (-X importtime, cumulative)",
          ["measure", "runs", "median us", "min us"],
          [["import objcprefork", len(imports), median(imports), min(imports)]])
    ratio = unset / base
    ratio_other = unset / median(times["venv without objcprefork, with another import .pth"])
    added = (median(times["objcprefork installed, OBJCPREFORK=1"]) - unset) / 1e6
    print(f"\ntarget: unset ratio <= 1.01: {ratio:.3f} ({'met' if ratio <= 1.01 else 'NOT met'})"
          f", against a venv that has another import .pth: {ratio_other:.3f};"
          f" OBJCPREFORK=1 adds <= 5 ms: {added:.2f} ms ({'met' if added <= 5 else 'NOT met'})")


if __name__ == "__main__":
    main()
