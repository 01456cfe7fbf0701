"""The macOS-shaped lane (OBJCPREFORK_LANE=macos, tests/conftest.py): every
scenario interpreter's subprocess forks from C with the GIL held and runs no
before-fork hook, as CPython's _posixsubprocess does on macOS (no vfork there,
and no posix_spawn with close_fds=True). GNUstep Foundation is LD_PRELOAD'ed
beside it, as a framework build of Python starts with CoreFoundation."""

import subprocess

subprocess._USE_VFORK = False  # type: ignore[attr-defined]
subprocess._USE_POSIX_SPAWN = False  # type: ignore[attr-defined]
