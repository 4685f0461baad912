"""Peak resident memory of this process during a scenario, measured the way the kernel counts it.

``ru_maxrss`` cannot be reset and a child inherits its parent's, so the figure here is the kernel's
high-water mark (``VmHWM``), reset at the start by writing 5 to ``/proc/self/clear_refs``. Where that
is not allowed, a sampling thread keeps the highest ``VmRSS`` it saw and the figure says so.
"""

from __future__ import annotations

import threading
from pathlib import Path

KIB = 1024.0


def status_kib(field: str, pid: int | str = "self") -> float | None:
    """One ``/proc/<pid>/status`` field in KiB (None where there is no procfs or no such process)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return None


def reset_peak() -> bool:
    """Reset this process's high-water mark to its current RSS; False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


class MemoryProbe:
    """Start before the scenario, stop after it; ``peak_mib`` covers everything in between."""

    def __init__(self, interval_seconds: float = 0.1) -> None:
        self.interval_seconds = interval_seconds
        self.start_mib = 0.0
        self.exact = False
        self._sampled_kib = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Take the starting point and begin sampling."""
        self.exact = reset_peak()
        self.start_mib = (status_kib("VmRSS") or 0.0) / KIB
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="memory-probe", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self._sampled_kib = max(self._sampled_kib, status_kib("VmRSS") or 0.0)

    def stop(self) -> float:
        """Stop sampling and return the peak in MiB."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        peak = self._sampled_kib
        if self.exact:
            peak = max(peak, status_kib("VmHWM") or 0.0)
        return peak / KIB
