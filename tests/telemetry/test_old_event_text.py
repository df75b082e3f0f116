"""Events an older controller stored with the node named twice read as today's (`n02 is degraded: GPU 3 ...`).

Controllers before node messages lost their own prefix stored `n02 is degraded: n02: GPU 3 ...`, and `events`, its
`--follow` and the dashboard showed that copy for as long as the store kept the event. The copy is taken out where
events are read. A real SQLite store, through the in-process CLI and the store's own readers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from factory_yaml import write_factory

from factoryctl.store.logs import EventMatch
from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store

OLD = "n02 is degraded: n02: GPU 3 reports 2 uncorrected ECC errors"
NOW = "n02 is degraded: GPU 3 reports 2 uncorrected ECC errors"


def test_the_doubled_name_of_an_older_controller_is_read_once(cli: Any, tmp_path: Path) -> None:
    factory = write_factory(tmp_path, "n[01-02]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)
    store = Store(tmp_path / "state" / "factory.db")
    now = time.time()
    store.add_events(
        [
            Event(now - 30, "node_degraded", OLD, node="n02", severity="warning"),
            Event(now - 20, "node_down", "n01 is down: no sample for 10 s", node="n01", severity="error"),
            # a message that only mentions another node is left as it is
            Event(now - 10, "drain", "n01 drained: n02: shares its switch", node="n01"),
        ]
    )
    assert store.events(now - 60)[0].message == NOW
    followed = store.events_written(0, store.last_event_id(), EventMatch())
    assert [e.message for e in followed] == [
        NOW,
        "n01 is down: no sample for 10 s",
        "n01 drained: n02: shares its switch",
    ]
    store.close()
    result = cli("--config", str(factory), "events", "--since", "1m", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"][0]["message"] == NOW
