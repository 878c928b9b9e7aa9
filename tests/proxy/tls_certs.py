"""Test certificates, made with the ``openssl`` command line at test time.

Why the command line and not a Python package: ``openssl`` ships with every
system that has the OpenSSL library CPython's ``ssl`` module links, so the
tests need no new dependency (``trustme`` would pull in ``cryptography``).
Keys are P-256 (fast to make); every file lives in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class CertPair:
    cert: str  # path of the PEM certificate
    key: str  # path of the PEM private key


def _run(*args: str) -> None:
    subprocess.run([OPENSSL, *args], check=True, capture_output=True)


class CertificateAuthority:
    """A self-signed CA in ``directory`` that issues leaf certificates."""

    def __init__(self, directory: str, name: str = "test-ca") -> None:
        self.directory = directory
        self.name = name
        self.cert = os.path.join(directory, f"{name}.pem")
        self.key = os.path.join(directory, f"{name}.key")
        _run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", self.key, "-out", self.cert,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )

    def issue(self, common_name: str, dns_names: tuple[str, ...] = (), *, client: bool = False) -> CertPair:
        """A leaf certificate for ``common_name`` with these DNS SANs (and 127.0.0.1), signed by this CA."""
        base = os.path.join(self.directory, f"{self.name}-{common_name}{'-client' if client else ''}")
        key, csr, cert, ext = base + ".key", base + ".csr", base + ".pem", base + ".ext"
        sans = ",".join([f"DNS:{n}" for n in dns_names] + ["IP:127.0.0.1"])
        with open(ext, "w") as handle:
            handle.write(f"subjectAltName={sans}\nextendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={common_name}", "-keyout", key, "-out", csr)
        _run("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert)
        return CertPair(cert, key)
