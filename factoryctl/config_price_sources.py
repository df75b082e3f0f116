"""The price sources registered as entry points, read from each distribution's metadata (nothing imported).

Split from config_schema.py (house rule: files under ~500 lines): `power.price_source` is checked against this
listing outside the schema (a missing price feed must not stop other commands), so it needs no pydantic.
config_schema re-exports its names for the modules that import them from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import Distribution


#: The entry-point group of price sources; `.v1` is the plugin API version (docs/power.md, "Price-source plugins").
PRICE_SOURCE_GROUP = "factoryctl.price_sources.v1"
#: `module.path:attribute`: a price source's entry point must name a class or factory, not a module.
_REFERENCE = re.compile(r"^\s*[A-Za-z_][\w.]*\s*:\s*[A-Za-z_][\w.]*\s*$")


@dataclass(frozen=True)
class SourceEntry:
    """One name registered in the price-source group, read from a distribution's metadata (nothing imported)."""

    name: str
    value: str
    package: str
    #: Why the entry cannot be used (e.g. it names a module, not a class), or None.
    problem: str | None = None


#: The built-in CSV source, as pyproject registers it (`csv = "factoryctl.power.sources:CsvPriceSource"`).
BUILTIN_CSV = SourceEntry("csv", "factoryctl.power.sources:CsvPriceSource", "factoryctl")


def price_source_problem(name: str | None, prices: str | None) -> str | None:
    """Why `power.price_source` cannot give prices (an unknown name, csv without a file), or None.

    Not a schema error: a price feed that is missing must not stop `nodes`, `gpus` or `power reset`. `config
    validate` warns with it; the commands that read prices refuse with it.
    """
    if name is None:
        return None
    problem = price_source_name_problem(name)
    if problem is None and name == "csv" and not (prices or "").strip():
        problem = "price_source `csv` needs `prices:`, the CSV file it reads (timestamp_utc,price_per_mwh)"
    return problem


def price_source_entries() -> tuple[tuple[SourceEntry, ...], tuple[str, ...]]:
    """Every registered price source, and one warning per distribution whose metadata cannot be read.

    This is the one listing of the group (`price sources`, config validation and the resolver in
    factoryctl.power.plugins use it). `importlib.metadata.entry_points()` reads every distribution at once, so one
    broken entry_points.txt (a non-UTF-8 byte) would break them all; here each distribution is read on its own.
    """
    from importlib.metadata import distributions

    entries: list[SourceEntry] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for dist in distributions():
        where = str(getattr(dist, "_path", None) or "a distribution")  # its .dist-info directory, when it has one
        package = ""
        try:
            text = dist.read_text("entry_points.txt") or ""
            if PRICE_SOURCE_GROUP not in text:  # most packages: their METADATA is not even parsed (start-up budget)
                continue
            package = str(dist.metadata["Name"] or "") or where
            key = re.sub(r"[-_.]+", "-", package).lower()
            if key in seen:  # the same distribution found twice on sys.path: the first wins, as importlib's own
                continue
            seen.add(key)
            points = [ep for ep in dist.entry_points if ep.group == PRICE_SOURCE_GROUP]
        except Exception as exc:  # third-party metadata: any failure is that package's, never ours
            package = package or _package_name(dist)
            named = f"package {package} ({where})" if package else where
            warnings.append(f"cannot read the entry points of {named}: {type(exc).__name__}: {exc}; it is skipped")
            continue
        for ep in points:
            problem = None if _REFERENCE.match(ep.value) else f"`{ep.value}` does not name a class or factory"
            entries.append(SourceEntry(ep.name, ep.value, package, problem))
    if not any(e.name == BUILTIN_CSV.name and e.package == BUILTIN_CSV.package for e in entries):
        entries.append(BUILTIN_CSV)  # a checkout run without installing registers no entry point: csv is still ours
    return tuple(entries), tuple(warnings)


def _package_name(dist: Distribution) -> str:
    """A distribution's name for a warning, or "" when even that cannot be read."""
    try:
        return str(dist.metadata["Name"] or "")
    except Exception:  # the warning then names its directory instead
        return ""


def price_source_name_problem(name: str) -> str | None:
    """Why `name` is no registered price source (with a did-you-mean), or None."""
    import difflib

    entries, _ = price_source_entries()
    names = sorted({e.name for e in entries})
    if name in names:
        bad = [e for e in entries if e.name == name and e.problem]
        if bad and len(bad) == len([e for e in entries if e.name == name]):
            return f"price source `{name}` of package {bad[0].package} is broken: {bad[0].problem}"
        return None
    near = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(name, names, n=1)
    suggestion = f"did you mean `{near[0]}`? " if near else ""
    listed = ", ".join(f"`{n}`" for n in names) or "none"
    return f"no price source `{name}` is installed; {suggestion}installed: {listed} (see `factoryctl price sources`)"
