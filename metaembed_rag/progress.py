"""Progress of long work: a tqdm bar on a terminal, log lines at an interval otherwise.

When stderr is not a terminal (a log file, CI, ``nohup``) a tqdm bar prints nothing useful, so long runs went
silent for minutes. :func:`progress` returns a tqdm bar on a terminal and, elsewhere, a small stand-in with the
same ``update`` / ``set_postfix_str`` / context-manager interface that logs ``done/total`` (rate, ETA) at INFO
every ``interval_s`` seconds, and once at the end of work that lasted longer than that.

Example:
    >>> with progress(total=3, desc="pages", unit="page", enabled=False) as bar:
    ...     bar.update(3)
    >>> bar.n
    3
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

logger = logging.getLogger("metaembed_rag.progress")

LOG_INTERVAL_S = 30.0
"""Seconds between two progress log lines when output is not a terminal."""


class LogProgress:
    """A tqdm stand-in logging progress at an interval (``enabled=False``: counts silently)."""

    def __init__(
        self, total: int | None, desc: str, unit: str, *, interval_s: float = LOG_INTERVAL_S, enabled: bool = True
    ) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.interval_s, self.enabled = interval_s, enabled
        self.postfix = ""
        self._start = self._last = time.monotonic()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            self._log(now)

    def close(self) -> None:
        if self.enabled and self.n and time.monotonic() - self._start >= self.interval_s:
            self._log(time.monotonic(), final=True)
        self.enabled = False

    def _log(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.n / elapsed
        total = f"/{self.total}" if self.total else ""
        eta = ""
        if not final and self.total and rate > 0:
            eta = f", about {(self.total - self.n) / rate:.0f} s left"
        what = f" ({self.postfix})" if self.postfix and not final else ""
        verb = "done" if final else "so far"
        logger.info(
            "%s: %d%s %ss %s in %.0f s (%.2f %s/s%s)%s",
            self.desc, self.n, total, self.unit, verb, elapsed, rate, self.unit, eta, what,
        )  # fmt: skip


def progress(
    total: int | None, desc: str, unit: str, *, enabled: bool | None = None, interval_s: float = LOG_INTERVAL_S
) -> Any:
    """A progress reporter: tqdm on a terminal, interval log lines otherwise, nothing when ``enabled=False``.

    ``enabled=None`` (automatic) means a bar on a terminal and log lines elsewhere; ``True`` forces a bar.
    """
    if enabled is False:
        return LogProgress(total, desc, unit, enabled=False)
    if enabled or sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit)
    return LogProgress(total, desc, unit, interval_s=interval_s)
