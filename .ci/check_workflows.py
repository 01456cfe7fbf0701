"""What `make check-dist` requires of the workflows, beyond their schema and zizmor:

- Every `run:` step that pipes fails when any command of the pipe fails. GitHub
  runs an unset shell as `bash -e {0}`, with no pipefail, so `cibuildwheel | tee
  log` would pass whatever cibuildwheel did; it runs `shell: bash` as
  `bash --noprofile --norc -eo pipefail {0}`.
- Every wheel the wheels job builds is tested on its own platform and
  interpreter: by cibuildwheel there, or, for what test-skip leaves out, by a
  job in TEST_JOBS.

usage: check_workflows.py WORKFLOW..."""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from pathlib import Path

from check_artifacts import REPO, built_identifiers, fail, load_workflow, runner
from cibuildwheel.options import CommandLineArguments, compute_options

# The jobs that test the wheels cibuildwheel does not, and the kind each takes:
# a job of matrix os x python tests cp{python}-{kind}_{the runner's arch}.
TEST_JOBS = {"test-manylinux": "manylinux"}
SETS_PIPEFAIL = re.compile(r"set\s+-\w*o\s+pipefail\b")
SHELL_OPERATORS = set("();<>|&")


def pipes(script: str) -> bool:
    """Whether the script has a pipe outside quotes and comments, or in a
    command substitution within double quotes."""
    lexer = shlex.shlex(script, posix=False, punctuation_chars=True)
    try:
        return any((set(token) <= SHELL_OPERATORS and "|" in token.replace("||", ""))
                   or (token.startswith('"') and "$(" in token and pipes(token[1:-1]))
                   for token in lexer)
    except ValueError:  # an unmatched quote: a bar anywhere may be a pipe
        return "|" in script


def default_shell(node: dict) -> str | None:
    return ((node.get("defaults") or {}).get("run") or {}).get("shell")


def unsafe_pipes(workflow: dict) -> list[str]:
    """The steps that pipe under a shell without pipefail."""
    found = []
    for job_name, job in workflow["jobs"].items():
        for number, step in enumerate(job.get("steps", []), 1):
            script = step.get("run")
            if script is None:
                continue
            shell = step.get("shell") or default_shell(job) or default_shell(workflow) or ""
            commands = [line.strip() for line in script.splitlines()
                        if line.strip() and not line.strip().startswith("#")]
            if (pipes(script) and shell != "bash" and "pipefail" not in shell
                    and not SETS_PIPEFAIL.match(commands[0])):
                found.append(f"job {job_name}, step {step.get('name', number)!r}")
    return found


def untested(workflow: dict) -> list[str]:
    """The identifiers the wheels job builds that no job tests."""
    tested = set()
    for job_name, kind in TEST_JOBS.items():
        matrix = workflow["jobs"][job_name]["strategy"]["matrix"]
        tested |= {f"cp{python.replace('.', '')}-{kind}_{runner(os)[1]}"
                   for os in matrix["os"] for python in matrix["python"]}
    built = built_identifiers(workflow)
    for name, identifiers in built.items():
        platform, arch = runner(name)
        arguments = dataclasses.replace(CommandLineArguments.defaults(), platform=platform,
                                        archs=arch, package_dir=REPO)
        options = compute_options(platform, arguments, env={})
        tested |= {i for i in identifiers
                   if options.globals.test_selector(i) and options.build_options(i).test_command}
    return [i for identifiers in built.values() for i in identifiers if i not in tested]


def main(paths: list[str]) -> None:
    if not paths:
        fail("usage: check_workflows.py WORKFLOW...")
    for path in paths:
        workflow = load_workflow(Path(path))
        if steps := unsafe_pipes(workflow):
            fail(f"{path}: pipes without pipefail (set `shell: bash`): {'; '.join(steps)}")
        if "wheels" in workflow["jobs"] and (missing := untested(workflow)):
            fail(f"{path}: built, never tested: {', '.join(missing)}")
    print(f"check_workflows: {', '.join(paths)}: every pipe has pipefail, every wheel a test")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (KeyError, TypeError, AttributeError) as error:  # schema: check-jsonschema's
        fail(f"a workflow not shaped as expected: {error!r}")
