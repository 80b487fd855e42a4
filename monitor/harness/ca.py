"""A throwaway certificate authority for the harness: clients trust it, nothing else does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True, slots=True)
class ThrowawayCA:
    """PEM files of a fresh CA and of one server certificate signed by it."""

    ca_file: Path
    cert_file: Path  # server certificate followed by its chain
    key_file: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    @classmethod
    def create(cls, directory: Path, *hostnames: str) -> ThrowawayCA:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="mailcanary harness")
        server = ca.issue_cert(*hostnames)
        ca_file = directory / "ca.pem"
        cert_file = directory / "server.pem"
        key_file = directory / "server.key"
        ca.cert_pem.write_to_path(str(ca_file))
        cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
        # Both servers read the key as root before dropping privileges, so 0600 root is enough.
        key_file.touch(mode=0o600)
        server.private_key_pem.write_to_path(str(key_file))
        return cls(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
