"""What every column store of the replay shares: it reads as a sequence of the objects it stores the fields of.

A trace of millions of jobs (`TraceJobs`) and every policy's schedule of it (`ScheduleRecords`) keep their fields in
typed arrays, not an object each; code written for a list or tuple of those objects (the checks, the tests, the
callers of `simulate`) reads them through this as it did, each item built when it is asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

Item = TypeVar("Item")


class ColumnSequence(Sequence[Item]):
    """A read-only view by index of a column store: `_item(i)` builds item `i`, `__len__` counts them."""

    __slots__ = ()

    def _item(self, index: int) -> Item:
        raise NotImplementedError

    def __len__(self) -> int:
        """How many items the columns hold."""
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...

    def __getitem__(self, index: int | slice) -> Item | list[Item]:
        """The item at `index`, built from its columns (a slice: a list of them); too far is an `IndexError`."""
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(len(self)))]
        return self._item(range(len(self))[index])  # a negative index counts from the end

    def __iter__(self) -> Iterator[Item]:
        """The items in order."""
        return map(self._item, range(len(self)))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same items in the same order (a tuple or a list of them)."""
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(mine == theirs for mine, theirs in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # appended to: unhashable, as a list
