import pytest

from neurolink.config import load_receiver_config, load_sender_config, validate_receiver, validate_sender
from neurolink.errors import ConfigError

STREAM = {"source": {"kind": "synthetic", "channels": 4, "rate": 1000.0}}


def test_example_configs_load():
    s = load_sender_config("configs/sender.toml")
    assert s["stream"][0]["frame_ms"] == 1.0 and s["transport"]["kind"] == "zmq"
    r = load_receiver_config("configs/receiver.toml")
    assert r["receiver"]["conceal"] == "hold"


@pytest.mark.parametrize("raw, key", [
    ({"stream": []}, "stream"),
    ({"stream": [STREAM], "sender": {"control_interval_s": -1}}, "sender.control_interval_s"),
    ({"stream": [STREAM], "sender": {"contrl_interval_s": 1}}, "sender.contrl_interval_s"),
    ({"stream": [STREAM], "transport": {"kind": "carrier-pigeon"}}, "transport.kind"),
    ({"stream": [{"source": {"kind": "lsl"}}]}, "stream[0].source"),
    ({"stream": [{"source": {"kind": "tape"}}]}, "stream[0].source.kind"),
    ({"stream": [STREAM, dict(STREAM, id=1)]}, "stream[1].id"),
    ({"stream": [dict(STREAM, frame_ms="1")]}, "stream[0].frame_ms"),
    ({"stream": [STREAM], "bogus": {}}, "bogus"),
])
def test_sender_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError) as ei:
        validate_sender(raw, "test.toml")
    assert f"'{key}'" in str(ei.value) and "test.toml" in str(ei.value)


@pytest.mark.parametrize("raw, key", [
    ({"receiver": {"conceal": "guess"}}, "receiver.conceal"),
    ({"outlet": {"enabled": "yes"}}, "outlet.enabled"),
    ({"metrics": {"prometheus_port": 70000}}, "metrics.prometheus_port"),
])
def test_receiver_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_receiver(raw)


def test_bad_toml_file(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[sender\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_sender_config(p)
    with pytest.raises(ConfigError, match="file not found"):
        load_sender_config(tmp_path / "missing.toml")


def test_non_loopback_without_keys_refuses_to_start():
    import asyncio

    from neurolink.daemon import run_receiver

    cfg = validate_receiver({"transport": {"kind": "zmq", "data": "tcp://192.0.2.10:5556", "feedback": "tcp://192.0.2.10:5557"}})
    with pytest.raises(ConfigError, match="keys generate"):
        asyncio.run(run_receiver(cfg))


def test_unknown_transport_key_is_config_error():
    from neurolink.transports import make_sender_transport

    with pytest.raises(ConfigError, match="transport"):
        make_sender_transport({"kind": "zmq", "dta": "tcp://127.0.0.1:1"})
