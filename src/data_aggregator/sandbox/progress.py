"""A one-line live status for terminals, periodic lines for logs; no third-party dependency."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class StatusLine:
    """Rewrites one terminal line in place, or prints a line every ``every`` seconds when piped."""

    def __init__(self, stream: TextIO, *, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._every = every
        self._clock = clock
        self._last = float("-inf")
        self._width = 0

    def update(self, text: str) -> None:
        """Show ``text`` as the current status."""
        if self._tty:
            padding = " " * max(0, self._width - len(text))
            self._stream.write(f"\r{text}{padding}")
            self._stream.flush()
            self._width = len(text)
            return
        now = self._clock()
        if now - self._last >= self._every:
            self._stream.write(text + "\n")
            self._stream.flush()
            self._last = now

    def done(self, text: str) -> None:
        """Leave a final status line and move on to a fresh line."""
        if self._tty:
            self.update(text)
            self._stream.write("\n")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
