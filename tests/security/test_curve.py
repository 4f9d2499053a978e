"""ZeroMQ CURVE with a ZAP allow-list on real sockets: only known client keys receive data."""

from __future__ import annotations

import asyncio

import pytest

from neurolink.errors import ConfigError
from neurolink.netutil import free_port
from neurolink.security.curve import apply_curve, require_security
from neurolink.security.keys import authorize_client, write_curve_keypair
from neurolink.transports.zmq import ZmqReceiver, ZmqSender


@pytest.fixture
def keys(tmp_path):
    spub, ssec = write_curve_keypair(tmp_path, "server")
    cpub, csec = write_curve_keypair(tmp_path, "client")
    _fpub, fsec = write_curve_keypair(tmp_path / "other", "foreign")
    allowed = authorize_client(cpub, tmp_path / "allowed").parent
    return {
        "server": {"secret_key": str(ssec), "authorized_clients": str(allowed)},
        "client": {"secret_key": str(csec), "server_key": str(spub)},
        "foreign": {"secret_key": str(fsec), "server_key": str(spub)},
    }


async def _recv_all(rx: ZmqReceiver, seconds: float) -> list[bytes]:
    got: list[bytes] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                got.append(await rx.recv())
    except TimeoutError:
        pass
    return got


async def _scenario(keys) -> dict[str, list[bytes]]:
    pd, pf = free_port(), free_port()
    eps = dict(data=f"tcp://127.0.0.1:{pd}", feedback=f"tcp://127.0.0.1:{pf}")
    tx = ZmqSender(**eps, curve=keys["server"])
    rxs = {"client": ZmqReceiver(**eps, curve=keys["client"]), "foreign": ZmqReceiver(**eps, curve=keys["foreign"]),
           "plain": ZmqReceiver(**eps)}
    async with tx:
        for r in rxs.values():
            await r.start()
        try:
            async def pump():
                for i in range(60):
                    await tx.send(b"secret-%d" % i)
                    await asyncio.sleep(0.02)
            tasks = {k: asyncio.create_task(_recv_all(r, 1.6)) for k, r in rxs.items()}
            await pump()
            for r in rxs.values():
                await r.send_feedback(b"fb")
            fb = await _recv_all_fb(tx, 0.5)
            out = {k: await t for k, t in tasks.items()}
            out["feedback"] = fb
        finally:
            for r in rxs.values():
                await r.close()
    return out


async def _recv_all_fb(tx: ZmqSender, seconds: float) -> list[bytes]:
    got: list[bytes] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                got.append(await tx.recv_feedback())
    except TimeoutError:
        pass
    return got


def test_only_authorized_client_receives(keys):
    out = asyncio.run(_scenario(keys))
    assert len(out["client"]) >= 20 and all(m.startswith(b"secret-") for m in out["client"])
    assert out["foreign"] == [] and out["plain"] == []  # no handshake: nothing delivered
    assert out["feedback"] == [b"fb"]  # only the authorized client's feedback reaches the sender


def test_curve_config_errors(keys, tmp_path):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUB)
    try:
        with pytest.raises(ConfigError, match="secret_key"):
            apply_curve(s, {"server_key": "x"}, server=False)
        with pytest.raises(ConfigError, match="authorized_clients"):
            apply_curve(s, {"secret_key": keys["server"]["secret_key"]}, server=True)
        (tmp_path / "empty").mkdir()
        with pytest.raises(ConfigError, match="no \\*.key"):
            apply_curve(s, {"secret_key": keys["server"]["secret_key"], "authorized_clients": str(tmp_path / "empty")}, server=True)
        with pytest.raises(ConfigError, match="secret key|no secret"):
            apply_curve(s, {"secret_key": keys["client"]["server_key"], "server_key": keys["client"]["server_key"]}, server=False)
        with pytest.raises(ConfigError, match="unknown key"):
            apply_curve(s, {"secret": 1}, server=False)
    finally:
        s.close(0)
        ctx.term()


def test_require_security():
    require_security("tcp://127.0.0.1:5556", None)
    require_security("ipc:///tmp/x", {})
    with pytest.raises(ConfigError, match="neurolink keys generate"):
        require_security("tcp://10.1.2.3:5556", {})
    with pytest.raises(ConfigError, match="neurolink keys generate"):
        require_security("tcp://0.0.0.0:5556", {"insecure": False})
    require_security("tcp://10.1.2.3:5556", {"insecure": True})
    require_security("tcp://10.1.2.3:5556", {"keys_file": "k.toml"})
    with pytest.raises(ConfigError, match="insecure"):
        require_security("tcp://10.1.2.3:5556", {"insecure": "yes"})
