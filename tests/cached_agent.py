"""Where the agent zipapp lands in a node's cache, for tests that plant, damage or inspect it there.

The name is `ship_agent`'s own rule (`_LocalZipapp`), read from it so these tests follow it if it changes; no command
needs the name, so the package keeps it private.
"""

from __future__ import annotations

from pathlib import Path

from factoryctl.transport.agent_cache import _LocalZipapp


def remote_name(zipapp: Path) -> str:
    """The zipapp's file name in the node's cache; it carries the content hash, so a new build gets a new name."""
    return _LocalZipapp.of(zipapp).name
