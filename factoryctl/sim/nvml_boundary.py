"""What crosses the simulated driver's pynvml boundary, shaped as pynvml's: arguments, handles, structures, errors.

pynvml passes every integer argument through `c_uint(...)` or `c_ulonglong(...)` before libnvidia-ml sees it, so a
float is a TypeError and -1 is the largest unsigned value; and every failure it reports is an `NVMLError`, never an
OSError. The simulated driver keeps its GPUs in a state file on disk (`state.py`), whose failures must look like a
driver's. Handles compare and hash as pynvml's ctypes pointers do. Kept apart from `nvml.py`, which uses these in
each function. Python 3.9, like the agent.
"""

from __future__ import annotations

import contextlib
import operator
from typing import Any, Dict, Iterator, SupportsIndex

from factoryctl.sim.errors import NVML_ERROR_UNKNOWN, NVMLError


def c_unsigned(value: SupportsIndex, bits: int = 32) -> int:
    """`value` as pynvml's `c_uint(value)` (or `c_ulonglong(value)`, bits=64) passes it to NVML.

    TypeError unless an integer (or an object with `__index__`), as ctypes raises for a float or a string; wrapped
    modulo 2**bits, so -1 is the largest value and 2**32 + 1 is 1.
    """
    return operator.index(value) & ((1 << bits) - 1)


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """The state file's disk failing (unreadable, its lock unobtainable) is NVMLError_Unknown, as a driver's failure.

    Code written against pynvml catches NVMLError only; an OSError of the simulation's own storage escaped it. The
    node tries the file again at the next call (`SimNode._refresh`).
    """
    try:
        yield
    except OSError as exc:
        raise NVMLError(NVML_ERROR_UNKNOWN) from exc


class SimDeviceHandle:
    """What `nvmlDeviceGetHandleByIndex` returns (pynvml returns a ctypes pointer; callers treat it as opaque).

    As pynvml's: compared by identity and unhashable. One per GPU (`device`), as NVML hands out one device pointer
    per GPU, so an event's `.device` is the very handle the caller already holds.
    """

    __slots__ = ("index",)
    __hash__ = None  # type: ignore[assignment]  # ctypes handles are unhashable

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<simulated nvmlDevice_t {self.index}>"


#: GPU index -> its handle, on the node `nvml.configure` chose (which clears it).
devices: Dict[int, SimDeviceHandle] = {}


def device(index: int) -> SimDeviceHandle:
    """The one handle of GPU `index` (until `configure` chooses another node)."""
    return devices.setdefault(index, SimDeviceHandle(index))


class SimStruct:
    """An attribute bag standing in for pynvml's ctypes structures (`c_nvmlMemory_t` ...)."""

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the bag's fields, untyped as pynvml's ctypes structures
        """Only reached for fields the structure does not have (declares the bag's dynamic fields to mypy)."""
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"SimStruct({self.__dict__!r})"
