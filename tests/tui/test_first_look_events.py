"""A dashboard opened after an ECC error was logged does not announce it again as new, at its own start time.

ECC injected at 09:10:16 and stored by the controller; a dashboard opened at 09:10:53 showed `09:10:53Z ... GPU 1:
uncorrectable ECC errors 1`: a node's first sample is compared with a healthy GPU, so a condition already there is an
event, which the store already had. It is now shown once, with the time it happened. Real agents on the simulated
driver, a real SQLite store.
"""

from __future__ import annotations

import time
from pathlib import Path

from waiting import wait_for

from factoryctl.demo import demo_config
from factoryctl.live.services_polled import PolledServices
from factoryctl.store import open_store
from factoryctl.store.rows import Event


def ecc_events(services: PolledServices) -> list[tuple[float, str]]:
    return [(e.time, e.message) for e in services.snapshot().events if e.node == "demo01" and e.kind == "ecc"]


def up_with_session(services: PolledServices) -> bool:
    """demo01 shows up and its session is handed out: the link streams before it hands the session out."""
    return services.snapshot().node("demo01").state == "up" and services._nodes["demo01"].session is not None


def test_an_ecc_error_the_store_holds_is_shown_once_with_its_own_time(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    first = PolledServices(config, "demo01", use_store=False)  # the sim keeps the error in its state file
    try:
        wait_for(lambda: up_with_session(first), 15.0, "demo01 up with its session")
        first._nodes["demo01"].session.request("inject", gpus=[2], fault="ecc")  # as `factoryctl sim inject --ecc`
        wait_for(lambda: ecc_events(first), 10.0, "the ECC event")
        [(_, message)] = ecc_events(first)
    finally:
        first.close()
    happened = time.time() - 40  # as the controller logged it then
    store = open_store(config.store_path)
    try:
        store.add_events([Event(happened, "ecc", message, node="demo01", gpu=2, severity="error")])
    finally:
        store.close()
    later = PolledServices(config, "demo01")  # a dashboard opened later
    try:
        wait_for(lambda: not later.snapshot().node("demo01").healthy, 15.0, "demo01 unhealthy")
        # A duplicate could only come from the first sample (later ones are compared with it), and its events are
        # added after it shows; one reader thread offers the samples in turn, so once a later sample shows, the
        # first one's events are all in: no fixed wait.
        first_time = later.snapshot().node("demo01").time
        wait_for(lambda: later.snapshot().node("demo01").time > first_time, 15.0, "a later sample of demo01")
        shown = ecc_events(later)
    finally:
        later.close()
    assert len(shown) == 1
    assert shown[0][1] == message
    assert abs(shown[0][0] - happened) < 0.01
