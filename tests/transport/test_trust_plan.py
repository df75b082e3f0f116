"""The host-key trust policy (`transport.trust.plan_trust`) decided from scanned keys alone, without SSH.

What `nodes trust` may record, what it must refuse and why, and a jump host's key once for the nodes behind it.
Only `record_keys` touches a file (a known_hosts under the test's temporary directory).
"""

from __future__ import annotations

import struct
from pathlib import Path

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.diagnose import ScannedKey
from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts, fingerprint
from factoryctl.transport.ssh_handshake import ServerKey
from factoryctl.transport.trust import (
    known_hosts_lines,
    nodes_behind_jump_hosts,
    nodes_of,
    plan_trust,
    record_keys,
)

JUMP = "ops@bastion:2222"


def _blob(key_type: str = "ssh-ed25519", seed: int = 1) -> bytes:
    """A public key blob as sshd sends it: the type, then the key, each length-prefixed."""
    name, key = key_type.encode(), bytes([seed]) * 32
    return struct.pack(">I", len(name)) + name + struct.pack(">I", len(key)) + key


def _scanned(
    known_hosts: Path,
    status: HostKeyStatus,
    host: str = "10.0.0.1",
    key_type: str = "ssh-ed25519",
    seed: int = 1,
    jump_host: str | None = None,
    recorded: tuple[str, ...] = (),
    other_types: tuple[str, ...] = (),
) -> ScannedKey:
    key = ServerKey(host, 22, key_type, _blob(key_type, seed), status, recorded, other_types)
    return ScannedKey(key, str(known_hosts), jump_host)


def _node(name: str, host: str = "10.0.0.1") -> NodeSpec:
    return NodeSpec(name=name, host=host)


def test_a_revoked_key_is_refused_even_with_replace(tmp_path: Path) -> None:
    scanned = [(_node("n1"), _scanned(tmp_path / "kh", HostKeyStatus.revoked))]
    for replace in (False, True):
        plan = plan_trust(scanned, replace)
        assert plan.pending == []
        [error] = plan.errors
        assert (error.node, error.kind) == ("n1", "host_key")
        assert error.message == "[10.0.0.1]:22 presents a REVOKED key; not recorded."
        assert error.hint == "the node needs a new host key."


def test_a_changed_key_is_refused_without_replace_and_awaits_confirmation_with_it(tmp_path: Path) -> None:
    old = fingerprint(_blob(seed=9))
    scanned = [(_node("n1"), _scanned(tmp_path / "kh", HostKeyStatus.changed, recorded=(old,)))]
    refused = plan_trust(scanned, replace=False)
    assert refused.pending == []
    [error] = refused.errors
    assert (
        error.message == f"HOST KEY CHANGED for [10.0.0.1]:22: now ssh-ed25519 {fingerprint(_blob())}, recorded {old}"
    )
    assert "--replace" in str(error.hint)
    replaced = plan_trust(scanned, replace=True)
    assert replaced.errors == []
    assert [d.nodes for d in replaced.pending] == [["n1"]]


def test_a_key_of_a_type_not_recorded_beside_recorded_types_needs_replace(tmp_path: Path) -> None:
    found = _scanned(tmp_path / "kh", HostKeyStatus.unknown, other_types=("ecdsa-sha2-nistp256",))
    refused = plan_trust([(_node("n1"), found)], replace=False)
    assert refused.pending == []
    [error] = refused.errors
    assert error.message.startswith(f"unknown host key for [10.0.0.1]:22: ssh-ed25519 {found.key.fingerprint}; ")
    assert error.message.endswith("(ecdsa-sha2-nistp256)")
    assert "intercepting" in str(error.hint)
    assert [d.other_types for d in plan_trust([(_node("n1"), found)], replace=True).pending] == [
        ("ecdsa-sha2-nistp256",)
    ]


def test_an_unknown_key_of_a_new_host_awaits_confirmation(tmp_path: Path) -> None:
    plan = plan_trust([(_node("n1"), _scanned(tmp_path / "kh", HostKeyStatus.unknown))], replace=False)
    assert plan.errors == []
    assert [d.where for d in plan.pending] == ["[10.0.0.1]:22"]


def test_a_jump_hosts_key_is_one_decision_for_every_node_behind_it(tmp_path: Path) -> None:
    known = tmp_path / "kh"
    scanned = [
        (_node(name, host), _scanned(known, HostKeyStatus.unknown, host="bastion", jump_host=JUMP))
        for name, host in (("n1", "10.0.0.1"), ("n2", "10.0.0.2"), ("n3", "10.0.0.3"))
    ]
    plan = plan_trust(scanned, replace=False)
    [decision] = plan.decisions
    assert decision.nodes == ["n1", "n2", "n3"]
    assert decision.where == f"jump host {JUMP} ([bastion]:22)"
    assert plan.pending == [decision]
    assert nodes_behind_jump_hosts(plan.pending) == {"n1", "n2", "n3"}
    assert known_hosts_lines(plan.pending) == 1
    assert record_keys(plan.pending) == 1
    assert len(known.read_text().splitlines()) == 1


def test_a_revoked_jump_host_key_is_refused_for_each_node_behind_it(tmp_path: Path) -> None:
    found = _scanned(tmp_path / "kh", HostKeyStatus.revoked, host="bastion", jump_host=JUMP)
    plan = plan_trust([(_node("n1"), found), (_node("n2"), found)], replace=True)
    assert [(e.node, e.hint) for e in plan.errors] == [
        ("n1", "the jump host needs a new host key."),
        ("n2", "the jump host needs a new host key."),
    ]


def test_an_already_trusted_key_is_a_no_op(tmp_path: Path) -> None:
    known = tmp_path / "kh"
    found = _scanned(known, HostKeyStatus.unknown)
    KnownHosts(str(known)).record(found.key.host, found.key.port, found.key.key_type, found.key.blob)
    before = known.read_text()
    trusted = _scanned(known, HostKeyStatus.known)
    plan = plan_trust([(_node("n1"), trusted)], replace=True)
    assert (plan.pending, plan.errors) == ([], [])
    assert [d.refusal for d in plan.decisions] == [None]
    assert record_keys([plan_trust([(_node("n1"), found)], replace=False).pending[0]]) == 0  # already in the file
    assert known.read_text() == before


def test_nodes_sharing_one_sshd_write_its_key_once(tmp_path: Path) -> None:
    known = tmp_path / "kh"
    scanned = [(_node(name), _scanned(known, HostKeyStatus.unknown)) for name in ("a", "b")]
    plan = plan_trust(scanned, replace=False)
    assert len(plan.pending) == 2
    assert (known_hosts_lines(plan.pending), nodes_of(plan.pending)) == (1, {"a", "b"})
    assert record_keys(plan.pending) == 1
    assert KnownHosts(str(known)).check("10.0.0.1", 22, "ssh-ed25519", _blob()) is HostKeyStatus.known


def test_nodes_that_could_not_be_scanned_come_first_among_the_errors(tmp_path: Path) -> None:
    unreachable = NodeError("n0", "refused", "n0: refused the connection")
    revoked = _scanned(tmp_path / "kh", HostKeyStatus.revoked)
    plan = plan_trust([(_node("n1"), revoked), (_node("n0"), unreachable)], replace=False)
    assert [e.node for e in plan.errors] == ["n0", "n1"]
    assert plan.scan_errors == (unreachable,)
    assert [d.nodes for d in plan.decisions] == [["n1"]]
