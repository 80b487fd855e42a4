"""The files a config names, read or checked safely: the config itself, secret files, CA bundles,
the state directory.

Every file the config loader reads goes through `read_small_file`: a FIFO would block the
read forever and /dev/zero would fill memory, so only regular files up to a limit are read.
Reasons are short phrases without the file's content; callers lead them with key and path.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

KIB, MIB = 1024, 1024 * 1024
# A config with a thousand accounts is ~300 KiB.
CONFIG_LIMIT = MIB
# Passwords, client secrets and refresh tokens are at most a few KiB (Microsoft's ~2 KiB).
SECRET_LIMIT = 64 * KIB
# Debian's whole system bundle (ca-certificates.crt, ~150 certificates) is ~220 KiB.
CA_LIMIT = 4 * MIB

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class UnreadableFile(Exception):
    """`reason` says why, e.g. "No such file or directory" or "not a regular file (a FIFO)"."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def read_small_file(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; UnreadableFile otherwise."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or "error") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
            raise UnreadableFile(f"not a regular file ({kind})")
        chunks, size = [], 0
        while size <= limit:  # files in /proc say size 0: count what is read, not st_size
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise UnreadableFile(f"larger than {_size(limit)}")
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or "error") from None
    finally:
        os.close(fd)


def ca_bundle_problem(path: Path) -> str | None:
    """Why `path` cannot serve as extra trust anchors, or None when it loads as TLS will load it."""
    try:
        read_small_file(path, CA_LIMIT)
    except UnreadableFile as exc:
        return f"cannot read {path}: {exc.reason}"
    import ssl  # here: most configs name no CA file, and a passive check opens no TLS

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # The call monitor.adapters.tls makes later: what passes here passes there.
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        # "[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found (_ssl.c:4020)"
        reason = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.args[-1]))
        return f"{path} is not a PEM CA bundle (BEGIN CERTIFICATE blocks): {reason}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or 'error'}"
    return None


def state_dir_problem(path: Path) -> str | None:
    """Why this user could not keep state in `path` (creating it if missing), or None.
    Nothing is created: check-config changes nothing."""
    path = Path(os.path.abspath(path))  # a relative default ("var") is relative to here
    existing = path
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:  # e.g. a parent this user may not look into
        return f"cannot check {path}: {exc.strerror or 'error'}"
    if existing != path and not is_dir:
        return f"cannot create {path}: {existing} is not a directory"
    if existing == path and not is_dir:
        return f"{path} is not a directory"
    # access() also says no for root on a read-only file system (EROFS).
    effective = os.access in os.supports_effective_ids
    if os.access(existing, os.W_OK | os.X_OK, effective_ids=effective):
        return None
    user = f"uid {os.geteuid()}"
    if existing == path:
        return f"{path} is not writable by this user ({user})"
    return f"cannot create {path}: {existing} is not writable by this user ({user})"


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB else f"{limit // KIB} KiB"
