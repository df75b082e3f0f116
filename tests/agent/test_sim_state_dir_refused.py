"""An agent run by a user who is not root refuses a simulated node's state another user could redirect, and says why.

The agent reads and writes its simulated node's state under `--state-dir` (factoryctl.sim.storage): a link where the
node's directory goes, or a directory of another user's (neither root nor this one), is refused before anything is
made through it. The hello says so (`no_driver`, the path and why), as for any state the driver cannot use.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from nonroot import needs_non_root, non_root_directory

OTHER_USER = 4242  # neither root, nor nobody who runs the agent


@needs_non_root
def test_a_link_at_the_nodes_directory_is_refused_by_a_non_root_agent(start_agent: Any) -> None:
    with non_root_directory() as state, non_root_directory() as chosen:
        (state / "default").symlink_to(chosen)
        os.lchown(state / "default", *(2 * [os.stat(state).st_uid]))
        agent = start_agent(state_dir=state, non_root=True)
        hello, reply = agent.hello, agent.request("sample")
        agent.close()
        assert list(chosen.iterdir()) == []
    assert hello["gpus"] is None
    assert hello["error"]["reason"] == "no_driver"
    assert f"{state}/default is a symbolic link: simulated GPU state is not kept there" in hello["error"]["message"]
    assert (reply["ok"], reply["error"]["reason"]) == (False, "no_driver")


@needs_non_root
@pytest.mark.skipif(os.geteuid() != 0, reason="another user's directory: the tests do not run as root")
def test_a_directory_of_another_user_is_refused_by_a_non_root_agent(start_agent: Any) -> None:
    with non_root_directory() as state:
        (state / "default").mkdir(mode=0o755)
        os.chown(state / "default", OTHER_USER, OTHER_USER)
        agent = start_agent(state_dir=state, non_root=True)
        hello = agent.hello
        agent.close()
        assert list((state / "default").iterdir()) == []
    assert f"{state}/default belongs to uid {OTHER_USER} (neither root nor this user)" in hello["error"]["message"]
