"""Test-side access to the throw-away mosquitto broker (the logic lives in neurolink.testing_broker),
plus a TLS + password variant: a throw-away CA, server and client certificates made with
``cryptography``, and a password file made with ``mosquitto_passwd``.

``MosquittoBroker`` is re-exported unchanged (backward compatible); ``TlsMosquittoBroker`` adds a TLS
listener with ``allow_anonymous false`` and optionally a plain listener with the same accounts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from neurolink.errors import TransportError
from neurolink.netutil import free_port
from neurolink.testing_broker import MosquittoBroker, find_mosquitto, wait_port

__all__ = ["MosquittoBroker", "TlsFiles", "TlsMosquittoBroker", "find_mosquitto", "find_mosquitto_passwd",
           "make_tls_files", "wait_port"]


def find_mosquitto_passwd() -> str | None:
    """Path of ``mosquitto_passwd`` (ships with Debian's mosquitto package), or None."""
    return shutil.which("mosquitto_passwd") or next(
        (c for c in ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd") if Path(c).is_file()), None)


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing here: a client trusting only it must fail verification


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _cert(subject_cn: str, key, issuer_cn: str, issuer_key, *, ca: bool, sans: list | None = None, client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_tls_files(folder: Path, host: str = "127.0.0.1", client_cn: str = "nl-client") -> TlsFiles:
    """A throw-away CA, a server certificate for ``host`` (IP SAN + localhost) and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_key, other_key, srv_key, cli_key = _key(), _key(), _key(), _key()
    ca = _cert("neurolink test CA", ca_key, "neurolink test CA", ca_key, ca=True)
    other = _cert("some other CA", other_key, "some other CA", other_key, ca=True)
    sans: list = [x509.DNSName("localhost")]
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        sans.append(x509.DNSName(host))
    srv = _cert(host, srv_key, "neurolink test CA", ca_key, ca=False, sans=sans)
    cli = _cert(client_cn, cli_key, "neurolink test CA", ca_key, ca=False, client=True)
    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key", folder / "client.crt",
                     folder / "client.key", folder / "other-ca.crt")
    files.ca_cert.write_bytes(ca.public_bytes(pem))
    files.other_ca_cert.write_bytes(other.public_bytes(pem))
    files.server_cert.write_bytes(srv.public_bytes(pem))
    files.client_cert.write_bytes(cli.public_bytes(pem))
    _write_key(srv_key, files.server_key)
    _write_key(cli_key, files.client_key)
    return files


class TlsMosquittoBroker(MosquittoBroker):
    """mosquitto with a TLS listener on ``port``, ``allow_anonymous false`` and a password file.

    ``users`` maps usernames to passwords (written with ``mosquitto_passwd -b``). With
    ``client_certs=True`` the listener also requires a client certificate signed by the test CA and takes
    the certificate's CN as the username. ``plain_port`` (if not None) adds a plain TCP listener with the
    same accounts (``plain_port=0`` picks a free one).
    """

    def __init__(self, users: dict[str, str], host: str = "127.0.0.1", port: int | None = None,
                 client_certs: bool = False, plain_port: int | None = None, binary: str | None = None) -> None:
        super().__init__(host, port, binary)
        passwd = find_mosquitto_passwd()
        if passwd is None:
            raise TransportError("mosquitto_passwd not found (Debian/Ubuntu: apt-get install mosquitto)")
        self.tls = make_tls_files(self._dir / "tls", host)
        self.passwords = self._dir / "passwords"
        for i, (user, pw) in enumerate(users.items()):
            args = [passwd, "-b"] + (["-c"] if i == 0 else []) + [str(self.passwords), user, pw]
            subprocess.run(args, check=True, capture_output=True)
        if not users:
            self.passwords.write_text("")
        self.plain_port = (plain_port or free_port(host)) if plain_port is not None else None
        tls_lines = (f"listener {self.port} {self.host}\n"
                     f"cafile {self.tls.ca_cert}\ncertfile {self.tls.server_cert}\nkeyfile {self.tls.server_key}\n"
                     "tls_version tlsv1.2\n")
        if client_certs:
            tls_lines += "require_certificate true\nuse_identity_as_username true\n"
        plain = f"listener {self.plain_port} {self.host}\n" if self.plain_port is not None else ""
        self.conf.write_text(
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {self.passwords}\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 100000\n"
            "log_dest none\n"
            + tls_lines + plain
        )
        for p in self._dir.rglob("*"):  # a root-started mosquitto drops to its own user before reading some files
            p.chmod(p.stat().st_mode | 0o044)
        self._dir.chmod(0o755)
        (self._dir / "tls").chmod(0o755)

    def start(self, timeout: float = 5.0) -> TlsMosquittoBroker:
        super().start(timeout)
        if self.plain_port is not None and not wait_port(self.host, self.plain_port, timeout):
            raise TransportError(f"mosquitto did not listen on {self.host}:{self.plain_port}")
        return self
