"""The native core, or an inert stand-in that never claims protection."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._contract import ClassState, Core, InspectRow, Snapshot


class InertCore:
    """Keeps the list and forces nothing: where the extension is missing (Windows,
    no compiler) or cannot serve this interpreter (an own-GIL subinterpreter
    refuses the stable-ABI build). It is never installed, and says why."""

    STATES: "tuple[ClassState, ...]" = ("pending", "initialized", "not loaded", "blocked")

    def __init__(self, reason: str, *, tell: bool = False) -> None:
        self.reason = reason
        self.tell = tell  # install() says why on stderr, once: protection was expected
        self._sources: dict[str, str] = {}

    def set_table(self, classes: dict[str, str], append: bool = False, /) -> None:
        if type(classes) is not dict:  # as the native core: its storage is read as it is
            raise TypeError(f"set_table() takes a dict, not {classes!r}")
        merged = dict(self._sources) if append else {}
        for name, source in classes.items():
            merged.setdefault(name, source)  # the first source stays, as in the native table
        self._sources = merged

    def set_installed(self, flag: bool, /) -> bool:
        return False  # nothing can be switched on

    def is_installed(self) -> bool:
        return False

    def withheld(self) -> str | None:
        return None  # no runtime is ever bound

    def set_child_core_dumps(self, flag: bool, /) -> bool:
        return True  # no fork handler to set anything with

    def force(self) -> int:
        return 0

    def inspect(self, names: tuple[str, ...] | None, /) -> "list[InspectRow]":
        return []  # no runtime: no class to describe

    def snapshot(self) -> "Snapshot":
        from itertools import groupby

        return {
            "installed": False, "restricted": None, "check_off": None, "threaded_parent": False,
            "child_core_dumps": True,
            "runtime": None, "runtime_missing": self.reason, "forcing_call": None,
            "load_signal": None, "diagnostics_missing": None,
            "names": "".join(f"{name}\0" for name in self._sources),
            "states": bytes([self.STATES.index("not loaded")]) * len(self._sources),
            "sources": [(source, len(list(run)))
                        for source, run in groupby(self._sources.values())],
        }


def listed(snap: "Snapshot") -> "list[tuple[str, ClassState, str]]":
    """(name, state, source) of each listed class, in list order, from a snapshot."""
    sources = [source for source, count in snap["sources"] for _ in range(count)]
    return list(zip(snap["names"].split("\0")[:-1], (core.STATES[s] for s in snap["states"]),
                    sources, strict=True))


core: "Core"
try:
    from . import _objcprefork

    core = _objcprefork
except ImportError as exc:  # exercised by the inert-core test runs
    import zipimport

    if isinstance(__spec__.loader, zipimport.zipimporter):  # python -m zipapp: no extension
        core = InertCore("the native core cannot load from inside a zip archive: build the app "
                         "with shiv or pex, or run it under `objcprefork run`", tell=True)
    else:
        core = InertCore(f"the native core is not available ({exc})")
