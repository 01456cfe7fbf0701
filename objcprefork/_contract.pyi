# The one contract between the native core (src/_objcprefork.c) and Python.
# Stub only: never imported at run time. Both cores are checked against Core by
# mypy --strict (objcprefork/_native.py), and tests/test_api.py checks that the
# keys and states the C code produces are exactly these.
from typing import Literal, Protocol, TypedDict

ClassState = Literal["pending", "initialized", "not loaded", "blocked"]

class Snapshot(TypedDict):
    installed: bool
    restricted: str | None  # why this process may not start a +initialize, or None
    check_off: str | None  # why Apple's check is off in this process, or None
    threaded_parent: bool  # forked from a threaded parent: restricted if the check is on
    child_core_dumps: bool  # False: RLIMIT_CORE 0 in forked children
    runtime: str | None
    runtime_missing: str | None
    forcing_call: str | None  # the runtime function that runs +initialize
    load_signal: str | None  # what tells of new classes; None: looked for at every fork
    diagnostics_missing: str | None  # a query inspect() needs that the runtime lacks
    # The listed classes, compact (objcprefork._native.listed() reads them):
    names: str  # in list order, each ended by "\0"
    states: bytes  # each one's state, as an index into STATES
    sources: list[tuple[str, int]]  # (the way that listed them, how many names in a row)

class InspectRow(TypedDict):
    name: str
    image: str | None
    trivial: bool
    initializer: str | None  # the class whose +initialize runs for it

class Core(Protocol):
    @property
    def STATES(self) -> tuple[ClassState, ...]: ...
    def set_table(self, classes: dict[str, str], append: bool = False, /) -> None: ...
    def set_installed(self, flag: bool, /) -> bool: ...
    def is_installed(self) -> bool: ...
    def withheld(self) -> str | None: ...
    def set_child_core_dumps(self, flag: bool, /) -> bool: ...
    def force(self) -> int: ...
    def snapshot(self) -> Snapshot: ...
    def inspect(self, names: tuple[str, ...] | None, /) -> list[InspectRow]: ...
