"""The price-source resolver: a configured name (`power.price_source`) to a working source, plugins included.

Sources are registered in the `factoryctl.price_sources.v1` entry-point group, the built-in `csv` too (pyproject),
and are listed without importing them (`factoryctl.config_price_sources.price_source_entries`). Only the source a
command or the dashboard actually uses is imported, here, when it is first needed. Third-party code fails in every
way (an import error, a raising constructor, a module where a class belongs, NaN or unsorted prices), so every
failure of a plugin becomes one `PriceSourceError` naming the plugin and its package, never a traceback; and its
prices are checked before anyone uses them, so bad data cannot reach the policy or the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from factoryctl.config_price_sources import SourceEntry, price_source_entries, price_source_name_problem
from factoryctl.errors import ConfigError, FactoryError, UsageError
from factoryctl.model.power import PricePoint, iso_utc_seconds
from factoryctl.power.sources import MAX_PRICE_PER_MWH, CsvPriceSource, PriceSource
from factoryctl.textfile import exact_number

#: The distribution that ships the built-in sources; its entries win over a plugin that registers the same name.
BUILTIN_PACKAGE = "factoryctl"
PLUGIN_HINT = "fix or uninstall that package, or set another power.price_source in factory.yaml."
#: How long a plugin's `fetch` may take. Plugins are asked to time out their own network calls (docs/power.md);
#: this is the backstop for one that does not, so a hung price feed never hangs a command or the dashboard.
PLUGIN_FETCH_TIMEOUT_S = 60.0
#: What to do about the built-in CSV source's file that cannot be read or used: it is named in factory.yaml, so the
#: hint of `--prices FILE` (`pipe it in with --prices -`, an option never given) would send the user elsewhere.
CONFIGURED_FILE_HINT = (
    "power.prices in factory.yaml names this file (a relative path is taken from factory.yaml's directory): point"
    " it at an uncompressed UTF-8 CSV of timestamp_utc,price_per_mwh, or fix the file."
)
LATE_HINT = "check the price feed's network and the plugin's own timeouts; " + PLUGIN_HINT

_T = TypeVar("_T")  # what a plugin's call returns, handed back by `_in_time`


class PriceSourceError(FactoryError):
    """A price-source plugin failed to load or gave unusable prices (exit 1)."""


@dataclass(frozen=True)
class Resolution:
    """The entry a name resolves to, and warnings about the others that register it (shadowed, duplicate)."""

    entry: SourceEntry
    warnings: tuple[str, ...]


def resolve_entry(name: str) -> Resolution:
    """The registered entry called `name`: the built-in first, else the only plugin; a `ConfigError` otherwise."""
    entries, _ = price_source_entries()
    candidates = [e for e in entries if e.name == name]
    if not candidates:
        problem = price_source_name_problem(name) or f"no price source `{name}` is installed"
        raise ConfigError(f"power.price_source: {problem}.", "install the plugin's package, or fix the name.")
    builtin = [e for e in candidates if e.package == BUILTIN_PACKAGE]
    chosen = builtin[0] if builtin else candidates[0]
    others = [e for e in candidates if e is not chosen]
    if others and not builtin:
        packages = ", ".join(e.package for e in candidates)
        raise ConfigError(
            f"power.price_source: `{name}` is registered by several packages ({packages}), so which one runs would be"
            " a guess.",
            "uninstall all but one of them.",
        )
    warnings = tuple(shadow_warning(e, chosen) for e in others)
    return Resolution(chosen, warnings)


def shadow_warning(entry: SourceEntry, used: SourceEntry) -> str:
    """The sentence for a plugin that registers a built-in's name."""
    return (
        f"package {entry.package} registers price source `{entry.name}` ({entry.value}), the name of the built-in;"
        f" the built-in {used.value} is used"
    )


@dataclass
class LoadedPriceSource:
    """A resolved, constructed source whose `fetch` checks what the plugin returns and names it on any failure."""

    entry: SourceEntry
    source: PriceSource
    #: Sentences about other packages registering the same name (shadowed by the built-in), for stderr.
    warnings: tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        """True for factoryctl's own sources, whose errors (a bad CSV line) are already sentences."""
        return self.entry.package == BUILTIN_PACKAGE

    @property
    def utc_offset_s(self) -> int:
        """The market's clock (`sources.market_offset_s`): the built-in CSV file's own offset; plugins' is UTC."""
        from factoryctl.power.sources import market_offset_s

        return market_offset_s(self.source) if self.builtin else 0

    @property
    def label(self) -> str:
        """`plugin guess (package fcpl-guess)`, as every message names a source."""
        return f"price source `{self.entry.name}` (package {self.entry.package})"

    def fetch(self, start_s: int | None = None, end_s: int | None = None) -> tuple[PricePoint, ...]:
        """Prices of intervals starting in [start_s, end_s), checked; a plugin's failure is a `PriceSourceError`."""
        try:
            raw = self.source.fetch(start_s, end_s) if self.builtin else self._fetch_in_time(start_s, end_s)
        except PriceSourceError:  # ours (the timeout): already the sentence
            raise
        except UsageError as exc:
            if self.builtin:  # factory.yaml named the file, not an option: a config error, fixed there (exit 3)
                raise ConfigError(exc.message, CONFIGURED_FILE_HINT) from None
            raise PriceSourceError(f"{self.label} failed to fetch prices.", PLUGIN_HINT) from None
        except FactoryError:
            if self.builtin:
                raise
            raise PriceSourceError(f"{self.label} failed to fetch prices.", PLUGIN_HINT) from None
        except Exception as exc:  # third-party code: anything it raises is its failure, reported as one sentence
            raise PriceSourceError(f"{self.label} failed to fetch prices: {_what(exc)}.", PLUGIN_HINT) from exc
        points = checked_points(raw, self.label)
        return tuple(
            p
            for p in points
            if (start_s is None or p.timestamp_s >= start_s) and (end_s is None or p.timestamp_s < end_s)
        )

    def _fetch_in_time(self, start_s: int | None, end_s: int | None) -> Sequence[PricePoint]:
        """The plugin's `fetch`, given PLUGIN_FETCH_TIMEOUT_S (`_in_time`); a `PriceSourceError` past it."""
        late = f"{self.label} gave no prices within {PLUGIN_FETCH_TIMEOUT_S:g} s (its fetch is still running)."
        return _in_time(lambda: self.source.fetch(start_s, end_s), f"price-fetch-{self.entry.name}", late)


def _in_time(call: Callable[[], _T], thread_name: str, late: str) -> _T:
    """`call()` in a daemon thread given PLUGIN_FETCH_TIMEOUT_S: its value, or what it raised, raised here.

    Past the limit it is a `PriceSourceError` saying `late`. A thread cannot be stopped, so a hung plugin's thread is
    left behind, daemonic: it never keeps the process alive, and the caller goes on with an error instead of waiting
    forever. Plugins' imports, constructors (which often log in) and fetches all run this way.
    """
    import threading

    outcome: list[tuple[Literal[True], _T] | tuple[Literal[False], BaseException]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread, which classifies it
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=thread_name, daemon=True)
    worker.start()
    worker.join(PLUGIN_FETCH_TIMEOUT_S)
    if not outcome:
        raise PriceSourceError(late, LATE_HINT)
    first = outcome[0]
    if not first[0]:
        raise first[1]
    return first[1]


def _what(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def checked_points(raw: object, label: str) -> tuple[PricePoint, ...]:
    """`raw` as price points, or a `PriceSourceError` saying what is wrong with the first bad one."""
    if not isinstance(raw, Iterable) or isinstance(raw, (str, bytes)):
        raise PriceSourceError(f"{label} returned {type(raw).__name__}, not a sequence of PricePoint.", PLUGIN_HINT)
    points: list[PricePoint] = []
    for index, point in enumerate(raw):
        problem = _point_problem(point)
        if problem is None and points and point.timestamp_s <= points[-1].timestamp_s:
            problem = f"{iso_utc_seconds(point.timestamp_s)} repeats or goes back (times must strictly increase)"
        if problem is not None:
            raise PriceSourceError(f"{label} returned bad prices: item {index}: {problem}.", PLUGIN_HINT)
        points.append(point)
    return tuple(points)


def _point_problem(point: object) -> str | None:
    if not isinstance(point, PricePoint):
        return f"{point!r:.80} is a {type(point).__name__}, not a factoryctl.model.power.PricePoint"
    stamp, price = point.timestamp_s, point.price_per_mwh
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        return f"timestamp_s is {stamp!r:.40}, not an int of UTC epoch seconds"
    if price is None:
        return None
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        return f"price_per_mwh is {price!r:.40}, not a float or None"
    if not math.isfinite(price):
        return f"price_per_mwh is {price!r}; an unknown price is None, and prices are finite"
    if abs(price) > MAX_PRICE_PER_MWH:
        return f"price_per_mwh {exact_number(price)} is beyond ±{MAX_PRICE_PER_MWH:,.0f} per MWh (a unit mistake?)"
    return None


def open_price_source(name: str, argument: str | None, base: Path | None = None) -> LoadedPriceSource:
    """Resolve `name`, import its entry point and construct it with `argument` (`power.prices`).

    For the built-in `csv` a relative file is taken from `base` (factory.yaml's directory). Errors: an unknown name
    is a `ConfigError` (exit 3); a plugin that cannot be imported or constructed, or takes longer than
    PLUGIN_FETCH_TIMEOUT_S to, a `PriceSourceError` (exit 1).
    """
    resolution = resolve_entry(name)
    entry = resolution.entry
    if entry.package == BUILTIN_PACKAGE and entry.name == "csv":
        if not (argument or "").strip():
            raise ConfigError(
                "power.price_source is `csv` but power.prices names no file.", "set power.prices: FILE in factory.yaml."
            )
        path = Path(argument or "").expanduser()
        csv = CsvPriceSource(path if path.is_absolute() or base is None else base / path)
        return LoadedPriceSource(entry, csv, resolution.warnings)
    label = f"price source `{entry.name}` (package {entry.package})"
    if entry.problem:
        raise PriceSourceError(f"{label} cannot be loaded: {entry.problem}.", PLUGIN_HINT)
    late = f"{label} did not start within {PLUGIN_FETCH_TIMEOUT_S:g} s (its import or constructor is still running)."
    source = _in_time(lambda: _started_plugin(entry, argument, label), f"price-start-{entry.name}", late)
    return LoadedPriceSource(entry, source, resolution.warnings)


def _started_plugin(entry: SourceEntry, argument: str | None, label: str) -> PriceSource:
    """Import the plugin's entry point and construct it with `argument`; any failure a `PriceSourceError`."""
    from importlib.metadata import EntryPoint

    try:
        factory = EntryPoint(entry.name, entry.value, "").load()
    except Exception as exc:  # an import error, or anything the module raises as it is imported
        raise PriceSourceError(f"{label} failed to import {entry.value}: {_what(exc)}.", PLUGIN_HINT) from exc
    if not callable(factory):
        raise PriceSourceError(
            f"{label}: {entry.value} is not a class or factory (it is of type {type(factory).__name__}).", PLUGIN_HINT
        )
    try:
        source: PriceSource = factory(argument)
    except Exception as exc:
        raise PriceSourceError(f"{label} failed to start: {_what(exc)}.", PLUGIN_HINT) from exc
    if not callable(getattr(source, "fetch", None)):
        raise PriceSourceError(f"{label}: {entry.value}(prices) returned an object without fetch().", PLUGIN_HINT)
    return source
