"""The demo's self-signed TLS certificate, generated once per machine and kept.

Phones give a page the camera and WebGPU only in a secure context: HTTPS, or localhost.
A LAN server therefore needs a certificate; a self-signed one is accepted once on the
phone (the browser's "proceed anyway" step, see the README) and then reused, so it is
made once and kept under the user cache (``$XDG_CACHE_HOME/edgekit/demo``, else
``~/.cache/edgekit/demo``), valid for ten years, for ``localhost``, the host name and
the addresses given when it was made.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path
from typing import Sequence

from ..errors import EdgekitError

__all__ = ["cache_dir", "ensure_certificate"]

CERT, KEY = "cert.pem", "key.pem"
VALID_DAYS = 3650


def cache_dir() -> Path:
    """Where the certificate is kept: ``$XDG_CACHE_HOME/edgekit/demo`` or ``~/.cache/edgekit/demo``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "edgekit" / "demo"


def _make(addresses: Sequence[str]) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "localhost"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"edgekit demo ({host})")])
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if host != "localhost":
        alt.append(x509.DNSName(host))
    for a in dict.fromkeys(["127.0.0.1", *addresses]):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(a)))
        except ValueError:
            alt.append(x509.DNSName(a))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def ensure_certificate(addresses: Sequence[str] = (), folder: Path | None = None) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` in ``folder`` (default :func:`cache_dir`), made on first use for
    ``addresses`` and kept; one line when the folder cannot be written or read."""
    folder = Path(folder) if folder is not None else cache_dir()
    cert, key = folder / CERT, folder / KEY
    if cert.is_file() and key.is_file():
        if not (os.access(cert, os.R_OK) and os.access(key, os.R_OK)):
            raise EdgekitError(f"cannot read the demo certificate in {folder} (permission denied); fix its "
                               "permissions or set XDG_CACHE_HOME to a folder you own")
        return cert, key
    try:
        from cryptography import x509  # noqa: F401
    except ImportError as exc:
        raise EdgekitError("the HTTPS demo needs the cryptography package: pip install cryptography") from exc
    cert_pem, key_pem = _make(addresses)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        cert.write_bytes(cert_pem)
    except OSError as exc:
        raise EdgekitError(f"cannot write the demo certificate to {folder} ({exc.strerror or exc}); set "
                           "XDG_CACHE_HOME to a folder you can write, or use --host 127.0.0.1 (plain HTTP)") from exc
    return cert, key
