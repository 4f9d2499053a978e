"""nl-float parameter sets: keyframes leave out unchanged per-channel parameters and name them by signature
(as H.264 sends its parameter sets); every ``param_interval``-th keyframe, a change, a reset or a requested
keyframe carries them. A decoder without the named set raises MissingReferenceError (never decodes with
stale parameters), including after four parameter changes that wrap the 2-bit epoch."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from neurolink.codecs import get_codec
from neurolink.codecs.float_lossless import EPOCH_SHIFT, F_INT, F_PARAMS, F_PREF, NlFloat
from neurolink.errors import CodecError, MissingReferenceError
from neurolink.receiver import COUNTER_SAFE_GAP

CFG = {"id": "nl-float", "keyframe_interval": 20}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def _exact(y: np.ndarray, x: np.ndarray) -> bool:
    return y.dtype == x.dtype and y.shape == x.shape and np.array_equal(_bits(y), _bits(x))


def _carries(b: bytes) -> bool:
    return bool(b[0] & F_PARAMS)


def _names(b: bytes) -> bool:
    """A keyframe that names its parameter set (no parameters)."""
    return (b[0] & (F_PREF | F_INT)) == (F_PREF | F_INT) and not b[0] & F_PARAMS


def _counts(n: int, ch: int, seed: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).integers(-20, 21, (n, ch)), axis=0)


def _frames(x: np.ndarray, frame: int, cfg: dict) -> list[bytes]:
    enc = get_codec(cfg)
    return [enc.encode(x[i : i + frame]) for i in range(0, x.shape[0], frame)]


def test_param_sets_exact_and_smaller():
    """One-sample frames (ECoG at 1 kHz): bit-exact; every 10th keyframe carries the parameters (the
    others name them); the stream is smaller than with parameters in every keyframe, which
    ``param_interval=1`` still writes."""
    x = (_counts(3000, 24, 1) * 0.195).astype(np.float32)
    blobs = _frames(x, 1, {"id": "nl-float"})
    dec = get_codec({"id": "nl-float"})
    for i, b in enumerate(blobs):
        assert _exact(dec.decode(b), x[i : i + 1]), f"frame {i}"
    carry = [i for i, b in enumerate(blobs) if _carries(b) and b[0] & F_INT]
    named = [i for i, b in enumerate(blobs) if _names(b)]
    assert len(named) >= 15 and len(carry) >= 2
    keys = sorted(carry + named)
    runs = np.diff([keys.index(i) for i in carry])  # keyframes from one carrying keyframe to the next
    assert runs.max() <= 10
    old = _frames(x, 1, {"id": "nl-float", "param_interval": 1})
    assert not any(_names(b) for b in old)
    assert all(_carries(b) for b in old if NlFloat.is_keyframe(b) or b[0] & F_PREF)
    saved = sum(map(len, old)) - sum(map(len, blobs))
    assert saved >= 24 * 16 * (len(named) - 1)  # nearly 16 bytes a channel per keyframe that names its set


def test_late_joiner_waits_for_the_parameters_then_exact():
    """A decoder joining mid-stream gets MissingReferenceError (never a wrong frame) until a keyframe with
    the parameters, then every frame exact; the wait is at most ``param_interval`` keyframes."""
    x = (_counts(3000, 8, 2) * 0.5).astype(np.float32)
    cfg = {"id": "nl-float", "keyframe_interval": 25, "param_interval": 4}
    blobs = _frames(x, 1, cfg)
    for j in (700, 1013, 1999, 2400):
        dec = get_codec(cfg)
        i = j
        while True:
            try:
                y = dec.decode(blobs[i])
            except MissingReferenceError:
                i += 1
                continue
            break
        assert _carries(blobs[i]) and i - j <= 4 * 25, (j, i)  # the first decodable frame carries the set
        assert _exact(y, x[i : i + 1])
        assert any(_names(blobs[k]) for k in range(j, i)) or i - j < 25 * 3  # waited through named keyframes
        for k in range(i + 1, min(i + 300, len(blobs))):
            assert _exact(dec.decode(blobs[k]), x[k : k + 1])


def test_decoder_reset_keeps_the_set_for_keyframes_naming_it():
    """The receiver resets its decoders after a long gap: predicted frames then wait for a keyframe, and
    the next keyframe naming the held set decodes (its signature matches), exactly; one naming another
    set (the parameters changed meanwhile) is refused."""
    x = (_counts(3000, 8, 9) * 0.195).astype(np.float32)
    blobs = _frames(x, 1, {"id": "nl-float"})
    named = [i for i, b in enumerate(blobs) if _names(b)]
    dec = get_codec({"id": "nl-float"})
    for i in range(named[3] - 30):
        dec.decode(blobs[i])
    dec.reset()
    for i in range(named[3] - 10, named[3]):  # (a gap of 20 frames, then predicted frames)
        with pytest.raises(MissingReferenceError, match="reset"):
            dec.decode(blobs[i])
    for i in range(named[3], named[3] + 300):
        assert _exact(dec.decode(blobs[i]), x[i : i + 1])
    other = get_codec({"id": "nl-float"})  # a set from another stream (other scales): refused
    y = (_counts(3000, 8, 9) * 0.5).astype(np.float32)
    for b in _frames(y, 1, {"id": "nl-float"})[: named[3]]:
        other.decode(b)
    other.reset()
    with pytest.raises(MissingReferenceError, match="parameter set"):
        other.decode(blobs[named[3]])


def _gain_stream(gains: list[float], rows: int = 256, ch: int = 3, seed: int = 3) -> np.ndarray:
    """Counts x a gain that changes every 4 frames of ``rows`` rows (a refit, with keyframe_interval 1)."""
    q = _counts(rows * 4 * len(gains), ch, seed)
    g = np.repeat(np.asarray(gains), rows * 4)[:, None]
    return (q * g).astype(np.float32)


def test_missed_parameter_change_is_detected():
    """A decoder that loses the keyframe that changes the parameters raises MissingReferenceError on the
    keyframes naming the new set (and the frames between) until one carries them; never a wrong frame."""
    q = _counts(6000, 4, 4)
    x = (np.concatenate([q[:1500] * 0.195, q[1500:] * 0.05])).astype(np.float32)
    cfg = {**CFG, "param_interval": 3}
    blobs = _frames(x, 15, cfg)
    epochs = [b[0] >> EPOCH_SHIFT for b in blobs]
    change = next(i for i in range(110, len(blobs)) if epochs[i] != epochs[i - 1])
    assert _carries(blobs[change])
    dec = get_codec(cfg)
    for i in range(change):
        dec.decode(blobs[i])
    errors, named = 0, 0
    i = change + 1  # the change is lost
    while True:
        try:
            y = dec.decode(blobs[i])
        except MissingReferenceError:
            errors += 1
            named += _names(blobs[i])
            i += 1
            continue
        assert _carries(blobs[i]) and _exact(y, x[15 * i : 15 * i + 15])
        break
    assert errors and named, "a keyframe naming the new set was refused"


def test_four_changes_while_away_do_not_alias():
    """The 2-bit epoch wraps after four parameter changes: a decoder that missed exactly four still
    refuses the next keyframe naming the new set (its signature differs)."""
    x = _gain_stream([0.195, 0.1, 0.5, 0.25, 0.05, 0.3, 0.195, 0.1])
    cfg = {"id": "nl-float", "keyframe_interval": 1, "param_interval": 100}
    blobs = _frames(x, 256, cfg)
    epochs = [b[0] >> EPOCH_SHIFT for b in blobs]
    changes = [i for i in range(1, len(blobs)) if epochs[i] != epochs[i - 1]]
    assert len(changes) >= 6
    # hold the set of just before changes[1] (after the first fit), miss four changes
    start = changes[1] - 1
    named = next(i for i in range(changes[4] + 1, len(blobs)) if _names(blobs[i]))
    assert named < changes[5] and epochs[named] == epochs[start]  # the epoch alone would alias
    dec = get_codec(cfg)
    for i in range(start + 1):
        assert _exact(dec.decode(blobs[i]), x[256 * i : 256 * i + 256])
    with pytest.raises(MissingReferenceError, match="parameter set"):
        dec.decode(blobs[named])
    with pytest.raises(MissingReferenceError):  # and the stale set is gone
        dec.decode(blobs[named + 1])


def test_named_set_decodes_after_a_reversed_change():
    """A, B, A (the parameters change and change back): the set a decoder holds is the one the keyframe
    names (signatures depend on the parameters alone), so it decodes, exactly, though it missed two
    epochs. (The changes are forced here: refits rarely land on the very same bits.)"""
    x = _gain_stream([0.195] * 8, seed=8)
    cfg = {"id": "nl-float", "keyframe_interval": 1, "param_interval": 100}
    enc, dec = get_codec(cfg), get_codec(cfg)
    blobs = [enc.encode(x[i : i + 256]) for i in range(0, 1280, 256)]
    for b in blobs:
        dec.decode(b)
    a = (enc._mask.copy(), enc._scale.copy(), enc._offset.copy(), enc._q16)
    enc._pending = (a[0], a[1] * 2, a[2], a[3])  # B: half the counts, escapes where odd (still exact)
    blobs.append(enc.encode(x[1280:1536]))
    enc._pending = a
    blobs.append(enc.encode(x[1536:1792]))
    assert all(_carries(b) for b in blobs[-2:])
    for i in range(7, 12):
        blobs.append(enc.encode(x[256 * i : 256 * i + 256]))
    assert _names(blobs[7]) and blobs[7][0] >> EPOCH_SHIFT != blobs[4][0] >> EPOCH_SHIFT
    for i in range(7, 12):  # frames 5 and 6 (B, then A again) lost
        assert _exact(dec.decode(blobs[i]), x[256 * i : 256 * i + 256])


GAINS = [0.195, 0.1, 0.5, 0.25, 0.05]


class LossyLink(RuleBasedStateMachine):
    """A float stream (gains changing now and then, so parameters change) through a link that loses
    frames, with the receiver's rules: it resets its decoder after a gap of ``COUNTER_SAFE_GAP`` frames
    (beyond which the inner codecs' frame counters may wrap), replaces it after a bad payload, resets or
    replaces it now and then, and asks for keyframes; the sender resets (a level switch). Every frame
    that decodes is exact; a requested keyframe decodes on any decoder.

    The inner ``nl-lossless`` runs its v2 predicted frames here (6-bit counter across keyframes) or only
    keyframes (one keyframe a frame, v3): its v3 predicted frames check their index since the keyframe,
    which a loss of whole keyframe intervals can leave matching when the interval is short (< 16 frames),
    a limit of nl-lossless, not of the parameter sets tested here."""

    @initialize(seed=st.integers(0, 2**16), kf_rows=st.sampled_from([(1, 512), (1, 1024), (2, 256), (1, 512), (3, 256)]),
                pi=st.sampled_from([10, 3, 2, 1]))
    def setup(self, seed: int, kf_rows: tuple[int, int], pi: int) -> None:
        kf, self.rows = kf_rows  # 512 or 1024 rows: a refit every 2 frames or every frame
        self.rng = np.random.default_rng(seed)
        self.cfg = {"id": "nl-float", "keyframe_interval": kf, "param_interval": pi}
        self.enc, self.dec = get_codec(self.cfg), get_codec(self.cfg)
        self.q = np.zeros(3, np.int64)
        self.gain = 0.195
        self.requested = False
        self.gap = 0  # frames lost since the last delivered one

    def _next(self) -> np.ndarray:
        q = self.q + np.cumsum(self.rng.integers(-30, 31, (self.rows, 3)), axis=0)
        self.q = q[-1]
        return (q * self.gain).astype(np.float32)

    def _send(self, deliver: bool) -> None:
        x = self._next()
        b = self.enc.encode(x)
        requested, self.requested = self.requested, False
        if not deliver:
            self.gap += 1
            return
        if self.gap >= COUNTER_SAFE_GAP:
            self.dec.reset()
        self.gap = 0
        try:
            y = self.dec.decode(b)
        except MissingReferenceError:
            assert not requested, "a requested keyframe did not decode"
        except CodecError:  # the receiver drops a decoder that failed this way
            self.dec = get_codec(self.cfg)
            assert not requested
        else:
            assert _exact(y, x), "decoded a frame wrong"

    @rule(deliver=st.booleans(), n=st.integers(1, 6))
    def frames(self, deliver: bool, n: int) -> None:
        for _ in range(n):
            self._send(deliver)

    @rule(gain=st.sampled_from(GAINS))
    def gain_change(self, gain: float) -> None:
        self.gain = gain

    @rule(changes=st.sampled_from([4, 8, 1, 4, 3, 5]), start=st.integers(0, len(GAINS) - 1))
    def outage(self, changes: int, start: int) -> None:
        """In sync (a requested keyframe), then the link is down while the parameters change ``changes``
        times (four wrap the 2-bit epoch), then back at once: the next frames decode exactly or raise."""
        self.request_keyframe()
        self._send(True)
        seen, k, since = 0, start, 0
        for _ in range(80):
            if seen == changes:
                break
            if since == 0:
                self.gain = GAINS[k % len(GAINS)]
                k += 1
            epoch = self.enc._epoch
            self._send(False)
            since = (since + 1) % (2048 // self.rows)  # a new gain once a refit could see this one
            if self.enc._epoch != epoch:
                seen += 1
                since = 0
        for _ in range(3):
            self._send(True)

    @rule()
    def request_keyframe(self) -> None:
        self.enc.request_keyframe()
        self.requested = True

    @rule()
    def sender_reset(self) -> None:
        self.enc.reset()

    @rule(fresh=st.booleans())
    def receiver_reset(self, fresh: bool) -> None:
        if fresh:
            self.dec = get_codec(self.cfg)
        else:
            self.dec.reset()

    @invariant()
    def encoder_state_consistent(self) -> None:
        enc = self.enc
        if getattr(enc, "_shape", None) is not None:
            assert enc._keys_since_params < enc.param_interval


TestLossyLink = LossyLink.TestCase
TestLossyLink.settings = settings(max_examples=30, stateful_step_count=40, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])


# 40 frames of 8 rows x 3 channels from the encoder before parameter sets (keyframe_interval 8): parameters
# in every keyframe; raw-path keyframes, integer-path keyframes, escapes, an epoch change, a NaN
OLD_PAYLOADS = (
    "eNqdknlQEwcUxt+SxILaghQQ1EoALQERAlFS5EjAyiUIoiEGohxNuEQ5ihpoSxYROYUAIxKoyH2EFsNlgQpG1JFTKaItIhqnouKgKBaqiKTZ"
    "KOq0/cu3szuzv337vvd9uxzQxOGUgdRs9pro36wEF/EFBRqFUAiOUABzc1AzD0JhXTiEgxYIQSYDkQxiY528YBBCwQpoNBDpSvPzi0PIKZE0"
    "WgeCAsqXgARBADtwarAiYk/jWs5/VFqgyt0guTyAAvNMJjALYDUU2iZpCtIpIGMwgCGEfWhgScZM3HEKylcAusCzWCz5a6d8Oh+BRKWEeIlc"
    "DEUAU8k0T9TR5gIBU3Hu2OiWFeVm1A/ABJirhbd1t3uU2mlLLe8DYADIRAv8vrShRFO/5KIbwHUUdHs0XsxJ6Rz/CcyERALx5xKQhASUH++A"
    "w+Gw/n+bacJHGbhbVo42TkPBnFywAGyTbIeL4jqHQCiTCwlBP0Pv+6Bfj0agrFPEp2Y6gHoSBWKBlCjh87GB/HMAdMUqKB8HPstUiUuQvMAP"
    "VSqUgIP/Xa98xi7TsZwiXz+of54CZemCrnGqlqBPJm2ajWjpCJ1tpBPIB2+d+la+tkCAAp2GzecDX8IHCUqX8GV8GR4CXG08eQ/GKGL828Du"
    "Lt+4r4373a4CqKmRx9W/EEyc12jDeO6jCCGIRPK4+hZ4dV1D+zbq7IyOJK2HtphoQyY784rV0Aw6Ik9MXm9twXn5if0F/h9aOa4Ea/C6lh6m"
    "g3PLuRRKEAMwzaThTck8mW+uXGe3qZGNrgFv7BouiBBpTIujA10iEQPdHpEoZiIybDoBjBDqkDZ668rKYFi6HTbLFXCfHBkryuyc7qItbFoW"
    "TyoUClsV9yLpdPsbKn33HNXDgTIkkk7nq1RM5ucwuwdIl9MfTMZ0v0K1wEHZ3k05gnDWzTrvOfuXELOD6uHHVESacu5Qm7RVsM7IfsqCnXHT"
    "+HIRN8YOa998mBW8hXwzyfLxqZD8a9EHLC65ANb+9dpon9jbGkJ2xcPsL4eT7EZqpRjeYuzdTvK9Gsusvr7DfHqoru4MimFHtJWxy4BGtRbn"
    "9JNPhzE62dUYdkp1eLqe38poEVJfWzReq+uLKv5Y1ylvXCsnpU3rJTv7r3ScYouH1+w1x392FlNycbvdrvcwf2/HnswDw/WBkb8F0zF3ruRn"
    "GoemIgdVRssIzqLD2rz0pbAKXJXVtwZ4TD5Rb7BJZHvzaqdaLdoGkMWlx1/MErBhbsblaZwzLvt4nKKyyxPfTLjkSTDs7ksu45g4rB9od9HI"
    "YF14bHeDjuFtg0xXVbtuQ5uRR2KnCq0Kw/1gIJf43EP/mYnJK55n43hIVX2m2P1QmraS2iKFiOLysUkIFEkkpKw7cuuOiQor5lFyUHCOg+WG"
    "baGAWd4+SAhi2BSz67UGA7x6s3u9QtKI2JpeBskmnSoDVx/mmq105PuFicrpiiR2VKZqMCqHeoeP+cQ1/0jZr5WC4N8lsVP//KHF/rkpzZOV"
    "f6fqNW24kB2OYYbIOureHXV7LqlIeIXFjVadVATk/UONOieLZVWqGjY11FXHMuz1xDCT7KIptHc1stbzvmp684RLzppl3pD+v95nZk4KF7y/"
    "r/feV+UrzB95iZaHzj4PHxvVM/Pb9ConraE63QoQFUQTDiuzElb0Vq2uKWG2eXuNt/ZlrVXyx7APS39i2eudPeZPviD+qWYek/pHC4Z9nUyi"
    "WSWEHvW2sJqm0kt5gUtQDLN9aygn1Ee6XmR95VaVfXtwczVgeDc3Z6SEa8pdRCkVTHr6j55cJ9WFNGXNPTeGjJKo9X46hsXIdB3cj/xpqSEZ"
    "+RRF0TlVLfl7fqTWzp8bq9xNuxvu7faodn9JzpRsh8SPyqD4zfcn+R59eG7LvYO27p9ZC+bxhVYabbv+AagkiXs="
)


def _old_data() -> np.ndarray:
    q = np.cumsum(np.random.default_rng(2027).integers(-20, 21, (320, 3)), axis=0)
    x = (q * np.array([0.195, 0.1, 0.5])).astype(np.float32)
    x[300, 1] = np.nan
    return x


def test_payloads_of_the_earlier_format_decode():
    raw = zlib.decompress(base64.b64decode("".join(OLD_PAYLOADS)))
    blobs, pos = [], 0
    while pos < len(raw):
        n = int.from_bytes(raw[pos : pos + 2], "little")
        blobs.append(raw[pos + 2 : pos + 2 + n])
        pos += 2 + n
    x = _old_data()
    assert len(blobs) == 40 and not any(_names(b) for b in blobs)
    dec = get_codec({"id": "nl-float", "keyframe_interval": 8})
    for i, b in enumerate(blobs):
        assert _exact(dec.decode(b), x[8 * i : 8 * i + 8]), f"frame {i}"
    late = get_codec({"id": "nl-float"})  # joining at an integer-path keyframe with parameters
    k = next(i for i, b in enumerate(blobs) if i > 20 and _carries(b) and b[0] & F_INT)
    assert _exact(late.decode(blobs[k]), x[8 * k : 8 * k + 8])


def test_archive_blocks_always_carry_their_parameters():
    """The reliable path encodes every block with one nl-float (inner nl-lossless archive mode): each block
    decodes alone, on a fresh decoder."""
    from neurolink.sinks.archive import archive_codec_for

    cfg = archive_codec_for("float32")
    x = (_counts(4000, 5, 5) * 0.195).astype(np.float32)
    enc = get_codec(cfg)
    blocks = [enc.encode(x[i : i + 250]) for i in range(0, 4000, 250)]
    assert all(NlFloat.is_keyframe(b) for b in blocks)
    for i, b in enumerate(blocks):
        assert _exact(get_codec(cfg).decode(b), x[250 * i : 250 * i + 250])


def test_reset_and_requested_keyframes_carry_the_parameters():
    """A level switch (reset) and a receiver's keyframe request: the next frame decodes on a fresh decoder."""
    x = (_counts(3000, 6, 6) * 0.195).astype(np.float32)
    enc = get_codec({"id": "nl-float"})
    for i in range(2000):
        enc.encode(x[i : i + 1])
    for act, i in ((enc.reset, 2000), (enc.request_keyframe, 2100)):
        for k in range(2001, i):
            enc.encode(x[k : k + 1])
        act()
        b = enc.encode(x[i : i + 1])
        assert _carries(b) and _exact(get_codec({"id": "nl-float"}).decode(b), x[i : i + 1])


@pytest.mark.parametrize("bad", [0, -1, 10001, 2.0, True, "10", None])
def test_param_interval_is_validated(bad):
    with pytest.raises(CodecError, match="param_interval"):
        get_codec({"id": "nl-float", "param_interval": bad})


def test_param_interval_in_the_config():
    c = get_codec({"id": "nl-float", "param_interval": 3})
    assert c.get_config()["param_interval"] == 3 and get_codec(c.get_config()) == c
    assert get_codec({"id": "nl-float"}).get_config()["param_interval"] == 10
