"""Host-key verification against an OpenSSH known_hosts file, and recording keys the operator confirmed.

paramiko's own loader raises on `@cert-authority` lines and ignores `@revoked`, so this module parses the file itself:
hashed (`|1|salt|hmac`) and plain host patterns (with `*`, `?` and `!` negation) are matched the way OpenSSH does,
`@revoked` keys are refused for every host they match, and `@cert-authority` lines are kept but never trusted as a
host key (factoryctl does not verify host certificates). Nothing here ever adds a key on its own: `record()` is
only called by `factoryctl nodes trust` after the operator confirmed the fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from factoryctl.errors import ActionFailed

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class HostKeyStatus(str, enum.Enum):
    """What the known_hosts file says about a server's key."""

    known = "known"
    unknown = "unknown"
    changed = "changed"
    revoked = "revoked"


@dataclass(frozen=True)
class HostKeyEntry:
    """One parsed known_hosts line."""

    marker: str | None
    patterns: tuple[str, ...]
    key_type: str
    key_b64: str
    lineno: int

    def matches(self, names: tuple[str, ...]) -> bool:
        """Whether this line's host patterns match any of `names` (a negated pattern vetoes the line)."""
        matched = False
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            bare = pattern[1:] if negated else pattern
            if any(_pattern_matches(bare, name) for name in names):
                if negated:
                    return False
                matched = True
        return matched


def lookup_names(host: str, port: int) -> tuple[str, ...]:
    """The names a key for host:port may be recorded under: `[host]:port`, and plain `host` on port 22."""
    if port == 22:
        return (host, f"[{host}]:22")
    return (f"[{host}]:{port}",)


def record_name(host: str, port: int) -> str:
    """The name a trusted key is recorded under, as OpenSSH writes it (plain host on port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (`SHA256:...`)."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        return _hashed_matches(pattern, name)
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == name.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def _hashed_matches(pattern: str, name: str) -> bool:
    parts = pattern.split("|")
    if len(parts) != 4:
        return False
    try:
        salt = base64.b64decode(parts[2])
        expected = base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    actual = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)


def parse(text: str) -> list[HostKeyEntry]:
    """Parse known_hosts text; malformed lines are skipped, as OpenSSH does."""
    entries: list[HostKeyEntry] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
            if marker not in ("@revoked", "@cert-authority"):
                continue
        if len(fields) < 3:
            continue
        patterns, key_type, key_b64 = fields[0], fields[1], fields[2]
        try:
            base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError):
            continue
        entries.append(HostKeyEntry(marker, tuple(patterns.split(",")), key_type, key_b64, lineno))
    return entries


class KnownHosts:
    """A known_hosts file: look keys up for a host, and record confirmed ones."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(os.path.expanduser(str(path or DEFAULT_KNOWN_HOSTS)))
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        self.entries = parse(text)

    def check(self, host: str, port: int, key_type: str, key_blob: bytes) -> HostKeyStatus:
        """Classify the server key `key_blob` of host:port."""
        names = lookup_names(host, port)
        key_b64 = base64.b64encode(key_blob).decode()
        plain = []
        for entry in self.entries:
            if entry.marker == "@revoked" and entry.key_b64 == key_b64 and entry.matches(names):
                return HostKeyStatus.revoked
            if entry.marker is None and entry.matches(names):
                plain.append(entry)
        if any(e.key_type == key_type and e.key_b64 == key_b64 for e in plain):
            return HostKeyStatus.known
        return HostKeyStatus.changed if plain else HostKeyStatus.unknown

    def recorded_fingerprints(self, host: str, port: int) -> list[str]:
        """Fingerprints of the keys recorded for host:port (to show next to a changed key)."""
        names = lookup_names(host, port)
        return [fingerprint(base64.b64decode(e.key_b64)) for e in self.entries if e.marker is None and e.matches(names)]

    def record(self, host: str, port: int, key_type: str, key_blob: bytes, replace: bool = False) -> None:
        """Append a confirmed key as `[host]:port TYPE KEY`; with `replace`, drop the host's old plain entries.

        The file is rewritten atomically (temp file + rename) with mode 0600, its directory created 0700. A file
        that cannot be written (its directory missing and not creatable, read-only, /proc) is an `ActionFailed`.
        """
        names = lookup_names(host, port)
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise self._unwritable(exc) from None
        lines = text.splitlines()
        if replace:
            stale = {e.lineno for e in parse(text) if e.marker is None and e.matches(names)}
            lines = [line for n, line in enumerate(lines, start=1) if n not in stale]
        lines.append(f"{record_name(host, port)} {key_type} {base64.b64encode(key_blob).decode()}")
        try:
            self._replace_with("\n".join(lines) + "\n")
        except OSError as exc:
            raise self._unwritable(exc) from None
        self.entries = parse(self.path.read_text(encoding="utf-8"))

    def _replace_with(self, text: str) -> None:
        """Write `text` to a temp file next to the file, then rename it over the file."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".known_hosts.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _unwritable(self, exc: OSError) -> ActionFailed:
        return ActionFailed(
            f"cannot write the known_hosts file {self.path}: {exc.strerror or exc}.",
            "set `known_hosts:` (under `ssh:` or on the node in factory.yaml) to a file in a directory you can write.",
        )
