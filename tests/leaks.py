"""Catch a test's own leaks where they happen, not in whichever later test runs the garbage collector."""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def resource_warnings() -> Iterator[list[str]]:
    """The ResourceWarnings (unclosed files, sockets, running subprocesses) of objects freed inside the block.

    Garbage is collected before (what earlier tests left is not ours) and at the end; drop your own references to
    what the block made before it ends. `with resource_warnings() as leaks: ...`, then `assert leaks == []`.
    """
    gc.collect()
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield found
        gc.collect()
    found.extend(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))
