"""`power set` on GPUs a node does not have names every missing one, folded, as `sim inject` does.

Naming only the first (`has no GPU 4`) of `n1/0-9` on a 4-GPU node left 5-9 to be found one refusal at a time.
Real agents on the simulated driver (local transport); nothing is changed either way.
"""

from __future__ import annotations


def test_every_missing_gpu_is_named_folded(cli, tmp_path) -> None:
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n1: {transport: local, sim: {profile: h100-sxm, gpus: 4, seed: 1}}\n"
    )
    result = cli("--config", str(factory), "power", "set", "n1/2-9", "--watts", "400", "--timeout", "30")
    assert result.exit_code == 2, result.stderr
    assert "n1 has no GPUs 4-9 (it has GPUs 0-3); nothing was changed." in result.stderr
    assert cli("--config", str(factory), "audit", "-o", "json").json()["items"] == []
