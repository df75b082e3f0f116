"""Host-key verification against an OpenSSH known_hosts file, and recording keys the operator confirmed.

paramiko's own loader raises on `@cert-authority` lines and ignores `@revoked`, so this module parses the file itself:
hashed (`|1|salt|hmac`) and plain host patterns (with `*`, `?` and `!` negation) are matched the way OpenSSH does,
`@revoked` keys are refused for every host they match, and `@cert-authority` lines are kept but never trusted as a
host key (factoryctl does not verify host certificates). Nothing here ever adds a key on its own: `record()` is
only called by `factoryctl nodes trust` after the operator confirmed the fingerprint, which asks for the name hashed
when ~/.ssh/config says `HashKnownHosts yes` for the host, as ssh would write it.

Keys are compared per key type, as OpenSSH does: a host may have an ed25519, an ECDSA and an RSA key, and
known_hosts often records only one of them (older OpenSSH, `ssh-keyscan -t ecdsa`). A key is `changed` only when an
entry of its own type differs; a key of a type not recorded is `unknown`, and `recorded_types()` lets the handshake
ask for the recorded types first, so such a host is not mistaken for an intercepted one.
"""

from __future__ import annotations

import base64
import binascii
import enum
import errno
import hashlib
import hmac
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from factoryctl.errors import ActionFailed
from factoryctl.private_files import PlantedLink, resolve_trusted_links

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: Host-key signature algorithms whose keys known_hosts records under another name (RSA keys are always `ssh-rsa`).
_KEY_TYPE_OF_ALGORITHM = {"rsa-sha2-256": "ssh-rsa", "rsa-sha2-512": "ssh-rsa"}


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


def key_type_of(algorithm: str) -> str:
    """The key type known_hosts records for a host-key algorithm or key name (`rsa-sha2-512` -> `ssh-rsa`)."""
    return _KEY_TYPE_OF_ALGORITHM.get(algorithm, algorithm)


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (`SHA256:...`)."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        return _hashed_matches(pattern, name)
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == name.lower()
    return wildcard_matches(pattern.lower(), name.lower())


def wildcard_matches(pattern: str, name: str) -> bool:
    """Whether `name` matches `pattern`, where `*` is any run of characters and `?` any one, as OpenSSH matches.

    Without backtracking over earlier stars (a regex of `.*` per star took minutes for `[******************x`): on a
    mismatch only the last star takes one more character, as in OpenSSH's match_pattern, so a lookup costs at most
    len(pattern) x len(name) steps, whatever the file holds.
    """
    at = seen = 0  # the next character of `pattern` and of `name`
    star, resume = -1, 0  # the last star met, and where in `name` its run would end next
    while seen < len(name):
        if at < len(pattern) and pattern[at] == "*":
            star, resume = at, seen
            at += 1
        elif at < len(pattern) and pattern[at] in ("?", name[seen]):
            at, seen = at + 1, seen + 1
        elif star >= 0:  # the last star takes one more character; the stars before it need never give any back
            resume += 1
            at, seen = star + 1, resume
        else:
            return False
    return pattern[at:].strip("*") == ""


def _name_hmac(salt: bytes, name: str) -> bytes:
    """HMAC-SHA1 of a host name under `salt`: what a hashed known_hosts entry (`|1|salt|hmac`) stores."""
    return hmac.new(salt, name.encode(), hashlib.sha1).digest()


def hashed_name(name: str, salt: bytes | None = None) -> str:
    """`name` hashed as OpenSSH's HashKnownHosts writes it: `|1|salt|hmac`, with a random 20-byte salt by default."""
    salt = os.urandom(20) if salt is None else salt
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(_name_hmac(salt, name)).decode()}"


def _hashed_matches(pattern: str, name: str) -> bool:
    parts = pattern.split("|")
    if len(parts) != 4:
        return False
    try:
        salt = base64.b64decode(parts[2])
        expected = base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(_name_hmac(salt, name), expected)


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


def _plain_entries(entries: list[HostKeyEntry], host: str, port: int) -> list[HostKeyEntry]:
    """The plain entries (no marker) for host:port."""
    names = lookup_names(host, port)
    return [e for e in entries if e.marker is None and e.matches(names)]


def _of_type(entries: list[HostKeyEntry], key_type: str | None) -> list[HostKeyEntry]:
    """`entries` of `key_type` only (RSA signature algorithms count as `ssh-rsa`); all of them for None."""
    if key_type is None:
        return entries
    return [e for e in entries if key_type_of(e.key_type) == key_type_of(key_type)]


def _text(data: bytes) -> str:
    """known_hosts bytes as text to parse: a byte that is not UTF-8 (in a comment, say) is U+FFFD, never an error."""
    return data.decode("utf-8", errors="replace")


#: How the error of a known_hosts that cannot be read begins: `cannot read known_hosts PATH: PROBLEM`.
NOT_REGULAR = "is not a regular file"
UNREADABLE = "cannot read known_hosts"


def unreadable_hint(path: str | Path, problem: str) -> str:
    """What to do about known_hosts `path` that cannot be read for `problem` (`permission denied`, `is a directory`)."""
    where = "set `known_hosts:` (under `ssh:` or on the node in factory.yaml) to a known_hosts file"
    if problem == "permission denied":
        return f"make {path} readable by you, or {where} you can read."
    if problem == NOT_REGULAR:  # a device (/dev/null as the place to record in) is not to be moved aside
        return f"{where} that is a regular file."
    return f"move {path} aside, or {where}."


class UnreadableKnownHosts(ActionFailed):
    """A known_hosts file that exists but cannot be read: `problem` says why (`permission denied`, `is a directory`)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{UNREADABLE} {path}: {problem}", unreadable_hint(path, problem))


def _read(path: Path, null_is_empty: bool = False) -> bytes:
    """The bytes of known_hosts `path`; none when it does not exist; `UnreadableKnownHosts` when it cannot be read.

    Opened without blocking, and read only if it is a regular file: a FIFO there held every command forever. With
    `null_is_empty` (looking keys up), the null device reads as a file that knows no key, as ssh reads
    `UserKnownHostsFile /dev/null`; nothing is recorded there. A file this process has no descriptor left to open
    (EMFILE, ENFILE) is raised as is: this machine's `local` error.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        raise UnreadableKnownHosts(path, _problem(exc)) from None
    try:
        found = os.fstat(fd)
        mode = found.st_mode
        if null_is_empty and stat.S_ISCHR(mode) and found.st_rdev == os.stat(os.devnull).st_rdev:
            return b""
        if not stat.S_ISREG(mode):
            raise UnreadableKnownHosts(path, "is a directory" if stat.S_ISDIR(mode) else NOT_REGULAR)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableKnownHosts(path, _problem(exc)) from None
    finally:
        os.close(fd)


def _problem(exc: OSError) -> str:
    """`permission denied`, `is a directory`, or the system's words for `exc`, lower case."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    return (exc.strerror or str(exc)).lower()


class KnownHosts:
    """A known_hosts file: look keys up for a host, and record confirmed ones."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(os.path.expanduser(str(path or DEFAULT_KNOWN_HOSTS)))
        self.entries = parse(_text(_read(self.path, null_is_empty=True)))
        self._by_host: dict[tuple[str, int], list[HostKeyEntry]] = {}

    def check(self, host: str, port: int, key_type: str, key_blob: bytes) -> HostKeyStatus:
        """Classify the server key `key_blob` of host:port.

        `changed` only when an entry of the same key type records another key; when only keys of other types are
        recorded the key is `unknown` (see `recorded_types`), as for OpenSSH.
        """
        key_b64 = base64.b64encode(key_blob).decode()
        names = lookup_names(host, port)
        if any(e.marker == "@revoked" and e.key_b64 == key_b64 and e.matches(names) for e in self.entries):
            return HostKeyStatus.revoked
        same = _of_type(self._plain(host, port), key_type)
        if any(e.key_b64 == key_b64 for e in same):
            return HostKeyStatus.known
        return HostKeyStatus.changed if same else HostKeyStatus.unknown

    def recorded_fingerprints(self, host: str, port: int, key_type: str | None = None) -> list[str]:
        """Fingerprints of the keys recorded for host:port (of `key_type` only, if given), to compare with."""
        return [fingerprint(base64.b64decode(e.key_b64)) for e in _of_type(self._plain(host, port), key_type)]

    def recorded_types(self, host: str, port: int) -> tuple[str, ...]:
        """The key types recorded for host:port (plain entries, not `@revoked` or `@cert-authority`), in file order."""
        return tuple(dict.fromkeys(key_type_of(e.key_type) for e in self._plain(host, port)))

    def _plain(self, host: str, port: int) -> list[HostKeyEntry]:
        """The plain entries for host:port, matched once per host: a hashed entry costs an HMAC per name."""
        key = (host, port)
        if key not in self._by_host:
            self._by_host[key] = _plain_entries(self.entries, host, port)
        return self._by_host[key]

    def record(
        self, host: str, port: int, key_type: str, key_blob: bytes, replace: bool = False, hashed: bool = False
    ) -> None:
        """Append a confirmed key as `[host]:port TYPE KEY`; with `replace`, drop the host's old entries of that type.

        Entries of other key types stay: they were verified too, and a host may present any of its keys. `hashed`
        writes the name hashed (`|1|salt|hmac`), as ssh does for a host with `HashKnownHosts yes`.

        The file is rewritten atomically (temp file + rename), through a symbolic link, keeping its mode (0600 when
        new, its directory created 0700), and every line it keeps byte for byte (a comment that is not UTF-8, CRLF
        endings). A file that cannot be written (its directory missing and not creatable, read-only, /proc, a link
        another user could have planted: `resolve_trusted_links`) is an `ActionFailed`, as is one that cannot be read
        (`UnreadableKnownHosts`).
        """
        old = _read(self.path)  # never waits on a FIFO; one that cannot be read is said so
        lines = old.splitlines(keepends=True)
        if replace:
            lines = [line for line in lines if not _of_type(_plain_entries(parse(_text(line)), host, port), key_type)]
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            lines[-1] += b"\n"
        name = hashed_name(record_name(host, port)) if hashed else record_name(host, port)
        lines.append(f"{name} {key_type} {base64.b64encode(key_blob).decode()}\n".encode())
        new = b"".join(lines)
        try:
            self._replace_with(new)
        except PlantedLink as planted:
            raise ActionFailed(
                f"cannot write the known_hosts file {self.path}: {planted.problem}; nothing was recorded.",
                "set `known_hosts:` (under `ssh:` or on the node in factory.yaml) to a path without that link.",
            ) from None
        except OSError as exc:
            raise self._unwritable(exc) from None
        self.entries = parse(_text(new))
        self._by_host.clear()

    def _replace_with(self, data: bytes) -> None:
        """Write `data` to a temp file beside the file, then rename it over the file, keeping the file's mode.

        A symbolic link (a dotfile manager's known_hosts) is written through, as ssh appends through it: the file it
        points to is replaced, beside itself, and the link stays; but not another user's link where anyone may write
        (`PlantedLink`): its owner chose the file replaced. A new file is made 0600, its directory 0700.
        """
        target = Path(resolve_trusted_links(self.path))  # the path itself when it is no link
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o600
        fd, tmp = tempfile.mkstemp(prefix=".known_hosts.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _unwritable(self, exc: OSError) -> ActionFailed:
        return ActionFailed(
            f"cannot write the known_hosts file {self.path}: {exc.strerror or exc}.",
            "set `known_hosts:` (under `ssh:` or on the node in factory.yaml) to a file in a directory you can write.",
        )
