"""The canary signing key: generated once into the state directory, mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.core.canary import KEY_BYTES, new_key

KEY_NAME = "canary.key"


class KeyFileError(Exception):
    pass


def load_or_create(state_dir: Path) -> bytes:
    path = state_dir / KEY_NAME
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True)
        key = new_key()
        # Written aside, then linked into place: link fails if another process won the
        # race, and nobody ever reads a half-written key.
        tmp = state_dir / f".{KEY_NAME}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return load_or_create(state_dir)
        finally:
            tmp.unlink()
        return key
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the canary key: {exc.strerror}") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: expected {KEY_BYTES} bytes, found {len(key)}")
    return key
