"""Writing the store writer's batch when a sample in it cannot be stored: the good rows still go in.

A value of the wrong type (from a bug, or a hostile node: a GPU index of 10**19) makes the whole transaction fail
to encode, and written as one batch it held back every node's rows, tick after tick. So a batch that fails to
encode is written again without the samples `encoding_problem` finds, with the texts of the changes and events made
storable; failing still, sample by sample. The samples given up leave the `WriteBuffer` counted (`drop_unstorable`),
so the writer's figures still add up. Kept apart from `StoreWriter` (telemetry/writer.py), whose job is the tick:
this is only the fallback of its one write, which needs the store and the buffer and nothing else of it.
"""

from __future__ import annotations

from factoryctl.store.rows import Event, NodeState, encoding_problem, storable_texts
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.write_buffer import Buffered, WriteBuffer


def write_batch(
    store: Store, buffer: WriteBuffer, batch: list[Buffered], changes: list[NodeState], events: list[Event], now: float
) -> tuple[int, list[Buffered]]:
    """Write the batch; returns the rows inserted and the samples written.

    A batch that cannot be encoded (TypeError, ValueError, OverflowError: never a StoreError, which means the
    store refused) is checked sample by sample; the ones that cannot be stored are dropped and the rest written,
    with the texts of the changes and events made storable too (`storable_texts`). Failing still, each sample is
    written alone (`_write_each`), then the changes and events: failing still, they are not the samples'
    (`StoreWriter.flush`).
    """
    try:
        return store.write([s for s, _ in batch], [f for _, f in batch], changes, events, now), batch
    except (TypeError, ValueError, OverflowError):
        good: list[Buffered] = []
        for sample, slow in batch:
            problem = encoding_problem(sample)
            if problem is None:
                good.append((sample, slow))
            else:
                buffer.drop_unstorable(sample, problem)
    buffer.keep_only(good)
    changes, events = storable_texts(changes), storable_texts(events)
    try:
        return store.write([s for s, _ in good], [f for _, f in good], changes, events, now), good
    except (TypeError, ValueError, OverflowError):
        inserted, good = _write_each(store, buffer, good, now)
    buffer.keep_only(good)
    return inserted + store.write((), (), changes, events, now), good


def _write_each(store: Store, buffer: WriteBuffer, batch: list[Buffered], now: float) -> tuple[int, list[Buffered]]:
    """Write each sample of `batch` alone: the raw rows inserted, and the samples written (the others dropped).

    The last resort of `write_batch`, for a value `encoding_problem` does not know of: a GPU index of 10**19 it did
    not check held back every node's samples, tick after tick, with a traceback each time.
    """
    inserted, written = 0, []
    for sample, slow in batch:
        try:
            inserted += store.write([sample], [slow], (), (), now)
        except (TypeError, ValueError, OverflowError) as exc:
            buffer.drop_unstorable(sample, f"{type(exc).__name__}: {exc}")
        else:
            written.append((sample, slow))
    return inserted, written
