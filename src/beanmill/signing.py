"""Signed bodies: an HMAC-SHA256 tag, keyed by a secret file, on every body beanmill writes.

The tag covers the exact bytes of the unsigned body and is spliced in as the object's last
field, `,"sig":"<64 hex>"}`, so a signed body is still the same JSON object plus one field.
Exact bytes rather than a canonical re-encoding: JSON libraries disagree on how to write a
float (`1e-07` against `1e-7`) or which characters to escape, and a foreign producer must be
able to sign in a few lines. Reading the secret file lives here too, never in the codec.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from beanmill.errors import BadSignature, SecretFileError
from beanmill.files import fsync_dir

SIG_FIELD = "sig"
_HEAD = b',"' + SIG_FIELD.encode() + b'":"'
_TAIL = b'"}'
_HEX_CHARS = 64  # a SHA-256 HMAC in hex
_SUFFIX_LEN = len(_HEAD) + _HEX_CHARS + len(_TAIL)
_HEX = frozenset(b"0123456789abcdef")
#: Whitespace a client may add after the closing brace (a newline from `printf`).
_TRAILING = b" \t\r\n"
#: Random bytes in a secret that `beanmill run` makes (written as hex).
SECRET_BYTES = 32
_MAX_SECRET_BYTES = 4096
HOW_TO_CREATE = "(umask 077; openssl rand -hex 32 > {path})"


@dataclass(frozen=True)
class Signer:
    """The key of one secret file: signs bodies and checks their tags."""

    key: bytes = field(repr=False)

    def tag(self, unsigned: bytes) -> str:
        return hmac.new(self.key, unsigned, hashlib.sha256).hexdigest()

    def sign(self, body: bytes) -> bytes:
        """`body` (a JSON object) with its tag spliced in as the last field, `"sig"`."""
        body = body.rstrip(_TRAILING)
        if not body.endswith(b"}"):
            raise ValueError("only a JSON object body can be signed")
        return body[:-1] + _HEAD + self.tag(body).encode("ascii") + _TAIL

    def verify(self, body: bytes) -> None:
        """Raise BadSignature unless `body` ends with a tag that this key made for the rest."""
        body = body.rstrip(_TRAILING)
        suffix = body[-_SUFFIX_LEN:]
        digest = suffix[len(_HEAD) : -len(_TAIL)]
        if (
            len(body) <= _SUFFIX_LEN
            or not suffix.startswith(_HEAD)
            or not suffix.endswith(_TAIL)
            or not set(digest) <= _HEX
        ):
            raise BadSignature(
                f'bad signature: no tag (a body must end with ,"{SIG_FIELD}":"<64 hex>"}}; '
                "sign it with the secret file, see docs/wire-format.md)"
            )
        unsigned = body[:-_SUFFIX_LEN] + b"}"
        if not hmac.compare_digest(self.tag(unsigned).encode("ascii"), digest):
            raise BadSignature(
                "bad signature: the tag does not match (the body was forged or changed, or "
                "signed with another secret file)"
            )


def signed(signer: Signer | None, body: bytes) -> bytes:
    """The body to put: signed when the role has a secret, as it is otherwise."""
    return body if signer is None else signer.sign(body)


def verify(signer: Signer | None, body: bytes) -> None:
    """Check a body read from a tube when the role has a secret; raises BadSignature."""
    if signer is not None:
        signer.verify(body)


def load_secret(path: Path) -> Signer:
    """The key in a secret file: its bytes without surrounding whitespace. Refused, like ssh
    refuses a private key, when group or others may read or write it, and when it is empty."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretFileError(
            f"secret file {path} does not exist: create it with "
            f"`{HOW_TO_CREATE.format(path=path)}` and copy it to every host"
        ) from None
    except OSError as exc:
        raise SecretFileError(
            f"cannot read secret file {path} ({exc.strerror}): check --secret-file"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError(f"secret file {path} is not a regular file: check --secret-file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            who = "readable" if mode & 0o044 else "writable" if mode & 0o022 else "usable"
            raise SecretFileError(
                f"secret file {path} is {who} by others (mode {mode:04o}): chmod 600 {path}"
            )
        key = os.read(fd, _MAX_SECRET_BYTES + 1).strip()
    finally:
        os.close(fd)
    if not key:
        raise SecretFileError(
            f"secret file {path} is empty: fill it with "
            f"`{HOW_TO_CREATE.format(path=path)}` and copy it to every host"
        )
    if len(key) > _MAX_SECRET_BYTES:
        raise SecretFileError(
            f"secret file {path} is over {_MAX_SECRET_BYTES} bytes: is it the right file?"
        )
    return Signer(key)


def create_secret(path: Path) -> bool:
    """Make `path` a new secret (32 random bytes as hex, mode 0600) unless it exists; True if
    made. The file appears whole or not at all: written under a temporary name, then linked
    to `path`, which fails if it exists (like O_EXCL), so two runs never make two secrets."""
    if path.exists():
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (secrets.token_hex(SECRET_BYTES) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True
