"""TLS for the bus off the host: a private CA, certificates it issues, and how servers and
clients use them.

Mutual TLS: a server shows a certificate of the site's CA and asks each client, route and
leaf node for one (``verify: true``); a rig checks that its site's certificate comes from
the same CA. Operators may bring their own certificates instead: the server blocks only
need three files. Private keys are written owner-only; certificates are public.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from foto3d.libs.bus.identities import write_private

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
# Client-side environment: the CA to trust, and this participant's certificate and key.
TLS_CA_ENV = "FOTO3D_NATS_TLS_CA"
TLS_CERT_ENV = "FOTO3D_NATS_TLS_CERT"
TLS_KEY_ENV = "FOTO3D_NATS_TLS_KEY"
CA_DAYS = 3650
CERT_DAYS = 825


@dataclass(frozen=True)
class TlsFiles:
    """One participant's TLS material: the CA it trusts, its certificate and its key."""

    ca: Path
    cert: Path
    key: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)


def create_ca(folder: Path, name: str = "foto3d bus CA") -> Path:
    """A new CA in ``folder`` (``ca.pem``, ``ca.key`` owner-only); returns the certificate's path."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(folder / CA_KEY, key)
    (folder / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder / CA_CERT


def issue(ca_folder: Path, out: Path, name: str, hosts: tuple[str, ...] = ()) -> TlsFiles:
    """A certificate for ``name`` signed by the CA in ``ca_folder``, good as server and client.

    ``hosts`` (DNS names or IP addresses) are the names a server is reached by; a pure client
    (a rig's leaf link, a trainer) needs none.
    """
    ca_cert = x509.load_pem_x509_certificate((ca_folder / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((ca_folder / CA_KEY).read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(ca=out / CA_CERT, cert=out / f"{name}.pem", key=out / f"{name}.key")
    _write_key(files.key, key)
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if files.ca.resolve() != (ca_folder / CA_CERT).resolve():
        files.ca.write_bytes((ca_folder / CA_CERT).read_bytes())
    return files


def server_tls_block(files: TlsFiles, *, verify: bool = True) -> str:
    """A nats-server ``tls { }`` block (client port, ``cluster``, ``leafnodes``, or a leaf remote).

    With ``verify`` the other side must show a certificate of the same CA.
    """
    lines = [
        f"cert_file: {json.dumps(str(files.cert))}",
        f"key_file: {json.dumps(str(files.key))}",
        f"ca_file: {json.dumps(str(files.ca))}",
    ]
    if verify:
        lines.append("verify: true")
    return "tls { " + ", ".join(lines) + " }"


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client's TLS: trust only ``ca``; show ``cert`` when the server asks for one."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def client_context_from_env() -> ssl.SSLContext | None:
    """The TLS the environment asks for (``FOTO3D_NATS_TLS_CA`` and optionally a certificate)."""
    ca = os.environ.get(TLS_CA_ENV)
    if not ca:
        return None
    cert, key = os.environ.get(TLS_CERT_ENV), os.environ.get(TLS_KEY_ENV)
    return client_context(Path(ca), Path(cert) if cert else None, Path(key) if key else None)
