"""What objcprefork is doing, as a small immutable report (no dataclasses:
this module is imported by install(), and fork time grows with what a process maps)."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._contract import ClassState, Snapshot


class _Frozen:
    __slots__: tuple[str, ...] = ()
    _FIELDS: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__name__}({fields})"


class ClassStatus(_Frozen):
    """One listed class and its state:

    - "initialized": its +initialize has run (forced by objcprefork, or kept
      from the parent): a child will find it ready;
    - "pending": loaded, to be forced at the next install() or fork;
    - "not loaded": no such class in this process yet; looked for again before
      the next fork from Python once the runtime tells of new classes;
    - "blocked": loaded but not initialized in a restricted process, where
      starting its +initialize would abort this process (see Status.restricted).
    """

    __slots__ = _FIELDS = ("name", "source", "state")
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

    installed: objcprefork is switched on. restricted: why this process may
    not start any new +initialize (a fork child of a threaded parent), or
    None. check_off: why Apple's check is off in this process (then no process
    is restricted), or None. threaded_parent: this process descends by fork
    from a threaded parent (restricted when the check is on; either way
    objcprefork starts no +initialize here). runtime: the Objective-C runtime found, or None
    and runtime_missing says why. forcing_call: the runtime function that runs
    +initialize. load_signal: what tells objcprefork that classes were added
    (None: it looks for the missing ones before every fork from Python).
    diagnostics_missing: a query of the runtime that inspection needs and
    lacks (forcing works without it). classes: each listed class and its
    state, read from the snapshot when first asked for.
    """

    _FIELDS = (
        "check_off",
        "child_core_dumps",
        "classes",
        "diagnostics_missing",
        "forcing_call",
        "installed",
        "load_signal",
        "restricted",
        "runtime",
        "runtime_missing",
        "threaded_parent",
    )
    # classes is made from the snapshot when first read: install() returns a
    # Status that is mostly dropped unread, and thousands of objects made and
    # freed would leave heap that every later fork copies.
    __slots__ = (*(name for name in _FIELDS if name != "classes"), "_listed", "_classes")
    installed: bool
    restricted: str | None
    check_off: str | None
    threaded_parent: bool
    child_core_dumps: bool
    runtime: str | None
    runtime_missing: str | None
    forcing_call: str | None
    load_signal: str | None
    diagnostics_missing: str | None
    _listed: "Snapshot"
    _classes: tuple[ClassStatus, ...]

    def __init__(self, snap: "Snapshot") -> None:
        for name in self._FIELDS:
            if name != "classes":
                object.__setattr__(self, name, snap[name])  # type: ignore[literal-required]
        object.__setattr__(self, "_listed", snap)

    @property
    def classes(self) -> tuple[ClassStatus, ...]:
        """Each listed class and its state, in list order."""
        try:
            return self._classes
        except AttributeError:
            from ._native import listed

            classes = tuple(ClassStatus(*row) for row in listed(self._listed))
            object.__setattr__(self, "_classes", classes)
            return classes

    def names(self, state: "ClassState") -> tuple[str, ...]:
        """The listed classes in the given state."""
        from ._native import core

        if state not in core.STATES:
            raise ValueError(f"unknown state {state!r}: expected one of {core.STATES}")
        return tuple(c.name for c in self.classes if c.state == state)

    def did_you_mean(self) -> dict[str, str]:
        """{listed class not loaded: a loaded class whose name differs by a typo},
        defaults aside (a default class that is not loaded is no mistake). It
        enumerates the loaded classes: for diagnostics, not for a hot path."""
        missing = [c.name for c in self.classes
                   if c.state == "not loaded" and c.source != "defaults"]
        if not missing:
            return {}
        from ._names import close_names
        from ._native import core

        return close_names(missing, (row["name"] for row in core.inspect(None)))

    def __str__(self) -> str:
        lines = [
            f"objcprefork: {'installed' if self.installed else 'not installed'}",
            f"runtime: {self.runtime or f'none ({self.runtime_missing})'}",
        ]
        if self.restricted:
            lines.append(f"restricted: {self.restricted}; no new +initialize is started here")
        if self.check_off:
            lines.append(f"Apple's check is off: {self.check_off}")
        order: tuple[ClassState, ...] = ("initialized", "pending", "blocked", "not loaded")
        guesses = self.did_you_mean()
        for state in order:
            names = self.names(state)
            if names:
                lines.append(f"{state} ({len(names)}): " + ", ".join(
                    f"{n} (did you mean {guesses[n]}?)" if n in guesses else n for n in names))
        if not self.classes:
            lines.append("classes: none listed")
        return "\n".join(lines)
