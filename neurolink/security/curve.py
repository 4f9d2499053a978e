"""ZeroMQ CURVE (transport encryption + client authentication) and the "no keys on the network" guard.

Config table (``transport.curve`` in the daemon TOML; the same keys on both sides)::

    secret_key = "keys/server.key_secret"     # this endpoint's certificate (with its secret key)
    server_key = "keys/server.key"            # clients only: the server's public certificate (or Z85)
    authorized_clients = "keys/authorized_clients"   # servers only: directory of allowed *.key files

The server side (whichever binds) runs a ZAP authenticator that admits only the public keys found in
``authorized_clients``: a subscriber with no keys or unknown keys never completes the handshake, so it
receives nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from neurolink.errors import ConfigError
from neurolink.netutil import is_loopback_endpoint
from neurolink.security.keys import load_curve_key

log = logging.getLogger(__name__)

_KEYS = ("secret_key", "server_key", "authorized_clients")
_auth_lock = threading.Lock()
_authenticators: dict[int, ThreadAuthenticator] = {}  # one ZAP handler per libzmq context


def _authenticator(ctx: zmq.Context) -> ThreadAuthenticator:
    with _auth_lock:
        key = ctx.underlying
        auth = _authenticators.get(key)
        if auth is None or not auth.is_alive():
            auth = ThreadAuthenticator(ctx, log=logging.getLogger("neurolink.security.zap"))
            auth.start()
            _authenticators[key] = auth
        return auth


def stop_authenticators() -> None:
    """Stop every ZAP thread (tests, clean shutdown); they are daemon threads otherwise."""
    with _auth_lock:
        for auth in _authenticators.values():
            auth.stop()
        _authenticators.clear()


def apply_curve(sock: zmq.Socket, cfg: dict[str, Any], server: bool) -> None:
    """Make ``sock`` a CURVE server (with ZAP allow-list) or client, before it binds/connects."""
    if not isinstance(cfg, dict):
        raise ConfigError("transport.curve", f"expected a table, got {type(cfg).__name__}")
    for k in cfg:
        if k not in _KEYS:
            raise ConfigError(f"transport.curve.{k}", f"unknown key; expected one of {list(_KEYS)}")
    if not zmq.has("curve"):
        raise ConfigError("transport.curve", "this libzmq was built without CURVE support")
    if "secret_key" not in cfg:
        raise ConfigError("transport.curve.secret_key", "missing (create keys with `neurolink keys generate --out DIR`)")
    pub, sec = load_curve_key(cfg["secret_key"], "transport.curve.secret_key", secret=True)
    sock.curve_secretkey = sec
    sock.curve_publickey = pub
    if server:
        allowed = cfg.get("authorized_clients")
        if allowed is None:
            raise ConfigError("transport.curve.authorized_clients",
                              "a CURVE server needs a directory of allowed client public keys (*.key)")
        d = Path(allowed)
        if not d.is_dir() or not any(d.glob("*.key")):
            raise ConfigError("transport.curve.authorized_clients", f"no *.key client certificates in {d}")
        domain = "neurolink-" + hashlib.sha256(str(d.resolve()).encode()).hexdigest()[:16]
        auth = _authenticator(sock.context)
        auth.configure_curve(domain=domain, location=str(d))
        sock.zap_domain = domain.encode()
        sock.curve_server = True
    else:
        if "server_key" not in cfg:
            raise ConfigError("transport.curve.server_key", "a CURVE client needs the server's public key file")
        server_pub, _ = load_curve_key(cfg["server_key"], "transport.curve.server_key", secret=False)
        sock.curve_serverkey = server_pub


def require_security(endpoint: str, cfg: dict[str, Any] | None) -> None:
    """Refuse plaintext on a non-loopback endpoint unless the config says ``insecure = true``.

    ``cfg`` is the ``[security]`` table: any of ``curve``, ``keys_file``/``keys_env`` counts as keys.
    """
    cfg = cfg or {}
    if is_loopback_endpoint(endpoint):
        return
    insecure = cfg.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError("security.insecure", f"expected true or false, got {insecure!r}")
    if insecure:
        log.warning("%s: running WITHOUT encryption or authentication (security.insecure = true)", endpoint)
        return
    if cfg.get("curve") or cfg.get("keys_file") or cfg.get("keys_env"):
        return
    raise ConfigError(
        "security",
        f"{endpoint} is not a loopback address and no keys are configured; run `neurolink keys generate --out keys/` "
        "and set security.keys_file / transport.curve (see docs/security.md), or set security.insecure = true",
    )


__all__ = ["apply_curve", "require_security", "stop_authenticators"]
