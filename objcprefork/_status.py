"""What objcprefork is doing, as a small immutable report (no dataclasses:
this module is imported by install(), and fork time grows with what a process maps)."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._contract import ClassState, Snapshot


class _Frozen:
    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class ClassStatus(_Frozen):
    """One listed class and its state:

    - "initialized": its +initialize has run (forced by objcprefork, or kept
      from the parent): a child will find it ready;
    - "pending": loaded, to be forced at the next install() or fork;
    - "not loaded": no such class in this process yet; looked for at every fork;
    - "blocked": loaded but not initialized in a restricted process, where
      starting its +initialize would abort this process (see Status.restricted).
    """

    __slots__ = ("name", "source", "state")
    name: str
    state: "ClassState"
    source: str
    """The way that listed it: "defaults", "config file PATH", "OBJCPREFORK_CLASSES",
    "objcprefork run", "install()", "add_classes()", "set_classes()"..."""

    def __init__(self, name: str, state: "ClassState", source: str = "unknown") -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "source", source)


class Status(_Frozen):
    """A snapshot of objcprefork in this process; str() gives a readable report.

    installed: the fork handler is active. restricted: why this process may not
    start any new +initialize (a fork child of a threaded parent), or None.
    runtime: the Objective-C runtime found, or None and runtime_missing says
    why. forcing_call: the runtime function that runs +initialize. forks:
    forks the handler has seen since objcprefork was first imported;
    forced_in_fork: classes it had to force inside a fork (0 when every
    class was forced beforehand); handler_last_ns/_max_ns: the
    time it took in the forks where it had work.
    """

    __slots__ = (
        "child_core_dumps",
        "classes",
        "forced_in_fork",
        "forcing_call",
        "forks",
        "handler_last_ns",
        "handler_max_ns",
        "installed",
        "restricted",
        "runtime",
        "runtime_missing",
    )
    installed: bool
    restricted: str | None
    child_core_dumps: bool
    runtime: str | None
    runtime_missing: str | None
    forcing_call: str | None
    classes: tuple[ClassStatus, ...]
    forks: int
    forced_in_fork: int
    handler_last_ns: int
    handler_max_ns: int

    def __init__(self, snap: "Snapshot", sources: "Mapping[str, str] | None" = None) -> None:
        sources = sources or {}
        classes = tuple(ClassStatus(name, state, sources.get(name, "unknown"))
                        for name, state in snap["classes"].items())
        for name, value in (
                ("installed", snap["enabled"]), ("restricted", snap["restricted"]),
                ("runtime", snap["runtime"]), ("runtime_missing", snap["runtime_missing"]),
                ("forcing_call", snap["forcing_call"]), ("classes", classes),
                ("child_core_dumps", snap["child_core_dumps"]),
                ("forks", snap["forks"]), ("forced_in_fork", snap["forced_in_fork"]),
                ("handler_last_ns", snap["handler_last_ns"]),
                ("handler_max_ns", snap["handler_max_ns"])):
            object.__setattr__(self, name, value)

    def names(self, state: "ClassState") -> tuple[str, ...]:
        """The listed classes in the given state."""
        return tuple(c.name for c in self.classes if c.state == state)

    def __str__(self) -> str:
        lines = [
            f"objcprefork: {'installed' if self.installed else 'not installed'}",
            f"runtime: {self.runtime or f'none ({self.runtime_missing})'}",
        ]
        if self.restricted:
            lines.append(f"restricted: {self.restricted}; no new +initialize is started here")
        order: tuple[ClassState, ...] = ("initialized", "pending", "blocked", "not loaded")
        for state in order:
            names = self.names(state)
            if names:
                lines.append(f"{state} ({len(names)}): {', '.join(names)}")
        if not self.classes:
            lines.append("classes: none listed")
        lines.append(f"forks seen: {self.forks}, classes forced inside a fork: "
                     f"{self.forced_in_fork}, handler time: last {self.handler_last_ns} ns, "
                     f"max {self.handler_max_ns} ns")
        return "\n".join(lines)
