"""What objcprefork is doing, as an immutable report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ClassState = Literal["initialized", "not loaded", "pending"]
_STATES: tuple[ClassState, ...] = ("pending", "initialized", "not loaded")


@dataclass(frozen=True)
class ClassStatus:
    """One listed class.

    state is "initialized" (objcprefork ran its +initialize: a child will find
    it ready), "not loaded" (no such class in this process yet: nothing to do
    until an image brings it) or "pending" (loaded, to be forced at the next
    install() or fork).
    """

    name: str
    state: ClassState


@dataclass(frozen=True)
class Status:
    """A snapshot of objcprefork in this process; str() gives a readable report."""

    installed: bool
    runtime: str | None
    """Path of the Objective-C runtime found in this process, or None."""
    runtime_missing: str | None
    """Why runtime is None."""
    classes: tuple[ClassStatus, ...]
    forks: int
    """Forks the handler has seen since it was registered."""
    forced_in_fork: int
    """Classes whose +initialize the handler ran during a fork."""
    handler_last_ns: int
    handler_max_ns: int

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Status:
        return cls(
            installed=snap["enabled"],
            runtime=snap["runtime"],
            runtime_missing=snap["runtime_missing"] if snap["runtime"] is None else None,
            classes=tuple(ClassStatus(name, _STATES[state]) for name, state in snap["classes"]),
            forks=snap["forks"],
            forced_in_fork=snap["forced_in_fork"],
            handler_last_ns=snap["handler_last_ns"],
            handler_max_ns=snap["handler_max_ns"],
        )

    def names(self, state: ClassState) -> tuple[str, ...]:
        """The listed classes in the given state."""
        return tuple(c.name for c in self.classes if c.state == state)

    def __str__(self) -> str:
        lines = [
            f"objcprefork: {'installed' if self.installed else 'not installed'}",
            f"runtime: {self.runtime or f'none ({self.runtime_missing})'}",
        ]
        for state in ("initialized", "pending", "not loaded"):
            names = self.names(state)
            if names:
                lines.append(f"{state} ({len(names)}): {', '.join(names)}")
        if not self.classes:
            lines.append("classes: none listed")
        lines.append(f"forks seen: {self.forks}, classes forced inside a fork: "
                     f"{self.forced_in_fork}, handler time: last {self.handler_last_ns} ns, "
                     f"max {self.handler_max_ns} ns")
        return "\n".join(lines)
