"""The agent's one wrapper around NVML (real `pynvml` or `factoryctl.sim.nvml`, same interface).

Like nvitop's `nvmlQuery`: the library initialises lazily on the first query; a query the driver or board does not
support returns `None` plus a reason instead of raising; a function missing from an old driver or old pynvml is
logged to stderr once and then treated as unsupported; a lost GPU raises `GpuLost` so the caller can null the whole
GPU. Every NVML function the agent calls is listed in `NVML_CALLS`, and a test checks each against the installed
nvidia-ml-py's signature, so the real path cannot drift from the simulated one.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Dict, Optional, Set, Tuple

# Every NVML function the agent calls, by name (the signature test reads this and scans the agent's source).
NVML_CALLS: Tuple[str, ...] = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementLimitConstraints",
    "nvmlDeviceGetPowerManagementDefaultLimit",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceSetPowerManagementLimit",
    "nvmlEventSetCreate",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetWait_v2",
    "nvmlDeviceGetIndex",
)

NOT_SUPPORTED = "not supported"
MISSING = "not supported by this driver"
GPU_LOST = "gpu_lost"


def _handle_key(handle: Any) -> object:  # noqa: ANN401 - a driver handle: pynvml's ctypes pointer or the sim's
    """Something comparable for a handle: the pointer value of pynvml's ctypes handle, else the handle itself."""
    try:
        import ctypes

        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


class GpuLost(Exception):
    """The GPU fell off the bus (NVML_ERROR_GPU_IS_LOST): every field of it is null."""


class DriverUnavailable(Exception):
    """NVML could not be initialised (no driver, no library, no permission)."""


class NvmlSession:
    """Lazy, thread-safe access to one NVML module; see the module docstring."""

    def __init__(self, lib: Any, what: str = "NVML") -> None:  # noqa: ANN401 - the pynvml module or the sim's, untyped
        self.lib = lib
        self.what = what  # in messages: "NVML", or "the simulated driver"
        self._lock = threading.RLock()
        self._initialised = False
        self._init_error: Optional[str] = None
        self._missing_logged: Set[str] = set()
        self._handles: Dict[int, Any] = {}

    def constant(self, name: str, default: int) -> int:
        """An `NVML_*` constant from the module, or its documented value."""
        return int(getattr(self.lib, name, default))

    def ensure_init(self) -> None:
        """Initialise NVML once; DriverUnavailable (remembered) when that fails."""
        with self._lock:
            if self._initialised:
                return
            if self._init_error is not None:
                raise DriverUnavailable(self._init_error)
            try:
                self.lib.nvmlInit()
            except Exception as exc:  # NVMLError, OSError from ctypes, a broken install: all mean "no driver"
                self._init_error = f"{self.what} is not available: {exc}{_disk_cause(exc)}"
                raise DriverUnavailable(self._init_error) from None
            self._initialised = True

    def shutdown(self) -> None:
        """Release NVML if it was initialised."""
        with self._lock:
            if self._initialised:
                self._initialised = False
                self._handles.clear()
                try:
                    self.lib.nvmlShutdown()
                except Exception as exc:  # shutting down must not fail the agent's exit
                    print(f"factoryctl-agent: nvmlShutdown failed: {exc}", file=sys.stderr)

    def _function(self, name: str) -> Optional[Callable[..., Any]]:
        fn = getattr(self.lib, name, None)
        if fn is None and name not in self._missing_logged:
            self._missing_logged.add(name)
            print(f"factoryctl-agent: this pynvml has no {name}; treating it as not supported", file=sys.stderr)
        return fn

    def invoke(self, name: str, *args: object) -> Any:  # noqa: ANN401 - what the NVML function returns, untyped
        """Call NVML function `name`, raising its NVMLError (for setters, whose failures must be reported)."""
        self.ensure_init()
        fn = self._function(name)
        if fn is None:
            raise AttributeError(name)
        with self._lock:
            return fn(*args)

    def query(self, name: str, *args: object) -> Tuple[Any, Optional[str]]:
        """`(value, None)`, or `(None, reason)` when unsupported or failing; GpuLost for a lost GPU."""
        self.ensure_init()
        fn = self._function(name)
        if fn is None:
            return None, MISSING
        error_cls = getattr(self.lib, "NVMLError", Exception)
        try:
            with self._lock:
                return fn(*args), None
        except error_cls as exc:
            code = getattr(exc, "value", None)
            if code == self.constant("NVML_ERROR_GPU_IS_LOST", 15):
                raise GpuLost(str(exc)) from None
            if code == self.constant("NVML_ERROR_NOT_SUPPORTED", 3):
                return None, NOT_SUPPORTED
            if code == self.constant("NVML_ERROR_TIMEOUT", 10):
                return None, "timeout"
            if code == self.constant("NVML_ERROR_FUNCTION_NOT_FOUND", 13):
                if name not in self._missing_logged:
                    self._missing_logged.add(name)
                    print(f"factoryctl-agent: the driver has no {name}; treating it as not supported", file=sys.stderr)
                return None, MISSING
            return None, str(exc).lower() or "driver error"

    def device_count(self) -> int:
        """Number of GPUs; DriverUnavailable when NVML cannot start."""
        value, reason = self.query("nvmlDeviceGetCount")
        if value is None:
            raise DriverUnavailable(f"NVML cannot count GPUs: {reason}")
        return int(value)

    def index_of(self, handle: object) -> Optional[int]:
        """The index of a device handle (from an event), even for a lost GPU that can no longer be asked."""
        key = _handle_key(handle)
        with self._lock:
            for index, known in self._handles.items():
                if _handle_key(known) == key:
                    return index
        try:
            value, _ = self.query("nvmlDeviceGetIndex", handle)
        except GpuLost:
            return None
        return int(value) if value is not None else None

    def handle(self, index: int) -> Any:  # noqa: ANN401 - a driver handle: pynvml's ctypes pointer or the sim's
        """The device handle of GPU `index` (cached); GpuLost or DriverUnavailable when it cannot be had."""
        with self._lock:
            if index in self._handles:
                return self._handles[index]
        value, reason = self.query("nvmlDeviceGetHandleByIndex", index)
        if value is None:
            raise DriverUnavailable(f"no handle for GPU {index}: {reason}")
        with self._lock:
            self._handles[index] = value
        return value


def _disk_cause(exc: BaseException) -> str:
    """` (why)` when `exc` is the simulated driver's NVMLError for its state on disk (its cause an OSError), else ""."""
    cause = exc.__cause__
    return f" ({cause})" if isinstance(cause, OSError) else ""
