"""Which keys authentication offers, and in which order: identity files first, then ssh-agent's other keys.

sshd counts every key offered against MaxAuthTries (6 by default) and drops the connection past it ("Too many
authentication failures"), so an agent holding many keys must not go first: a configured key file that needs a
passphrase is offered at its own place, through the agent's copy of the same public key, as OpenSSH does. With
`IdentitiesOnly yes` the agent's other keys are never offered. A file's public key is read as ssh reads it: the
file itself when it is a public key (`IdentityFile ~/.ssh/id.pub`), else `FILE.pub`, else the public part an
OpenSSH-format private key keeps unencrypted. A private key file of the user's that others may read is not used, as
ssh refuses it ("UNPROTECTED PRIVATE KEY FILE"); the agent's copy of its key still is, as with ssh.

Every key file (the key, `FILE.pub`, `FILE-cert.pub`) is opened without waiting and read only if it is a regular
file, at most `_MAX_KEY_FILE_BYTES`, then parsed from memory: paramiko's `PKey.from_path` opens the name as it
is, so an identity file that is a FIFO (or a device) held every command forever, waiting for a writer.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import shlex
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from factoryctl.transport.host_limits import is_file_exhaustion
from factoryctl.transport.ssh_config import SshTarget

if TYPE_CHECKING:
    import paramiko

_log = logging.getLogger("factoryctl.transport")

#: Key files are small; a larger file is not read past this (it is no key).
_MAX_KEY_FILE_BYTES = 1 << 20
_OPENSSH_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----")
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


@dataclass(frozen=True)
class SkippedKey:
    """An identity file that was not offered, and why."""

    path: str
    reason: str
    needs_passphrase: bool
    #: Others may read it (ssh's "UNPROTECTED PRIVATE KEY FILE"): `chmod 600` fixes it.
    too_open: bool = False


@dataclass
class Offers:
    """The keys to offer, each with how to name it if refused; the files skipped; the agent keys left out."""

    keys: list[tuple[str, paramiko.PKey]] = field(default_factory=list)
    skipped: list[SkippedKey] = field(default_factory=list)
    left_out: int = 0


def offered_keys(node: str, target: SshTarget, agent_keys: tuple[paramiko.PKey, ...]) -> Offers:
    """The keys to try for `target`, in order: its identity files (or their agent copies), then other agent keys.

    `IdentitiesOnly yes` leaves the agent's other keys out (counted in `left_out`).
    """
    by_blob = {key.asbytes(): key for key in agent_keys}
    offers = Offers()
    for path in target.identity_files:
        offer = _identity_offer(path, by_blob)
        if isinstance(offer, SkippedKey):
            _log.debug("%s: %s", node, offer.reason)
            offers.skipped.append(offer)
        else:
            offers.keys.append(offer)
    offered = {key.asbytes() for _, key in offers.keys}
    others = [key for blob, key in by_blob.items() if blob not in offered]
    if target.identities_only:
        offers.left_out = len(others)
    else:
        offers.keys.extend((f"agent key {key.get_name()} {key.fingerprint}", key) for key in others)
    return offers


def _identity_offer(path: str, agent_keys: dict[bytes, paramiko.PKey]) -> tuple[str, paramiko.PKey] | SkippedKey:
    """Identity file `path`'s key, from the file or else from `agent_keys` (by public key blob); or why neither."""
    loaded = _load_key(path)
    if not isinstance(loaded, SkippedKey):
        return path, loaded
    copy = agent_keys.get(_public_blob(path) or b"")
    if copy is not None:
        return f"{path} (ssh-agent's copy)", copy
    if _public_line(_text(path) or ""):
        return SkippedKey(path, f"{path} is a public key, and ssh-agent holds no private key for it", False)
    return loaded


def _load_key(path: str) -> paramiko.PKey | SkippedKey:
    """The private key in `path`, or why it cannot be used.

    paramiko 5 reads key files with `cryptography`, which raises TypeError for an encrypted key read without a
    passphrase (older paramiko raised PasswordRequiredException); factoryctl never asks for one. A file this process
    has no descriptor left to open (EMFILE, ENFILE) is no bad key: that is raised, this machine's `local` error.
    """
    import paramiko

    try:
        data, status = _read_regular(path)
    except FileNotFoundError:
        return SkippedKey(path, _no_file(path), False)
    except _NotRegular:
        return SkippedKey(path, f"{path} is not a regular file: not read as a key", False)
    except OSError as exc:
        if is_file_exhaustion(exc):
            raise
        return SkippedKey(path, f"cannot load {path}: {exc.strerror or exc}", False)
    too_open = _too_open(path, status)
    if too_open is not None:
        return too_open
    try:
        return _parsed_key(path, data)
    except (paramiko.PasswordRequiredException, TypeError):
        return SkippedKey(path, f"the key {path} needs a passphrase: load it into ssh-agent", True)
    except Exception as exc:  # a key file is any file: whatever its loader raises, the file is skipped
        if is_file_exhaustion(exc):  # its certificate could not be opened
            raise
        return SkippedKey(path, f"cannot load {path}: {str(exc) or type(exc).__name__}", False)


class _NotRegular(Exception):
    """The file is a FIFO, a device, a directory or a socket: never read (reading may wait forever)."""


def _read_regular(path: str) -> tuple[bytes, os.stat_result]:
    """The first `_MAX_KEY_FILE_BYTES` of `path` and its status, read only if it is a regular file (`_NotRegular`).

    Opened without waiting (O_NONBLOCK: a FIFO with no writer) and checked on the open descriptor, so what is read
    is what was checked.
    """
    fd = os.open(os.path.expanduser(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise _NotRegular(path)
        chunks: list[bytes] = []
        left = _MAX_KEY_FILE_BYTES
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), status
    finally:
        os.close(fd)


def _parsed_key(path: str, data: bytes) -> paramiko.PKey:
    """The private key `data` (read from `path`) holds, as paramiko's `PKey.from_path` makes it, without a passphrase.

    OpenSSH format first, then PEM, as ssh and paramiko try them; its certificate (`path-cert.pub`), if there is one
    to read, is loaded with it, as `from_path` does.
    """
    import paramiko
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from paramiko.pkey import UnknownKeyType

    try:
        loaded: object = serialization.load_ssh_private_key(data, password=None)
    except ValueError:
        loaded = serialization.load_pem_private_key(data, password=None)
    kinds: tuple[tuple[type, type[paramiko.PKey]], ...] = (
        (rsa.RSAPrivateKey, paramiko.RSAKey),
        (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
        (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
    )
    key_class = next((cls for kind, cls in kinds if isinstance(loaded, kind)), None)
    if key_class is None:
        raise UnknownKeyType(key_bytes=data, key_type=type(loaded))
    key = key_class.from_private_key(io.StringIO(data.decode()), password=None)
    certificate = _text(f"{path}-cert.pub")
    if certificate is not None and certificate.strip():
        key.load_certificate(certificate.strip())
    return key


def _too_open(path: str, status: os.stat_result) -> SkippedKey | None:
    """Why the user's key file `path` (of `status`) is not used when its group or others may read it; else None.

    ssh's rule (sshkey_perm_ok): only a file of the user's own is checked, and any bit of 077 refuses it.
    """
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid != os.getuid() or not mode & 0o077:
        return None
    who = " and ".join(name for name, bits in (("its group", 0o070), ("others", 0o007)) if mode & bits)
    reason = (
        f"the key {path} is accessible to {who} (mode {mode:04o}): not used, as ssh refuses it (UNPROTECTED PRIVATE "
        "KEY FILE)"
    )
    return SkippedKey(path, reason, False, too_open=True)


def _public_blob(path: str) -> bytes | None:
    """The public key of identity file `path` as ssh finds it (the file, `path.pub`, the private key's header)."""
    for candidate in (path, f"{path}.pub"):
        text = _text(candidate)
        blob = None if text is None else _public_line(text)
        if blob is not None:
            return blob
    text = _text(path)
    return None if text is None else _openssh_private_public(text)


def _text(path: str) -> str | None:
    """The text of key file `path` (its first `_MAX_KEY_FILE_BYTES`), or None if it is no regular file to read."""
    try:
        return _read_regular(path)[0].decode(errors="replace")
    except _NotRegular:
        return None
    except OSError as exc:
        if is_file_exhaustion(exc):  # this machine's limit, not a missing file
            raise
        return None


def _public_line(text: str) -> bytes | None:
    """The key blob of a public key file's first line (`ssh-ed25519 AAAA... comment`), else None."""
    from paramiko.pkey import PublicBlob

    line = text.strip().partition("\n")[0]
    try:
        return bytes(PublicBlob.from_string(line).key_blob)
    except (ValueError, TypeError, IndexError, binascii.Error):
        return None


def _openssh_private_public(text: str) -> bytes | None:
    """The first public key an OpenSSH-format private key file holds in the clear (encrypted or not), else None."""
    import paramiko

    begin, end = _OPENSSH_KEY
    if begin not in text or end not in text:
        return None
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        data = base64.b64decode("".join(body.split()), validate=True)
    except (ValueError, binascii.Error):
        return None
    if not data.startswith(_OPENSSH_MAGIC):
        return None
    message = paramiko.Message(data[len(_OPENSSH_MAGIC) :])
    try:
        for _ in range(3):  # cipher name, KDF name, KDF options
            message.get_binary()
        return bytes(message.get_binary()) if message.get_int() >= 1 else None
    except Exception:  # a truncated or garbled header: no public key from it
        return None


#: What to do when sshd closed the connection after too many refused keys (its MaxAuthTries, 6 by default).
TOO_MANY_KEYS_HINT = (
    "sshd closes the connection once MaxAuthTries keys were refused: offer the right key first, with "
    "`IdentitiesOnly yes` and its IdentityFile for the host in ~/.ssh/config, or identity_file in factory.yaml, "
    "or keep fewer keys in ssh-agent."
)


#: How the `auth` error begins when no key reached the server (none to offer), and its agent's sign timeout's.
NO_KEY_TO_OFFER = "no key to offer to"
AGENT_UNSIGNED = "ssh-agent did not sign"
AGENT_SIGN_HINT = (
    "confirm the key's use in ssh-agent (a key added with `ssh-add -c` asks through ssh-askpass) or unlock it (a "
    "smartcard's PIN), then run again; factoryctl waits for it as long as ssh.connect_timeout_s in factory.yaml."
)
#: What to do when the ssh-agent SSH_AUTH_SOCK names could not be asked (no such socket, or no answer).
AGENT_HINT = (
    "start (or restart) the ssh-agent SSH_AUTH_SOCK names and `ssh-add` your key, or unset SSH_AUTH_SOCK and name the "
    "key file as identity_file in factory.yaml."
)


def auth_hint(skipped: list[SkippedKey], left_out: int, too_many: bool = False, agent_failed: bool = False) -> str:
    """What to do when no key was accepted: offer the right key first, load it, or fix the line naming no file.

    factory.yaml's identity_file (and user) win over ~/.ssh/config's IdentityFile (and User): a file named there
    that does not exist hides the key ~/.ssh/config names, so the hint for a missing file names both places.

    `too_many`: the server closed the connection after too many refused keys (sshd's MaxAuthTries).
    `agent_failed`: the ssh-agent SSH_AUTH_SOCK names could not be asked for its keys.
    """
    if too_many:
        return TOO_MANY_KEYS_HINT
    exposed = [s.path for s in skipped if s.too_open]
    if exposed:
        return f"run `chmod 600 {shlex.quote(exposed[0])}`: ssh, too, uses no private key others can read."
    locked = [s.path for s in skipped if s.needs_passphrase]
    if locked:
        return (
            f"load the key into ssh-agent (`ssh-add {locked[0]}`) and run factoryctl with SSH_AUTH_SOCK pointing at "
            "that agent; factoryctl never asks for a passphrase."
        )
    missing = [s.path for s in skipped if s.reason == _no_file(s.path)]
    if missing:
        return (
            f"correct or remove the identity_file that names {missing[0]} in factory.yaml (under ssh: or the node's; "
            "it wins over ~/.ssh/config's IdentityFile), or the IdentityFile line that names it in ~/.ssh/config."
        )
    if agent_failed:
        return AGENT_HINT
    if left_out:
        return (
            "IdentitiesOnly yes in ~/.ssh/config offers only the IdentityFile keys (or ssh-agent's copies of them): "
            "name the right key there, or check the user's authorized_keys."
        )
    return (
        "offer the node's key as its user: identity_file and user in factory.yaml (under ssh: or the node's) win over "
        "~/.ssh/config's IdentityFile and User; or add the key to ssh-agent; and check the user's authorized_keys."
    )


def _no_file(path: str) -> str:
    """Why identity file `path` was skipped when it does not exist, as ssh says it ("no such identity")."""
    return f"no identity file {path}"
