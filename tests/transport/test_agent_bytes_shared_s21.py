"""Every SSH node's agent upload shares one copy of the zipapp's bytes, while the file read is the same one.

The bytes uploaded are the bytes hashed (read once, not the file read again), and each link's start held its own
copy through its login probe and upload: ~130 KB per SSH node, 260 MB when a controller starts 2,000 links at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from factoryctl.transport.agent_cache import _LocalZipapp


def test_one_copy_is_shared_until_the_file_is_replaced(tmp_path: Path) -> None:
    zipapp = tmp_path / "factoryctl-agent-0123456789abcdef.pyz"
    zipapp.write_bytes(b"first build" * 1000)
    first, again = _LocalZipapp.of(zipapp), _LocalZipapp.of(zipapp)
    assert first is again  # one copy of the bytes, however many links ship it
    replacement = tmp_path / "new.pyz"
    replacement.write_bytes(b"second build" * 1000)
    os.replace(replacement, zipapp)  # a rebuild renames a new file over it: another inode
    after = _LocalZipapp.of(zipapp)
    assert after is not first
    assert after.data == b"second build" * 1000
    assert after.sha256 != first.sha256
