"""Store failures read as one clean sentence plus a separate hint, a damaged store is its own error class, and
`nodes` still lists the nodes (live) when the store holding the drains is damaged, as `gpus` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from damaged_store import damage
from store_size_limit import cap_at_current_size

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store, StoreDamaged, StoreError

T0 = 1_700_000_040.0


def sample(node: str = "n1", t: float = T0, gpus: int = 1) -> NodeSample:
    return NodeSample(node, t, gpus=tuple(GpuSample(node, i, uuid=f"GPU-{node}-{i}") for i in range(gpus)))


def one_sentence(error: StoreError) -> None:
    """A sentence ending once, its parentheses balanced and not nested, and a hint of its own."""
    assert error.message.endswith(".")
    assert not error.message.endswith("..")
    assert ". " not in error.message.rstrip(".")
    assert error.message.count("(") == error.message.count(")") <= 1
    assert error.hint
    assert error.hint not in error.message


def test_full_store_says_what_was_not_saved(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    store.write([sample()])
    cap_at_current_size(store)
    with pytest.raises(StoreError) as info:
        store.write([sample(f"x{i}", T0 + i, gpus=8) for i in range(500)])
    assert info.value.message == (
        f"the store at {store.path} is full (the disk or the database size limit), so the samples were not saved."
    )
    one_sentence(info.value)
    with pytest.raises(StoreError, match=r"is full .*, so the drain was not saved\.$") as info:
        store.set_drained([f"y{i}" * 200 for i in range(2000)], True, "r" * 1000, "me")
    one_sentence(info.value)


def test_read_only_connection_says_what_was_not_saved(tmp_path: Path) -> None:
    Store(tmp_path / "factory.db").close()
    reader = Store(tmp_path / "factory.db", readonly=True)
    with pytest.raises(StoreError) as info:
        reader.set_drained(["n1"], True, "fan", "me")
    assert info.value.message == f"the store at {reader.path} is read-only for this user, so the drain was not saved."
    one_sentence(info.value)
    assert "write access" in (info.value.hint or "")


def test_damaged_store_is_its_own_error_with_a_hint_that_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    store = Store(path)
    store.write([sample()])
    store.close()
    damage(path, "node")
    store = Store(path)  # opening reads the header and the schema, still intact
    with pytest.raises(StoreDamaged) as info:
        store.write([sample(t=T0 + 1)])
    assert info.value.message == f"the store at {path} is damaged: database disk image is malformed."
    one_sentence(info.value)
    assert info.value.hint is not None
    assert f"mv {path} {path}.damaged" in info.value.hint
    assert "the next controller start creates a new store" in info.value.hint
    store.close()


def test_nodes_lists_live_nodes_and_warns_when_the_store_with_the_drains_is_damaged(tmp_path: Path, cli: Any) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nnodes:\n  n1: {{transport: local, sim: h100-sxm, gpus: 2}}\n")
    assert cli("--config", str(config), "nodes", "drain", "n1", "--reason", "fan").exit_code == 0
    damage(tmp_path / "state" / "factory.db", "node")
    result = cli("--config", str(config), "nodes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (item,) = result.json()["items"]  # type: ignore[index]
    assert (item["node"], item["state"], item["gpus"], item["drained"]) == ("n1", "up", 2, None)
    warning = f"factoryctl: warning: the store at {tmp_path / 'state' / 'factory.db'} is damaged"
    assert result.stderr.startswith(warning)
    assert "Which nodes are drained is unknown" in result.stderr
    assert result.stderr.count("\n") == 1
    table = cli("--config", str(config), "nodes")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[1].split()[:3] == ["n1", "up", "-"]
