"""A group-writable ~/.ssh/config include names its group and who else is in it, as the refusal's reason.

The refusal used to say "writable by its group (gid 100), which has other members" for a group that has none at
all (ssh refuses that too: it allows group write only for a group whose only member is the user). Members are
counted as for the check: the names /etc/group lists and the users whose primary group it is.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from test_ssh_config_permissions import _configs, _ssh_reads

from factoryctl.errors import ConfigError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another group")


def _primary_users(gid: int) -> list[str]:
    return [entry.pw_name for entry in pwd.getpwall() if entry.pw_gid == gid and entry.pw_uid != os.getuid()]


def _refusal(home: Path, gid: int) -> str:
    main, included = _configs(home)
    os.chown(included, -1, gid)
    included.chmod(0o664)
    assert _ssh_reads(main) in (None, False)  # the real ssh refuses it as well
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "lab"))
    prefix = f"{main}, line 1: the included file {included} is writable by its group "
    assert caught.value.message.startswith(prefix)
    return caught.value.message.removeprefix(prefix).split(", so someone else", 1)[0]


def test_a_group_without_members_is_said_to_have_none(isolated_home: Path) -> None:
    empty = next((g for g in grp.getgrall() if not g.gr_mem and not _primary_users(g.gr_gid) and g.gr_gid), None)
    if empty is None:
        pytest.skip("no group without members here")
    assert _refusal(isolated_home, empty.gr_gid) == (
        f"{empty.gr_name} (gid {empty.gr_gid}), which has no members (ssh allows group write only for a group whose "
        "only member is you) (mode 0664)"
    )


def test_a_group_that_is_other_users_primary_group_names_them(isolated_home: Path) -> None:
    found = next((g for g in grp.getgrall() if g.gr_gid and not g.gr_mem and _primary_users(g.gr_gid)), None)
    if found is None:
        pytest.skip("no group here that is only another account's primary group")
    users = ", ".join(_primary_users(found.gr_gid)[:5])
    said = _refusal(isolated_home, found.gr_gid)
    assert said.startswith(
        f"{found.gr_name} (gid {found.gr_gid}), which has other members: users whose primary group it is: {users}"
    ), said
    assert said.endswith("(mode 0664)")
