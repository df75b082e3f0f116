"""Build the agent zipapp the transports ship to nodes: `<user cache>/factoryctl-agent-<hash>.pyz`.

The archive holds `factoryctl/__init__.py`, `factoryctl/agent/**`, `factoryctl/sim/**` and the installed
nvidia-ml-py's pure-Python `pynvml.py` at its root, plus a `__main__.py`, so a node needs only `python3` (>= 3.9)
and, for real GPUs, the NVIDIA driver. The name carries a hash of every bundled file: it is built on first use,
reused while nothing changes, and rebuilt when an agent or simulator source or pynvml changes. Building writes a
temporary file and renames it into place, so concurrent first uses never see a half-written archive.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import zipfile
from pathlib import Path

import factoryctl

BUNDLE_FORMAT = "2"  # bump when the archive's layout changes
_MAIN = (
    "# factoryctl agent zipapp entry point (kept to syntax any Python 3 can parse, to refuse old ones clearly)\n"
    "import sys\n\n"
    "if sys.version_info < (3, 9):\n"
    "    sys.stderr.write('factoryctl-agent needs Python >= 3.9; %s is %s\\n' % (sys.executable, sys.version.split()[0]))\n"
    "    sys.exit(3)\n\n"
    "from factoryctl.agent.main import main\n\n"
    "sys.exit(main())\n"
)
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same bytes


def _package_root() -> Path:
    return Path(factoryctl.__file__).resolve().parent


def _pynvml_source() -> Path:
    spec = importlib.util.find_spec("pynvml")
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise RuntimeError("nvidia-ml-py (pynvml.py) is not installed; reinstall factoryctl")
    return Path(spec.origin)


def bundle_members() -> list[tuple[str, Path]]:
    """(archive name, source file) of everything the zipapp holds, in a stable order."""
    root = _package_root()
    members = [("factoryctl/__init__.py", root / "__init__.py")]
    for sub in ("agent", "sim"):
        for path in sorted((root / sub).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".csv", ".json") and "__pycache__" not in path.parts:
                members.append((f"factoryctl/{sub}/{path.relative_to(root / sub).as_posix()}", path))
    members.append(("pynvml.py", _pynvml_source()))
    return members


def bundle_hash(members: list[tuple[str, Path]] | None = None) -> str:
    """A short hash of the bundle's contents (format, names and bytes of every member)."""
    digest = hashlib.sha256(BUNDLE_FORMAT.encode())
    for name, path in members if members is not None else bundle_members():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """The per-user cache directory (XDG via platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("factoryctl"))


def agent_zipapp(cache_dir: Path | None = None) -> Path:
    """The path of the current agent zipapp, building it first if it is missing or out of date."""
    members = bundle_members()
    target_dir = cache_dir if cache_dir is not None else default_cache_dir()
    target = target_dir / f"factoryctl-agent-{bundle_hash(members)}.pyz"
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target_dir)
    try:
        with os.fdopen(fd, "wb") as raw:
            raw.write(b"#!/usr/bin/env python3\n")
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(zipfile.ZipInfo("__main__.py", _ZIP_DATE), _MAIN, zipfile.ZIP_DEFLATED)
                for name, path in members:
                    archive.writestr(zipfile.ZipInfo(name, _ZIP_DATE), path.read_bytes(), zipfile.ZIP_DEFLATED)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
