"""Progress with an ETA for every long step (data, split, GID build, epochs, evaluation, trials), on a terminal
and in a pipe, through one helper: `progress(...)`.

* On a terminal (stderr is a tty): a tqdm bar once the step has run `GENREC_PROGRESS_DELAY` seconds, redrawn in
  place at most twice a second, removed when done.
* Otherwise (piped, redirected to a log file, under a job runner): plain lines on stderr, one when the step has
  run `GENREC_PROGRESS_DELAY` seconds (default 2; a shorter step prints nothing), then one each time another
  tenth of the total is done and one at the end: `<desc>: 40% 4/10 [00:12<00:18, 3.02s/epoch]`, i.e. share done,
  count, elapsed < remaining (the ETA, tqdm's rate estimate) and rate. No carriage return, no ANSI code.
* `GENREC_PROGRESS=0` turns every bar and line off; `GENREC_PROGRESS=lines` forces the lines on a terminal too.

A step with no known total prints its count and rate, without ETA. A step made of one call that cannot report
parts (reading and indexing a dataset) uses `stage(desc)`: a line when it has run the delay, one when it ends.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
OPEN_FORMAT = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"  # no total: no share, no ETA
OPEN_EVERY = 10.0  # seconds between two lines of a step without a total


def mode() -> str:
    """"off", "lines" or "bar" (see the module docstring)."""
    env = os.environ.get("GENREC_PROGRESS", "").lower()
    if env in ("0", "off", "false", "no"):
        return "off"
    if env == "lines":
        return "lines"
    return "bar" if sys.stderr.isatty() else "lines"


class Lines:
    """The piped form of a bar: tqdm's counters and meter text, written as whole lines (module docstring)."""

    def __init__(self, iterable: Iterable | None, total: float | None, desc: str, unit: str, file: TextIO,
                 delay: float) -> None:
        self.iterable, self.desc, self.unit, self.file, self.delay = iterable, desc, unit, file, delay
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.postfix = total, 0, ""
        self.start = time.perf_counter()
        self.shown = -1  # the last tenth written; -1: nothing written yet
        self.written = 0.0  # when the last line was written (no total: at most one line per `OPEN_EVERY` s)
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.perf_counter() - self.start < self.delay:
            return
        if not self.total:
            if self.shown < 0 or time.perf_counter() - self.written >= OPEN_EVERY:
                self._write(self.shown + 1)
            return
        tenth = math.floor(10 * self.n / self.total)
        if self.shown < 0 or tenth > self.shown:
            self._write(tenth)

    def close(self) -> None:
        """The last line, for a step that wrote any (or ran longer than the delay)."""
        if self.closed:
            return
        self.closed = True
        long = time.perf_counter() - self.start >= self.delay
        if (self.shown >= 0 or long) and self.shown != 10:
            self._write(10 if self.total and self.n >= self.total else self.shown)

    def _write(self, tenth: int) -> None:
        from tqdm import tqdm  # noqa: PLC0415

        self.shown, self.written = tenth, time.perf_counter()
        elapsed = time.perf_counter() - self.start
        postfix = f", {self.postfix}" if self.postfix else ""
        fmt = LINE_FORMAT if self.total else OPEN_FORMAT
        text = tqdm.format_meter(self.n, self.total, elapsed, prefix=self.desc, unit=self.unit, bar_format=fmt,
                                 postfix=postfix or None)
        self.file.write(text.replace(", ,", ",").rstrip() + "\n")
        self.file.flush()


class _Off(Lines):
    """Counts and yields, writes nothing."""

    def _write(self, tenth: int) -> None:
        self.shown = tenth


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, file: TextIO | None = None) -> Any:
    """A progress reporter over `iterable` (or, without one, for `update(n)` calls up to `total`).

    Returns a tqdm bar on a terminal, else a `Lines` reporter; both iterate, `update(n)`, `set_postfix(...)`,
    `close()` and work as context managers. `enabled=False` (a model's own `progress: false`) silences it."""
    how = mode() if enabled else "off"
    delay = float(os.environ.get("GENREC_PROGRESS_DELAY", "2"))
    if how == "bar":  # shown once the step has run `delay` seconds, as the lines are
        from tqdm.auto import tqdm  # noqa: PLC0415

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, mininterval=0.5, delay=delay,
                    file=file or sys.stderr, dynamic_ncols=True)
    cls = Lines if how == "lines" else _Off
    return cls(iterable, total, desc, unit, file or sys.stderr, delay)


@contextlib.contextmanager
def stage(desc: str, enabled: bool = True, file: TextIO | None = None) -> Iterator[None]:
    """One indivisible step: `<desc> ...` once it has run `GENREC_PROGRESS_DELAY` seconds, then `<desc>: done in
    <s>s` (nothing for a shorter step). A timer thread writes the first line; the step itself is not touched."""
    out = file or sys.stderr
    if not enabled or mode() == "off":
        yield
        return
    start, said = time.perf_counter(), threading.Event()

    def announce() -> None:
        said.set()
        out.write(f"{desc} ...\n")
        out.flush()

    timer = threading.Timer(float(os.environ.get("GENREC_PROGRESS_DELAY", "2")), announce)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if said.is_set():
            out.write(f"{desc}: done in {time.perf_counter() - start:.1f}s\n")
            out.flush()
