"""A throwaway PKI for tests, built with ``openssl``: certificate authorities that issue EC
P-256 server and client certificates valid for two days. One builder for every test that
needs TLS (vendors behind the egress proxy, brokers on SASL_SSL and mTLS listeners)."""

from __future__ import annotations

import subprocess
from pathlib import Path

_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class TestAuthority:
    """A self-signed CA in ``directory`` (``<name>.pem``, ``<name>.key``)."""

    __test__ = False  # not a test class, whatever pytest's name rules say

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name = directory, name
        _openssl(
            directory,
            "req",
            "-x509",
            *_EC,
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN=continuum-{name}",
        )
        self.pem = directory / f"{name}.pem"

    def issue(
        self,
        name: str,
        *,
        subject: str,
        alt_names: str | None = None,
        client: bool = False,
        key_password: str | None = None,
    ) -> tuple[Path, Path]:
        """A certificate for ``subject`` signed by this CA: ``(<name>.pem, <name>.key)``. A server
        certificate names ``alt_names`` (``DNS:…,IP:…``); a client one is for client auth only.
        With ``key_password`` the private key is written encrypted."""
        d = self.directory
        usage = "clientAuth" if client else "serverAuth"
        ext = f"basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid,issuer\nextendedKeyUsage={usage}\n"
        if alt_names:
            ext = f"subjectAltName={alt_names}\n" + ext
        (d / f"{name}.ext").write_text(ext)
        key_protection = ("-passout", f"pass:{key_password}") if key_password else ("-nodes",)
        _openssl(
            d, "req", *_EC, *key_protection, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={subject}"
        )
        _openssl(
            d,
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            f"{self.name}.pem",
            "-CAkey",
            f"{self.name}.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
        )
        return d / f"{name}.pem", d / f"{name}.key"
