"""MQTT link security: TLS context, broker credentials from env/file, and the "is this link secured" rule.

Kept apart from mqtt.py so the transport only asks for ``aiomqtt.Client`` keyword arguments. Every
error names the ``transport.*`` key it comes from.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurolink.errors import ConfigError

log = logging.getLogger(__name__)

TLS_KEYS = ("tls", "ca_file", "cert_file", "key_file", "tls_insecure")
CREDENTIAL_KEYS = ("username", "password", "password_env", "password_file")


def _file(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"transport.{key}", f"expected a file path, got {value!r}")
    if not Path(value).is_file():
        raise ConfigError(f"transport.{key}", f"file not found: {value}")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"transport.{key}", f"expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class TlsSettings:
    """Validated TLS options; ``client_kwargs()`` turns them into aiomqtt.Client arguments."""

    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    @classmethod
    def from_config(cls, tls: Any = False, ca_file: Any = None, cert_file: Any = None, key_file: Any = None,
                    tls_insecure: Any = False) -> TlsSettings:
        enabled = _flag("tls", tls)
        insecure = _flag("tls_insecure", tls_insecure)
        given = {k: v for k, v in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file),
                                   ("tls_insecure", insecure or None)) if v is not None}
        if not enabled:
            if given:  # a CA file without tls = true is a mistake worth naming, not a silent plaintext link
                k = sorted(given)[0]
                raise ConfigError(f"transport.{k}", "given without transport.tls = true")
            return cls()
        if key_file is not None and cert_file is None:
            raise ConfigError("transport.key_file", "given without transport.cert_file")
        return cls(True, _file("ca_file", ca_file) if ca_file is not None else None,
                   _file("cert_file", cert_file) if cert_file is not None else None,
                   _file("key_file", key_file) if key_file is not None else None, insecure)

    def context(self) -> ssl.SSLContext:
        """Verifying client context: the system CAs or ``ca_file``; the client certificate if given."""
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("transport.ca_file", f"cannot load CA certificates from {self.ca_file}: {exc}") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError("transport.cert_file", f"cannot load client certificate {self.cert_file} "
                                  f"(key {self.key_file or 'in the same file'}): {exc}") from None
        if self.insecure:
            ctx.check_hostname = False  # the chain is still verified; only the name check is skipped
        return ctx

    def client_kwargs(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        return {"tls_context": self.context(), "tls_insecure": self.insecure}


def resolve_password(username: Any, password: Any, password_env: Any, password_file: Any,
                     environ: Mapping[str, str] | None = None) -> str | None:
    """The broker password from exactly one of ``password``, ``password_env`` or ``password_file``."""
    given = [k for k, v in (("password", password), ("password_env", password_env), ("password_file", password_file))
             if v is not None]
    if len(given) > 1:
        raise ConfigError(f"transport.{given[1]}", f"conflicts with transport.{given[0]}: give only one password source")
    if given and username is None:
        raise ConfigError(f"transport.{given[0]}", "given without transport.username")
    if password is not None:
        if not isinstance(password, str):
            raise ConfigError("transport.password", f"expected str, got {password!r}")
        return password
    if password_env is not None:
        if not isinstance(password_env, str) or not password_env:
            raise ConfigError("transport.password_env", f"expected an environment variable name, got {password_env!r}")
        env = os.environ if environ is None else environ
        if password_env not in env:
            raise ConfigError("transport.password_env", f"environment variable {password_env} is not set")
        return env[password_env]
    if password_file is not None:
        path = _file("password_file", password_file)
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("transport.password_file", f"cannot read {path}: {exc}") from None
        if Path(path).stat().st_mode & 0o077:
            log.warning("transport.password_file %s is readable by group/others; chmod 600 it", path)
        return text.rstrip("\r\n")  # one line; a trailing newline from `echo` is not part of the password
    return None


def link_secured(transport: Mapping[str, Any]) -> bool:
    """True when an MQTT transport table gives a verified TLS link with client authentication.

    That is ``tls = true``, ``tls_insecure`` off, and either a username with a password source or a
    client certificate. Checked on the raw TOML table (before the transport validates it), so it only
    looks at truthiness; a bad value still fails later with its own error.
    """
    if transport.get("kind") != "mqtt" or transport.get("tls") is not True or transport.get("tls_insecure") is True:
        return False
    has_password = any(transport.get(k) for k in ("password", "password_env", "password_file"))
    return bool(transport.get("cert_file")) or bool(transport.get("username") and has_password)


def require_mqtt_security(transport: Mapping[str, Any], security: dict[str, Any]) -> None:
    """The daemons' off-loopback rule for MQTT: TLS + authentication counts as transport security.

    Otherwise the generic rule applies (frame keys or ``security.insecure = true``), with a hint at the
    MQTT options in its error.
    """
    from neurolink.security.curve import require_security

    endpoint = f"tcp://{transport.get('host', '127.0.0.1')}:{transport.get('port', 1883)}"
    if link_secured(transport):
        if not (security.get("keys_file") or security.get("keys_env")):
            log.info("%s: MQTT over TLS with client authentication; the broker sees plaintext frames "
                     "(add security.keys_file for end-to-end encryption)", endpoint)
        return
    try:
        require_security(endpoint, security)
    except ConfigError as exc:
        if exc.key != "security":  # e.g. a malformed security.insecure: keep that error as it is
            raise
        raise ConfigError("security", f"{endpoint} is not a loopback address and the link is not secured: set "
                          "transport.tls = true with transport.username + password_env/password_file (or cert_file), "
                          "and/or security.keys_file (`neurolink keys generate --out keys/`), or set "
                          "security.insecure = true (see docs/security.md)") from None


_REFUSED = ("not authori", "bad user name or password", "bad username or password", "identifier rejected",
            "banned", "bad authentication")


def _is_refusal(exc: BaseException) -> bool:
    from aiomqtt.exceptions import MqttConnectError

    return isinstance(exc, MqttConnectError) or any(r in str(exc).lower() for r in _REFUSED)


def is_config_failure(exc: BaseException, tls: bool = False) -> bool:
    """A refusal or TLS failure: retrying will not fix it without a config change (logged as an error)."""
    if _is_refusal(exc) or isinstance(exc, ssl.SSLError):
        return True
    low = str(exc).lower()
    return "certificate" in low or "ssl" in low or (tls and "reset by peer" in low) or (not tls and "timed out" in low)


def describe_connect_error(exc: BaseException, tls: bool = False) -> str:
    """One line naming the likely cause of a failed connection attempt."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if _is_refusal(exc):
        return f"refused the connection ({text}): check transport.username and the password source"
    if isinstance(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in low:
        return f"TLS certificate not trusted ({text}): check transport.ca_file and the broker's host name"
    if isinstance(exc, ssl.SSLError) or "ssl" in low or (tls and "reset by peer" in low):
        return f"TLS handshake failed ({text}): is this port a TLS listener?"
    if not tls and "timed out" in low:  # a TLS listener waits for a ClientHello and never answers CONNECT
        return f"no answer to CONNECT ({text}): if this port is a TLS listener, set transport.tls = true"
    return f"not reachable ({text})"
