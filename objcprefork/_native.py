"""The native core, or an inert stand-in where it could not be built or imported."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _InertCore:
    """Keeps the list, forces nothing: used on Windows or without a compiler."""

    def __init__(self, reason: str) -> None:
        self._reason = reason
        self._names: tuple[str, ...] = ()
        self._enabled = False

    def set_table(self, names: tuple[str, ...], append: bool = False) -> None:
        self._names = tuple(dict.fromkeys(self._names + names)) if append else names

    def set_enabled(self, flag: bool) -> bool:
        was, self._enabled = self._enabled, bool(flag)
        return was

    def force(self) -> None:
        pass

    def inspect(self, names: tuple[str, ...] | None) -> list[tuple[str, str | None, bool,
                                                                   str | None]]:
        return []  # no runtime: no class to describe

    def snapshot(self) -> dict[str, Any]:
        return {
            "enabled": self._enabled, "runtime": None, "runtime_missing": self._reason,
            "classes": tuple((name, 2) for name in self._names), "forks": 0,
            "forced_in_fork": 0, "handler_last_ns": 0, "handler_max_ns": 0,
        }


core: Any
try:
    from . import _objcprefork

    core = _objcprefork
except ImportError as exc:  # exercised by the no-extension test
    core = _InertCore(f"the native core is not available ({exc})")
