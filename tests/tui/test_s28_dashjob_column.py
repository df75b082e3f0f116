"""The node screen says which job holds each GPU: a Job column in its GPU table and a job line in the GPU's detail.

Its id, `none` for a GPU no job holds, `unknown` (with why, in the detail) when the snapshot holds no holders: the
store was not read. Renderables without an App, then the real app under Pilot on the fixed factory.
"""

from __future__ import annotations

import dataclasses

from factory_data import FrozenServices, fixed_snapshot
from pilot_helpers import first_snapshot, plain, screen_text, wait_until
from textual.pilot import Pilot

from factoryctl.jobs.holders import GpuHolders
from factoryctl.live.services import NO_JOB_STORE, GpuJob
from factoryctl.tui.app import DashboardApp, make_app
from factoryctl.tui.renderables.gpu_detail import GpuDetailRenderable, detail_rows
from factoryctl.tui.renderables.gpu_job import job_cell
from factoryctl.tui.screens.node import NodeScreen
from factoryctl.tui.widgets.gpu_detail import GpuDetail
from factoryctl.tui.widgets.gpu_table import COLUMNS, GpuTable, gpu_row

#: eval-7b on GPUs 0-3 of demo04 (the fixed factory's jobs panel says it runs there).
HELD = GpuHolders({"demo04": dict.fromkeys(range(4), "8csw3m9ab2")})
UNKNOWN = GpuJob(None, NO_JOB_STORE)


def test_the_cell_is_the_id_none_or_unknown() -> None:
    assert job_cell(GpuJob("8csw3m9ab2")).plain == "8csw3m9ab2"
    assert job_cell(GpuJob(None)).plain == "none"
    assert job_cell(UNKNOWN).plain == "unknown"


def test_the_row_puts_the_job_in_its_column() -> None:
    snap = fixed_snapshot(gpu_jobs=HELD)
    gpu = snap.nodes[3].gpus[2]
    row = gpu_row(gpu, snap.gpu_job("demo04", 2))
    assert len(row) == len(COLUMNS)
    assert row[[key for key, _ in COLUMNS].index("job")].plain == "8csw3m9ab2"
    assert row[0].plain == "2"


def test_the_detail_names_the_job_or_says_why_it_is_unknown() -> None:
    snap = fixed_snapshot(gpu_jobs=HELD)
    gpu = snap.nodes[3].gpus[0]
    assert dict(detail_rows(gpu, snap.gpu_job("demo04", 0)))["job"].plain == "8csw3m9ab2"
    assert dict(detail_rows(gpu, snap.gpu_job("demo04", 5)))["job"].plain == "none"
    unknown = plain(GpuDetailRenderable(gpu, None, fixed_snapshot().gpu_job("demo04", 0)), width=120)
    assert f"job         unknown ({NO_JOB_STORE})" in unknown
    assert "none" not in unknown.split("job", 1)[1].splitlines()[0]


def test_a_lost_gpu_still_names_its_job() -> None:
    """The job holding a GPU that fell off the bus is the one about to fail: its detail says which."""
    lost = dataclasses.replace(fixed_snapshot().nodes[3].gpus[1], null_reasons={"processes": "gpu_lost"})
    rows = dict(detail_rows(lost, GpuJob("8csw3m9ab2")))
    assert "state" in rows
    assert rows["job"].plain == "8csw3m9ab2"


def gpu_lines(text: str) -> dict[int, str]:
    """The GPU table's rows on screen, by GPU index (`│ 0    8csw…`)."""
    rows = {}
    for line in text.splitlines():
        cells = line.strip("│ ").split()
        if len(cells) > 2 and cells[0].isdigit() and cells[2].endswith("%"):
            rows[int(cells[0])] = line
    return rows


async def demo04_screen(app: DashboardApp, pilot: Pilot[None]) -> str:
    """Open demo04's node screen once its 8 GPUs are in the table: what the terminal shows then."""
    await first_snapshot(pilot)
    app.push_screen(NodeScreen("demo04"))
    await wait_until(pilot, lambda: app.screen.query(GpuTable) and app.screen.query_one(GpuTable).row_count == 8)
    await pilot.pause()
    return screen_text(app)


async def test_the_node_screen_shows_each_gpus_job_at_80_columns() -> None:
    services = FrozenServices(fixed_snapshot(gpu_jobs=HELD))
    app = make_app(services)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await demo04_screen(app, pilot)
        rows = gpu_lines(text)
        assert sorted(rows) == list(range(8)), text
        assert all(len(line) <= 80 for line in text.splitlines())
        for index in range(4):
            assert rows[index].split()[2] == "8csw3m9ab2", rows[index]
        for index in range(4, 8):
            assert rows[index].split()[2] == "none", rows[index]
        assert " job         8csw3m9ab2" in text  # the detail of GPU 0, under the cursor

        services.current = dataclasses.replace(services.current, gpu_jobs=GpuHolders())  # eval-7b ended
        detail = app.screen.query_one(GpuDetail)
        app.request_snapshot()  # what the refresh timer does each interval
        await wait_until(pilot, lambda: detail.job == GpuJob(None), what="the next snapshot")
        await pilot.pause()
        assert all(line.split()[2] == "none" for line in gpu_lines(screen_text(app)).values())


async def test_without_holders_the_node_screen_says_unknown_never_none() -> None:
    app = make_app(FrozenServices(fixed_snapshot()))  # no store was read: the snapshot holds no holders
    async with app.run_test(size=(80, 24)) as pilot:
        text = await demo04_screen(app, pilot)
    rows = gpu_lines(text)
    assert sorted(rows) == list(range(8)), text
    assert all(line.split()[2] == "unknown" for line in rows.values())
    assert " job         unknown (the store holding" in text
