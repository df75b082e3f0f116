"""What a SIGHUP reload of factory.yaml may replace the running configuration with, and the line that says the change.

A reload must never leave a running controller worse off than before it: a file that does not load, and some that
do but cannot be meant (read from a pipe, emptied of nodes, moving the store), are refused with a `ConfigError` that
the controller logs and records while it keeps its configuration. An accepted one is said in one line, nodes folded
(`added g[0001-2000] (2000)`), however large the fleet. Kept apart from the controller's life (controller.py), which
applies the new configuration to its collector and records the event: these are decisions about two
configurations, with nothing of the controller's state in them.
"""

from __future__ import annotations

from factoryctl.config import FactoryConfig, load_config
from factoryctl.errors import ConfigError
from factoryctl.model.folding import fold_nodes


def reloaded_config(current: FactoryConfig) -> FactoryConfig:
    """The configuration read again from `current`'s file; a `FactoryError` when it may not replace `current`.

    Refused besides a broken file: a configuration that came from a pipe (`--config <(sops -d ...)`: read again it
    is empty, and every node was dropped), a new one without a single node where there were some (a file being
    written), and one that moves the store (`state_dir`): the controller keeps the old store's lock and file, so it
    refuses the reload, loudly, rather than report "no node changes" while readers and `controller status` look in
    the new directory and find no controller.
    """
    path = current.path
    if path is not None and path.is_fifo():
        raise ConfigError(
            f"{path} is a pipe, read once when the controller started",
            "restart the controller to change its configuration.",
        )
    new = load_config(path)
    if current.nodes and not new.nodes:
        raise ConfigError(f"{path} has no nodes now", "a file still being written? send SIGHUP again once it is.")
    if new.store_path != current.store_path:
        raise ConfigError(
            f"state_dir changed to {new.state_dir}; restart the controller to move its store "
            f"(it keeps {current.store_path})",
            "until it restarts, `controller status` and the commands that read the store look in the new "
            "state_dir and find no controller there.",
        )
    return new


def reload_summary(old: FactoryConfig, new: FactoryConfig, change: dict[str, list[str]]) -> str:
    """What a reload from `old` to `new` did: the nodes of each `change` (`Collector.apply`) and the intervals."""
    summary = "; ".join(f"{k} {counted(v)}" for k, v in change.items() if v and k != "retimed")
    return "; ".join(filter(None, [summary, _interval_change(old, new), _power_change(old, new)])) or "no node changes"


def _interval_change(old: FactoryConfig, new: FactoryConfig) -> str:
    """What a reload did to the intervals (`interval 5 s -> 1 s`, and the slow tier's), or "" when nothing."""
    said = []
    for name, before, after in (
        ("interval", old.interval_s, new.interval_s),
        ("slow interval", old.settings.controller.slow_interval_s, new.settings.controller.slow_interval_s),
    ):
        if before != after:
            said.append(f"{name} {before:g} s -> {after:g} s")
    return "; ".join(said)


def _power_change(old: FactoryConfig, new: FactoryConfig) -> str:
    """What a reload did to the power loop's settings (`power.interval 5m -> 1m`), or "" when nothing."""
    before, after = old.settings.power, new.settings.power
    said = []
    for key in ("policy", "price_source", "prices", "interval"):
        was, now = getattr(before, key), getattr(after, key)
        if was != now:
            said.append(f"power.{key} {was or 'unset'} -> {now or 'unset'}")
    return "; ".join(said)


def counted(names: list[str]) -> str:
    """Nodes as a folded node set, with their count when there are several: `g[0001-2000] (2000)`.

    A reload of 2,000 nodes listed every name (12,086 characters on one log line and in one event); the set is also
    cut short past `FOLD_MAX_CHARS` (`g[0001,0003,...] (1000)`).
    """
    return fold_nodes(names) if len(names) == 1 else f"{fold_nodes(names)} ({len(names)})"
