"""Certificates and keys for a test control plane, made with ``cryptography``.

Kubernetes reads a client certificate's subject as the identity: the common name is the user,
each organization a group (``O=system:masters`` is the admin group RBAC never restricts). The
serving certificate carries an IP SAN for 127.0.0.1, which is what clients check when they
connect to ``https://127.0.0.1:PORT``. ECDSA P-256 keys throughout: generated in microseconds,
and accepted by every component (the service-account signer signs ES256 tokens with one).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Long enough for a developer's cluster to outlive a holiday; nothing here is a real secret.
VALIDITY = datetime.timedelta(days=365)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    encoding, private = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, private, serialization.NoEncryption())


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (as kubeadm does)."""
    path.touch(mode=0o600)
    path.write_bytes(data)


@dataclasses.dataclass(frozen=True)
class Issued:
    """A certificate and its key, as written to ``NAME.crt`` and ``NAME.key``."""

    cert: Path
    key: Path


@dataclasses.dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA whose files are ``DIR/NAME.crt`` and ``DIR/NAME.key``."""

    directory: Path
    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_file(self) -> Path:
        return self.directory / f"{self.name}.crt"

    @classmethod
    def load_or_create(cls, directory: Path, name: str, *, common_name: str) -> CertificateAuthority:
        """The CA already in ``directory`` (a restarted dev cluster keeps its identities), else a new one."""
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        if cert_file.exists() and key_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise TypeError(f"{key_file} is not an ECDSA key; delete {directory} to start afresh")
            return cls(directory, name, x509.load_pem_x509_certificate(cert_file.read_bytes()), key)
        directory.mkdir(parents=True, exist_ok=True)
        key = new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(key_file, key_pem(key))
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(directory, name, certificate, key)

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organizations: Sequence[str] = (),
        server: bool = False,
        client: bool = False,
        ips: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        reuse: bool = True,
    ) -> Issued:
        """A certificate signed by this CA, written to ``DIR/NAME.crt``/``.key`` (kept if there and ``reuse``)."""
        issued = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        if reuse and issued.cert.exists() and issued.key.exists():
            return issued
        key = new_key()
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in organizations]
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        alternative: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        alternative += [x509.DNSName(dns) for dns in dns_names]
        if alternative:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        write_private(issued.key, key_pem(key))
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return issued


def signing_key(directory: Path, name: str) -> Issued:
    """The service-account signing key ``NAME.key`` and its public half ``NAME.pub`` (kept if there)."""
    pair = Issued(directory / f"{name}.pub", directory / f"{name}.key")
    if not (pair.cert.exists() and pair.key.exists()):
        key = new_key()
        write_private(pair.key, key_pem(key))
        pair.cert.write_bytes(public_key_pem(key))
    return pair
