"""The native core, or an inert stand-in that never claims protection."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._contract import ClassState, Core, InspectRow, Snapshot


class InertCore:
    """Keeps the list and forces nothing: where the extension is missing (Windows,
    no compiler) or cannot serve this interpreter (an own-GIL subinterpreter
    refuses the stable-ABI build). It is never installed, and says why."""

    STATES: "tuple[ClassState, ...]" = ("pending", "initialized", "not loaded", "blocked")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self._names: dict[str, None] = {}

    def set_table(self, names: tuple[str, ...], append: bool = False, /) -> None:
        self._names = {**self._names, **dict.fromkeys(names)} if append else dict.fromkeys(names)

    def set_enabled(self, flag: bool, /) -> bool:
        return False  # nothing can be switched on

    def set_child_core_dumps(self, flag: bool, /) -> bool:
        return True  # no fork handler to set anything with

    def force(self) -> int:
        return 0

    def inspect(self, names: tuple[str, ...] | None, /) -> "list[InspectRow]":
        return []  # no runtime: no class to describe

    def snapshot(self) -> "Snapshot":
        return {
            "enabled": False, "restricted": None, "child_core_dumps": True, "runtime": None,
            "runtime_missing": self.reason,
            "forcing_call": None, "classes": dict.fromkeys(self._names, "not loaded"),
            "forks": 0, "forced_in_fork": 0, "handler_last_ns": 0, "handler_max_ns": 0,
        }


core: "Core"
try:
    from . import _objcprefork

    core = _objcprefork
except ImportError as exc:  # exercised by the inert-core test runs
    core = InertCore(f"the native core is not available ({exc})")
