"""Progress bars for a terminal and for a log file.

On a terminal a bar redraws itself in place (tqdm). A batch job's stderr is a file: there every
redraw would be one more carriage-return segment on a single ever-growing line, so a bar writes a
plain line at most every :data:`LOG_INTERVAL_S` seconds and once at its end instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

# Long enough that an hour of training writes a few hundred lines, short enough to see it move.
LOG_INTERVAL_S = 30.0


class LogBar(tqdm):
    """A tqdm whose refreshes are complete lines: no carriage return, no cursor moves.

    Its first line comes after :data:`LOG_INTERVAL_S` (a bar that ends sooner, like one short
    sampling chain, writes nothing unless ``leave``), its last one when it closes.
    """

    _shown: int | None = None  # the count the last written line showed

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":
            return False  # tqdm clearing a bar; False also spares its carriage return
        if msg is None and self.n in (self.initial, self._shown):
            # A bar opening, or tqdm's monitor thread refreshing a stalled count: nothing new.
            return True
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        self._shown = self.n
        return True

    def moveto(self, n: int) -> None:
        """Nested bars each write their own lines; there is no cursor to move."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        """Shown with the next timed line: a per-step postfix would otherwise write every step."""
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def close(self) -> None:
        if not self.disable and self.n != self._shown and (self.leave or self._shown is not None):
            self.display()
        self.leave = False  # tqdm's own final line would repeat the one just written
        super().close()


def progress_bar(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """A bar over ``iterable`` (tqdm arguments): redrawn on a terminal, plain lines in a log."""
    stream = kwargs.get("file") or sys.stderr
    if stream.isatty():
        return tqdm(iterable, **kwargs)
    return LogBar(iterable, **{**kwargs, "mininterval": LOG_INTERVAL_S, "file": stream})
