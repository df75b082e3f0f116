"""A symbolic link another user planted where anyone may write is not followed to write a file: theirs is refused.

In the review another user made `out.csv -> /victim/file` in a sticky directory: `--schedule-out out.csv` resolved
the link and renamed the schedule over the file it named (`fs.protected_symlinks` does not apply to that route), and
`factoryctl init` created or, with `--force`, overwrote the file a planted `factory.yaml` link named. The user's own
links (a dotfiles repository) still work, dangling ones too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from factoryctl.private_files import PlantedLink, resolve_trusted_links

ROOT = os.geteuid() == 0
NOBODY = 65534
WHO = "not root" if ROOT else f"neither you (uid {os.geteuid()}) nor root"
TRACE = "job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\n"
needs_root = pytest.mark.skipif(not ROOT, reason="giving a link to another user needs root")


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A directory anyone may write, sticky as /tmp."""
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o1777)
    return directory


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the user's that a planted link names."""
    mine = tmp_path / "mine" / "precious"
    mine.parent.mkdir()
    mine.write_text("precious\n")
    return mine


def plant(link: Path, target: Path) -> Path:
    """`link` -> `target`, made by another user (nobody)."""
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)
    return link


def planted_problem(link: Path) -> str:
    return (
        f"{link} is a symbolic link in {link.parent}, where anyone may write, and belongs to uid {NOBODY}, {WHO}: its "
        "owner chose the file it names"
    )


def test_links_resolve_as_realpath_resolves_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "d").mkdir()
    (tmp_path / "lb").symlink_to("a/b")
    (tmp_path / "a" / "b" / "up").symlink_to("../../d")
    (tmp_path / "d" / "abs").symlink_to(tmp_path / "a")
    (tmp_path / "dangling").symlink_to("missing/x")
    monkeypatch.chdir(tmp_path / "a")
    for path in ("../lb/up/abs/b", "../lb/../d", "b/up/../a", "../dangling/y", "nope/x/..", "b//./up/", ".", "/"):
        assert resolve_trusted_links(path) == os.path.realpath(path), path
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        resolve_trusted_links(tmp_path / "loop")


@needs_root
def test_another_users_link_on_the_way_is_refused_where_anyone_may_write(shared: Path, victim: Path) -> None:
    link = plant(shared / "dir", victim.parent)
    with pytest.raises(PlantedLink) as caught:
        resolve_trusted_links(link / "precious")
    assert caught.value.problem == planted_problem(link)


@needs_root
def test_links_of_the_user_or_in_a_directory_only_its_owner_may_write_are_followed(
    shared: Path, victim: Path, tmp_path: Path
) -> None:
    (shared / "mine").symlink_to(victim)
    assert resolve_trusted_links(shared / "mine") == str(victim)
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    assert resolve_trusted_links(plant(private / "theirs", victim)) == str(victim)


@needs_root
def test_schedule_out_through_a_planted_link_is_refused_and_its_file_kept(
    cli: Any, shared: Path, victim: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    link = plant(shared / "out.csv", victim)
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", str(link))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"factoryctl: cannot write schedule {link}: {planted_problem(link)}; nothing is written.",
        "hint: give --schedule-out a path without that link.",
    ]
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious"]


def test_schedule_out_through_the_users_own_link_still_writes_the_file_it_names(
    cli: Any, shared: Path, victim: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    (shared / "out.csv").symlink_to(victim)
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", str(shared / "out.csv"))
    assert result.exit_code == 0, result.stderr
    assert victim.read_text().startswith("job_id,policy,")
    assert (shared / "out.csv").is_symlink()


@needs_root
@pytest.mark.parametrize("force", [False, True], ids=["dangling", "force"])
def test_init_through_a_planted_link_writes_nothing(cli: Any, shared: Path, victim: Path, force: bool) -> None:
    named = victim if force else victim.parent / "new"
    link = plant(shared / "factory.yaml", named)
    result = cli("init", *(["--force"] if force else []), str(link))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"factoryctl: cannot write {link}: {planted_problem(link)}; nothing was written.",
        "hint: pick a path without that link.",
    ]
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious"]


def test_init_through_the_users_own_link_writes_the_file_it_names(cli: Any, tmp_path: Path) -> None:
    """A dotfiles repository: `init` creates the file a dangling link names, `init --force` writes through it."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    link = tmp_path / "factory.yaml"
    link.symlink_to(dotfiles / "factory.yaml")
    assert cli("init", str(link)).exit_code == 0
    assert (dotfiles / "factory.yaml").read_text().startswith("# factory.yaml")
    (dotfiles / "factory.yaml").write_text("old\n")
    assert cli("init", "--force", str(link)).exit_code == 0
    assert link.is_symlink()
    assert (dotfiles / "factory.yaml").read_text().startswith("# factory.yaml")
