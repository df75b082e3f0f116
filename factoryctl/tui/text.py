"""Words and number formats shared by the dashboard's renderables: one place decides how a watt or a time reads."""

from __future__ import annotations

import re
import time as _time
from collections.abc import Sequence

from rich.text import Text

from factoryctl.model.telemetry import GpuSample
from factoryctl.tui.renderables.palette import tone

#: Clock event (throttle) reasons in words, keyed by the names NVML, nvidia-smi and our agent use.
THROTTLE_WORDS: dict[str, str] = {
    "gpu_idle": "idle",
    "gpuidle": "idle",
    "applications_clocks_setting": "application clocks setting",
    "applicationsclockssetting": "application clocks setting",
    "sw_power_cap": "held at its power cap",
    "swpowercap": "held at its power cap",
    "hw_slowdown": "hardware slowdown (power brake or overheat)",
    "hwslowdown": "hardware slowdown (power brake or overheat)",
    "sync_boost": "sync boost with other GPUs",
    "syncboost": "sync boost with other GPUs",
    "sw_thermal_slowdown": "slowed by the driver to cool down",
    "swthermalslowdown": "slowed by the driver to cool down",
    "hw_thermal_slowdown": "hardware thermal slowdown",
    "hwthermalslowdown": "hardware thermal slowdown",
    "hw_power_brake_slowdown": "external power brake",
    "hwpowerbrakeslowdown": "external power brake",
    "display_clock_setting": "display clock setting",
    "displayclocksetting": "display clock setting",
}


#: The same reasons in a word or two, for table cells.
THROTTLE_SHORT: dict[str, str] = {
    "idle": "idle",
    "held at its power cap": "power cap",
    "hardware slowdown (power brake or overheat)": "hw slowdown",
    "slowed by the driver to cool down": "thermal",
    "hardware thermal slowdown": "hw thermal",
    "external power brake": "power brake",
    "sync boost with other GPUs": "sync boost",
    "application clocks setting": "app clocks",
    "display clock setting": "display clock",
}


def throttle_short(reasons: tuple[str, ...] | list[str]) -> str:
    """`power cap, thermal`, or `none`: the table cell form of `throttle_words`."""
    if not reasons:
        return "none"
    return ", ".join(THROTTLE_SHORT.get(w, w) for w in throttle_words(reasons).split(", "))


def throttle_words(reasons: tuple[str, ...] | list[str]) -> str:
    """`held at its power cap, slowed by the driver to cool down`, or `none`."""
    if not reasons:
        return "none"
    words = []
    for reason in reasons:
        key = reason.lower().replace("clockseventreason", "").replace("clocksthrottlereason", "")
        words.append(THROTTLE_WORDS.get(key, THROTTLE_WORDS.get(key.replace("_", ""), reason.replace("_", " "))))
    return ", ".join(dict.fromkeys(words))


def watts(value: float | None) -> str:
    """`452 W`, or `—` when unknown."""
    return "—" if value is None else f"{value:.0f} W"


def kilowatts(value: float | None, digits: int = 1) -> str:
    """`38.2 kW`, or `—`."""
    return "—" if value is None else f"{value:.{digits}f} kW"


def percent(value: float | None) -> str:
    """`87%`, or `—`."""
    return "—" if value is None else f"{value:.0f}%"


def celsius(value: float | None) -> str:
    """`71°C`, or `—`."""
    return "—" if value is None else f"{value:.0f}°C"


def clock(timestamp: float | None) -> str:
    """`01:23:45Z` (UTC), `—` when unknown, or `?` for a time no clock can show (a node's, 1e18: never a crash)."""
    if timestamp is None:
        return "—"
    try:
        return _time.strftime("%H:%M:%SZ", _time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):  # past the platform's time_t (OSError on Linux), or NaN
        return "?"


def mib(value: float | None) -> str:
    """`80 GiB` / `512 MiB`, or `—`."""
    if value is None:
        return "—"
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def not_reported(gpu: GpuSample, name: str) -> Text:
    """`n/a (reason)` in grey for a field the driver did not report (never a made-up 0 or "none")."""
    reason = gpu.null_reasons.get(name)
    return Text(f"n/a ({reason})" if reason else "n/a", style=tone("secondary"))


def xid_events(gpu: GpuSample) -> list[tuple[int, float | None]]:
    """(XID code, unix time) of a GPU's recent XID events, oldest first; empty when the sample carries none."""
    return [(event.xid, event.time) for event in gpu.xid_events]


#: The narrowest a node's name is elided to (`gpu-a01…`, `gpu-…0001`): the node table's column, an event's line.
NAME_MIN_WIDTH = 8


def _token_start(name: str, index: int) -> int:
    """The start of the letters-and-digits run `index` falls in (a boundary inside `a01` moves to its `a`)."""
    while 0 < index <= len(name) and name[index - 1].isalnum() and (index == len(name) or name[index].isalnum()):
        index -= 1
    return index


def _token_end(name: str, index: int) -> int:
    """The end of the letters-and-digits run `index` falls in (a boundary inside `a01` moves past its `1`)."""
    while 0 <= index < len(name) and name[index].isalnum() and (index == 0 or name[index - 1].isalnum()):
        index += 1
    return index


def _shared_start(first: str, second: str) -> int:
    """How many characters `first` and `second` share from their start."""
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


def common_affixes(names: Sequence[str]) -> tuple[int, int]:
    """The lengths of the prefix and the suffix every name shares, cut back to whole words; (0, 0) for a lone name.

    `gpu-a01.dc1.example` and `gpu-b02.dc1.example` share `gpu-` and `.dc1.example`: (4, 12). One odd name (`mgmt`)
    among them leaves nothing shared: `name_affixes` finds them among the names of each one's shape.
    """
    distinct = sorted(set(names))
    if len(distinct) < 2:
        return 0, 0
    prefix = _shared_start(distinct[0], distinct[-1])  # the sorted ends share what every name shares
    backwards = sorted(n[::-1] for n in distinct)
    suffix = min(_shared_start(backwards[0], backwards[-1]), min(len(n) for n in distinct) - prefix)
    prefix = min(_token_start(n, prefix) for n in distinct)
    suffix = min(len(n) - _token_end(n, len(n) - suffix) for n in distinct)
    return prefix, max(suffix, 0)


_WORDS = re.compile(r"[^\W_]+")  # a run of letters and digits (str.isalnum's, as `_token_start` reads them)


def _shape(name: str) -> str:
    """The name with each run of letters and digits as one `x`: `gpu-r01-n01.dc1.example.com` reads `x-x-x.x.x.x`."""
    return _WORDS.sub("x", name)


def name_affixes(names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each name's shared prefix and suffix (`common_affixes`), found among the names of its shape only.

    1,984 `gpu-rNN-nNN.dc1.example.com` beside `mgmt` and `sim01`..`sim40` still share `gpu-` and `.dc1.example.com`
    (the odd names, of other shapes, share theirs among themselves), so one odd name never cuts every other's middle.
    """
    families: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        families.setdefault(_shape(name), []).append(name)
    affixes: dict[str, tuple[int, int]] = {}
    for family in families.values():
        affixes.update(dict.fromkeys(family, common_affixes(family)))
    return affixes


def _fit(part: str, width: int) -> str:
    """`part` in `width` cells (2 or more) when nothing it shares is left to cut: its domain first, then its middle.

    A host's first label (before its first dot) names it, its number last; its domain is what the fleet shares:
    `gpu-r10-n13.dc1.example.com` reads `gpu-r10-n13.dc1.exa…`, then `gpu-r10-n13…`, then `…r10-n13`.
    """
    if len(part) <= width:
        return part
    host = part.split(".", 1)[0] or part
    if len(host) < width:
        return f"{part[: width - 1]}…"
    if host != part:
        return f"…{host[len(host) - width + 1 :]}"
    kept_end = (width - 1) - (width - 1) // 2
    return f"{host[: width - 1 - kept_end]}…{host[len(host) - kept_end :]}"


def elide_name(name: str, width: int, affixes: tuple[int, int] = (0, 0)) -> str:
    """`name` in at most `width` cells: its part no other name shares kept whole, the shared parts cut with `…`.

    `affixes` are the lengths of the prefix and suffix the name shares with the others (`name_affixes`):
    `gpu-a01.dc1.example` reads `gpu-a01.dc…`, `gpu-node-with-a-long-common-prefix-0001` reads `gpu-node-…0001`.
    Without shared parts (or no room for them) a host name loses its domain, then any name its middle, keeping the
    end, where names differ most (`_fit`): `gpu-r10-n13…`, `gpu-nod…fix-0001`.
    """
    if len(name) <= width:
        return name
    if width <= 1:
        return "…"[:width]
    prefix, suffix = affixes
    head, distinct, tail = name[:prefix], name[prefix : len(name) - suffix], name[len(name) - suffix :]
    if distinct:
        room_in_tail = width - len(head) - len(distinct) - 1
        if tail and room_in_tail >= 0:
            return f"{head}{distinct}{tail[:room_in_tail]}…"
        room_in_head = width - 1 - len(distinct) - len(tail)
        if head and room_in_head >= 0:
            return f"{head[:room_in_head]}…{distinct}{tail}"
        room_in_both = width - 2 - len(distinct)
        if head and tail and room_in_both >= 0:
            return f"{head[:room_in_both]}…{distinct}…"
        if len(distinct) < width:  # no room for a shared part: mark where it was cut
            return f"…{distinct}" if head else f"{distinct}…"
        if head and width > 2:  # the distinct part too long itself: cut as a lone name's, after the shared head
            fitted = _fit(distinct, width - 1)
            return fitted if fitted.startswith("…") else f"…{fitted}"
    return _fit(distinct if distinct and not head else name, width)
