"""A tiny synchronous signal: how the model announces changes to whoever listens (the GUI), with no Qt involved."""
from __future__ import annotations

from typing import Any, Callable


class Signal:
    """Call every connected slot, in connection order, with the emitted arguments.

    A slot that disconnects itself (or another) while being called is handled: emission walks a snapshot.
    """

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        if slot not in self._slots:
            self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        try:
            self._slots.remove(slot)
        except ValueError:
            pass

    def emit(self, *args: Any) -> None:
        for slot in tuple(self._slots):
            slot(*args)

    def __len__(self) -> int:
        return len(self._slots)
