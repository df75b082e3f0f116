"""Reading a store with nothing to answer: an empty result, exit 0, and why on stderr.

One rule for every command that queries the store (`events`, `audit`, `telemetry history / export / energy`,
`power report`, as `jobs` kept it): a query whose answer is empty prints its empty listing and exits 0, with a note on
stderr saying why, and a store that does not exist yet (a fresh `state_dir`: no sweep, controller or job yet) is such
an empty answer, not a failure of the query. A cron script then fails only on what failed: a store that cannot be
read, a bad option, a `state_dir` that moved. Energy is measured between two readings of a GPU, so a node read once
in a window has no energy there: said as such, not as "no reading".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.store.sqlite import Store


def store_missing(config: FactoryConfig) -> bool:
    """Whether there is no store yet at factory.yaml's `state_dir`: nothing was ever stored with it.

    Not when the store moved away (`state_dir_moved`: opening it says where it is), nor when the path cannot be
    checked (opening it says why).
    """
    from factoryctl.state_dir_moved import moved_from

    try:
        os.lstat(config.store_path)
    except FileNotFoundError:
        return moved_from(config.store_path) is None
    except OSError:
        return False
    return False


def open_if_stored(config: FactoryConfig) -> Store | None:
    """The store, read-only; None when there is none yet (`store_missing`)."""
    from factoryctl.cli.telemetry import open_history

    return None if store_missing(config) else open_history(config)


def note(ctx: typer.Context, sentence: str) -> None:
    """Say on stderr why a result is empty, except under -q: a note; an empty result of a cron job is no fault."""
    if not context.global_options(ctx)[1]:
        sys.stderr.write(f"factoryctl: {sentence}\n")


def note_no_store(ctx: typer.Context, config: FactoryConfig, nothing: str, stored_by: str) -> None:
    """The note of a query before any store: `no event yet: there is no store at PATH; <who stores them>.`."""
    note(ctx, f"{nothing} yet: there is no store at {config.store_path}; {stored_by}.")


#: What stores telemetry, for the notes of the telemetry readers.
TELEMETRY_STORED_BY = "`factoryctl controller run`, or `factoryctl telemetry collect` from cron, stores readings there"


def read_once(store: Store, nodes: Sequence[str], window: tuple[float, float]) -> list[str]:
    """The `nodes` with one stored reading of each GPU in the window, at most: energy needs two, so they have none.

    A node with no reading at all in the window is not one of them (nothing was stored of it there).
    """
    points: dict[str, int] = {}
    for extent in store.history_extents(list(nodes), "power_w", *window):
        points[extent.node] = max(points.get(extent.node, 0), extent.points)
    return [node for node in nodes if points.get(node) == 1]


def once_text(nodes: Sequence[str], window_text: str) -> str:
    """Why nodes read once have no energy: `one reading of ws is stored since T, and energy is measured between two`."""
    from factoryctl.model.folding import fold_nodes

    whose = f"each of {fold_nodes(nodes)} ({len(nodes)} nodes)" if len(nodes) > 1 else nodes[0]
    return f"only one reading of {whose} is stored {window_text}, and energy is measured between two readings"


#: What to do about nodes read once (`once_text`).
ONCE_HINT = "collect again (`factoryctl telemetry collect`), or run the controller"
