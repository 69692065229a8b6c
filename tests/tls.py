"""A self-signed certificate for tests of TLS receivers (a webhook endpoint, an SMTP relay)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Certificate:
    """The server's context, and a client context that trusts the certificate (and checks the
    host name, as the default context does)."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def self_signed(folder: Path, common_name: str, *alt_names: str) -> Certificate:
    """A certificate for ``alt_names`` (``DNS:…``/``IP:…``) made by openssl in ``folder``; the
    test is skipped where openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={common_name}",
            "-addext", f"subjectAltName={','.join(alt_names)}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return Certificate(server=server, client=ssl.create_default_context(cafile=str(cert)))
