"""MQTT over TLS with broker accounts (issue 7), against a real mosquitto with a throw-away CA.

The broker has a TLS listener with ``allow_anonymous false`` and a ``mosquitto_passwd`` password file.
Authenticated TLS clients stream bit-exact; a wrong password, no credentials, an untrusted CA and
plain TCP to the TLS port all fail with one clear error line, are counted, and crash nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from neurolink.errors import ConfigError
from neurolink.receiver import Receiver
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.replay import Recording, ReplaySource
from neurolink.sources.synthetic import synthetic_recording
from neurolink.transports import make_receiver_transport, make_sender_transport
from neurolink.transports.mqtt import MqttReceiver, MqttSender
from neurolink.transports.mqtt_tls import link_secured, require_mqtt_security, resolve_password

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mosquitto import TlsMosquittoBroker, find_mosquitto, find_mosquitto_passwd  # noqa: E402

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(120)]  # a hang fails fast instead of taking 300 s

USER, PASSWORD = "alice", "correct horse 42"
LADDER = [{"id": "delta-zstd"}]  # stateless lossless: the test is about the link, not a codec


def _need_broker() -> None:
    if find_mosquitto() is None or find_mosquitto_passwd() is None:
        pytest.skip("mosquitto / mosquitto_passwd not found (apt-get install mosquitto)")


@pytest.fixture
def tls_broker():
    """A TLS-only mosquitto with one account and a plain listener (same accounts) for the mismatch test."""
    _need_broker()
    broker = TlsMosquittoBroker({USER: PASSWORD, "bob": "other"}, plain_port=0).start()
    try:
        yield broker
    finally:
        broker.close()


def _tls_cfg(broker: TlsMosquittoBroker, prefix: str, **kw) -> dict:
    return {"kind": "mqtt", "host": broker.host, "port": broker.port, "prefix": prefix, "tls": True,
            "ca_file": str(broker.tls.ca_cert), "connect_timeout_s": 3.0, "backoff_max_s": 0.2, **kw}


def test_authenticated_tls_round_trip(tls_broker, tmp_path, monkeypatch):
    """Password from a file on one side, from an environment variable on the other; bytes arrive exact."""
    pw_file = tmp_path / "mqtt.pass"
    pw_file.write_text(PASSWORD + "\n")
    pw_file.chmod(0o600)
    monkeypatch.setenv("NL_TEST_MQTT_PASSWORD", PASSWORD)
    tx = make_sender_transport(_tls_cfg(tls_broker, "nltest/tls", username=USER, password_file=str(pw_file)))
    rx = make_receiver_transport(_tls_cfg(tls_broker, "nltest/tls", username=USER, password_env="NL_TEST_MQTT_PASSWORD"))
    assert tx.password == rx.password == PASSWORD  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    msgs = [rng.bytes(int(n)) for n in rng.integers(1, 3000, 300)]

    async def run():
        async with rx, tx:
            assert tx.connected.is_set() and rx.connected.is_set()  # type: ignore[attr-defined]
            for m in msgs:
                assert await tx.send(m, stream_id=5)
            got = [await asyncio.wait_for(rx.recv(), 5) for _ in msgs]
            assert await rx.send_feedback(b"fb", stream_id=5)
            assert await asyncio.wait_for(tx.recv_feedback(), 5) == b"fb"
        return got

    assert asyncio.run(run()) == msgs
    assert tx.stats.errors == rx.stats.errors == 0 and tx.stats.dropped == 0


@pytest.mark.parametrize("creds, expect", [
    ({"username": USER, "password": "wrong"}, "refused the connection"),
    ({}, "refused the connection"),                                       # anonymous
    ({"username": "bob", "password": "other", "tls": False}, "no answer to CONNECT"),  # plain TCP to the TLS port
    ({"username": USER, "password": PASSWORD, "ca": "other"}, "TLS certificate not trusted"),
])
def test_bad_clients_cannot_receive(tls_broker, creds, expect, caplog):
    """The intruder gets no data; it logs one error line (not one per retry), counts failures, keeps running."""
    creds = dict(creds)
    ca = tls_broker.tls.other_ca_cert if creds.pop("ca", None) == "other" else tls_broker.tls.ca_cert
    bad_cfg = _tls_cfg(tls_broker, "nltest/bad", connect_timeout_s=0.5, backoff_min_s=0.05, backoff_max_s=0.1,
                       ca_file=str(ca), **creds)
    if bad_cfg["tls"] is False:
        bad_cfg.pop("ca_file")
    good = MqttSender(**{k: v for k, v in _tls_cfg(tls_broker, "nltest/bad").items() if k != "kind"},
                      username=USER, password=PASSWORD)
    bad = MqttReceiver(**{k: v for k, v in bad_cfg.items() if k != "kind"})

    async def run():
        with caplog.at_level(logging.WARNING, logger="neurolink.transports.mqtt"):
            async with good, bad:
                for i in range(50):
                    await good.send(b"secret-%d" % i, stream_id=1)
                    await asyncio.sleep(0.02)
                for _ in range(500):  # at least two attempts (one error line, not one per retry), load or not
                    if bad.connect_failures >= 2:
                        break
                    await asyncio.sleep(0.02)
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(bad.recv(), 0.5)

    asyncio.run(run())
    assert not bad.connected.is_set()
    assert bad.stats.received == 0 and bad.connect_failures >= 2 and bad.stats.errors >= 2
    assert expect in bad.last_error
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name.endswith("mqtt")]
    assert len(errors) == 1 and expect in errors[0] and "\n" not in errors[0]
    assert good.stats.sent == 50 and good.stats.errors == 0


def test_client_certificate_authentication():
    """``require_certificate`` + ``use_identity_as_username``: a client certificate alone authenticates."""
    _need_broker()
    with TlsMosquittoBroker({}, client_certs=True) as broker:
        t = broker.tls
        kw = {"host": broker.host, "port": broker.port, "prefix": "nltest/cert", "tls": True, "ca_file": str(t.ca_cert),
              "connect_timeout_s": 3.0}
        tx = MqttSender(**kw, cert_file=str(t.client_cert), key_file=str(t.client_key))
        rx = MqttReceiver(**kw, cert_file=str(t.client_cert), key_file=str(t.client_key))
        no_cert = MqttReceiver(**{**kw, "connect_timeout_s": 0.5})

        async def run():
            async with rx, tx, no_cert:
                await tx.send(b"hello", stream_id=2)
                assert await asyncio.wait_for(rx.recv(), 5) == b"hello"
                for _ in range(100):  # its first attempt may still be in its handshake
                    if no_cert.connect_failures:
                        break
                    await asyncio.sleep(0.05)
                assert not no_cert.connected.is_set()

        asyncio.run(run())
        assert no_cert.connect_failures >= 1 and no_cert.stats.received == 0


def test_pipeline_over_tls_bit_exact(tls_broker, monkeypatch):
    """Sender -> TLS + password -> receiver: every sample arrives, bit-exact, none concealed."""
    monkeypatch.setenv("NL_TEST_MQTT_PASSWORD", PASSWORD)
    fs = 2000.0
    x = synthetic_recording(int(1.0 * fs), 8, fs, seed=7)
    cfg = _tls_cfg(tls_broker, "nltest/tlspipe", username=USER, password_env="NL_TEST_MQTT_PASSWORD")
    mem = MemorySink()

    async def run():
        receiver = Receiver(make_receiver_transport(cfg), lambda h: [mem])
        sender = Sender([StreamSpec(ReplaySource(Recording(x, fs, [], "nl-tls", "EEG")), 1, LADDER, frame_ms=5.0)],
                        make_sender_transport(cfg))
        async with asyncio.TaskGroup() as tg:
            rx = tg.create_task(receiver.run())
            await asyncio.wait_for(receiver.transport.connected.wait(), 5)  # type: ignore[attr-defined]
            await sender.run()  # ends with the finite replay (flush + end-of-stream frame)
            await asyncio.wait_for(receiver.ended_event.wait(), 5)
            receiver.stop()
            await rx
        return receiver

    receiver = asyncio.run(run())
    assert np.array_equal(mem.data(), x)
    st = receiver.streams[1].stats
    assert st.frames_lost == 0 and st.samples_concealed == 0 and receiver.bad_messages == 0


# -- configuration ----------------------------------------------------------------------------------

def test_tls_and_password_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="transport.ca_file.*without transport.tls"):
        MqttSender(ca_file="ca.crt")
    with pytest.raises(ConfigError, match="transport.ca_file.*file not found"):
        MqttSender(tls=True, ca_file=str(tmp_path / "missing.crt"))
    with pytest.raises(ConfigError, match="transport.key_file.*without transport.cert_file"):
        MqttSender(tls=True, key_file=str(tmp_path / "k"))
    with pytest.raises(ConfigError, match="transport.tls"):
        MqttSender(tls="yes")
    with pytest.raises(ConfigError, match="transport.password_env.*conflicts with transport.password"):
        MqttSender(username="u", password="p", password_env="X")
    with pytest.raises(ConfigError, match="transport.password_env.*NL_SURELY_UNSET.*not set"):
        MqttSender(username="u", password_env="NL_SURELY_UNSET")
    with pytest.raises(ConfigError, match="transport.password_file.*without transport.username"):
        MqttSender(password_file=str(tmp_path))
    with pytest.raises(ConfigError, match="transport.password_file.*file not found"):
        MqttSender(username="u", password_file=str(tmp_path / "nope"))
    (tmp_path / "pw").write_text("s3cret\n")
    assert resolve_password("u", None, None, str(tmp_path / "pw")) == "s3cret"
    assert resolve_password("u", None, "PW", None, environ={"PW": "from-env"}) == "from-env"


def test_off_loopback_rule_counts_tls_with_auth():
    base = {"kind": "mqtt", "host": "10.1.2.3", "port": 8883}
    secured = {**base, "tls": True, "username": "u", "password_env": "PW"}
    assert link_secured(secured)
    assert link_secured({**base, "tls": True, "cert_file": "c.crt"})
    assert not link_secured({**base, "tls": True})                       # TLS without authentication
    assert not link_secured({**base, "username": "u", "password": "p"})   # credentials in the clear
    assert not link_secured({**secured, "tls_insecure": True})            # server identity not checked
    require_mqtt_security(secured, {})                                    # accepted
    require_mqtt_security(base, {"keys_file": "k.toml"})                  # frame encryption alone still counts
    require_mqtt_security({**base, "host": "127.0.0.1"}, {})              # loopback
    with pytest.raises(ConfigError, match="transport.tls = true"):
        require_mqtt_security(base, {})
    with pytest.raises(ConfigError, match="security.insecure"):
        require_mqtt_security(base, {"insecure": "yes"})


def test_daemon_refuses_plain_mqtt_off_loopback():
    from neurolink.daemon import _security

    with pytest.raises(ConfigError, match="transport.tls"):
        _security({"security": {}}, {"kind": "mqtt", "host": "192.0.2.1"}, "receiver")
    assert _security({"security": {}}, {"kind": "mqtt", "host": "192.0.2.1", "tls": True, "username": "u",
                                        "password_file": "/x"}, "receiver") is None
