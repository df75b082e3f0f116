"""Play a full disk on a store: SQLite's page limit set to the pages the file holds now.

The store has no size limit of its own (a full disk or `ulimit -f` is what fills it in the field), so the tests
that need a full store set SQLite's `max_page_count` through the connection here, not through a store method.
"""

from __future__ import annotations

from factoryctl.store.sqlite import Store


def cap_at_current_size(store: Store) -> None:
    """Cap `store` at its page count now: the next write that needs one more page fails as a full disk would."""
    pages = int(store._query("PRAGMA page_count")[0][0])
    store._query(f"PRAGMA max_page_count = {pages}")
