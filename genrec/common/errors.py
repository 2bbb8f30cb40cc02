"""The project's error types: each carries one message that names the file/key/value and what was expected."""

import sys

from genrec.common.malloc import tune_malloc


class BenchError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""


class DataError(BenchError):
    """A data file is missing, malformed, or empties under preprocessing."""


class ConfigError(BenchError):
    """An unknown key, a wrong type, or an unknown registry name."""


class LeakageError(BenchError):
    """The leakage audit (`genrec.experiments.audit`) found valid/test data reaching a model during training."""


INTERRUPTED = "interrupted; rerun the same command to resume"


def run_cli(main) -> None:
    """Entry point of our command-line tools: a `BenchError` becomes one `error: ...` line and exit code 2; Ctrl-C
    (SIGINT) becomes the one line `INTERRUPTED` and exit code 130 (the shell's 128 + SIGINT). Both unwind the
    stack first, so claims are released and temp files removed by their `finally` blocks. Before `main` runs,
    glibc malloc is told to keep training memory (`genrec.common.malloc`: 2x faster RecBole SASRec steps)."""
    tune_malloc()
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)


class UnknownIdError(BenchError):
    """A user id, item id or title a kept model does not know (`genrec.serving`); the message lists the closest."""
