"""For help requests: Typer's converters built for the first value they convert, not for an option not given.

Typer (0.29) converts every parsed parameter through a converter it builds on first use, and builds it even for a
value it then passes through untouched (`None`: an option not given, the root's `--help` when a command follows).
Most converters are pydantic TypeAdapters, so `factoryctl power --help` imported pydantic (~50 ms, a third of the
run) for the root's `--config` and `--help` it never converted. Within `coercion_deferred` each parameter gets a
stand-in that Typer's shared `coerce` answers `None` with as before (`None`, or `()` for a multiple value), and that
builds Typer's own converter, and asks it, for the first real value: the same results and errors, only later.
cli/help_only.py uses it for help requests only: any other command line builds its converters while it is parsed,
as before, so a Ctrl-C during that first import is said as a stop while loading (test_stop_while_parsing.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import _TyperParameter

if TYPE_CHECKING:
    from typer._click import Context


@dataclass(frozen=True)
class _BuiltOnFirstValue(RuntimeParam):
    """Typer's converter for `descriptor`, built (once) when the first value that is not `None` comes."""

    descriptor: TypeDescriptor
    built: list[RuntimeParam] = field(default_factory=list)

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:  # noqa: ANN401 - Typer's values
        if not self.built:
            self.built.append(build_runtime_param(self.descriptor))  # Typer's own converter
        return self.built[0]._coerce_value(value, param=param, ctx=ctx)


def _deferred_runtime_param(param: _TyperParameter) -> RuntimeParam:
    """`_TyperParameter.get_runtime_param` with the stand-in in place of a converter built at once."""
    if param._runtime_param is None:
        descriptor = param.type_descriptor
        param._runtime_param = _BuiltOnFirstValue(descriptor.parameter_info, descriptor.annotation, descriptor)
    return param._runtime_param


@contextmanager
def coercion_deferred() -> Iterator[None]:
    """Within: every Typer parameter's converter built for the first value it converts (restored on the way out).

    Nothing changes if Typer's parameters have no `get_runtime_param` (a Typer this was not written for).
    """
    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None:
        yield
        return
    _TyperParameter.get_runtime_param = _deferred_runtime_param  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        _TyperParameter.get_runtime_param = original  # type: ignore[method-assign]
