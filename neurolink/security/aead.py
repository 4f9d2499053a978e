"""End-to-end authenticated encryption of wire messages (AES-256-GCM or ChaCha20-Poly1305), see docs/security.md.

Why a message-level layer on top of (or instead of) transport security: the samples stay sealed through
brokers (MQTT), relays and archives, and the same code protects every transport. A sealed frame is still
a valid wire-v1 frame (``FLAG_ENCRYPTED`` set, payload = envelope), so relays can route and archive it
without keys; other messages keep their 6-byte prefix in the clear and seal the rest.

The envelope's version byte names the AEAD: AES-256-GCM where the CPU has AES instructions (about 3x
cheaper per 30 kB frame than ChaCha20-Poly1305 with AES-NI/VAES), ChaCha20-Poly1305 elsewhere (faster
without them, e.g. a Raspberry Pi 4). A receiver opens both, whatever it seals with.

Nonces never repeat: each ``FrameCipher`` draws a random 8-byte session salt, derives a per-session
subkey ``HKDF-SHA256(key, salt, info)`` and counts messages with a 64-bit counter per direction; the
direction (data: sender -> receiver, feedback: receiver -> sender) is part of the nonce, so the two ends
can share one key without ever colliding. Replays are rejected by a sliding window per session.
"""

from __future__ import annotations

import os
import platform
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from neurolink.errors import SecurityError, WireFormatError
from neurolink.wire import format as wire
from neurolink.wire.crc import crc32

#: envelope version byte = the AEAD algorithm (authenticated: it is part of the associated data)
ENV_CHACHA = 1  # ChaCha20-Poly1305 (the first version; its key derivation is unchanged)
ENV_AESGCM = 2  # AES-256-GCM
AEAD_NAMES = {"chacha20-poly1305": ENV_CHACHA, "aes-256-gcm": ENV_AESGCM}
#: per version: the primitive and the HKDF info prefix; each algorithm gets its own subkey (never one key
#: under two primitives)
_AEADS: dict[int, tuple[type, bytes]] = {ENV_CHACHA: (ChaCha20Poly1305, b"neurolink-e2e-v1"),
                                        ENV_AESGCM: (AESGCM, b"neurolink-e2e-aes256gcm")}
KEY_SIZE = 32
TAG_SIZE = 16
DIR_DATA = 0  # sender -> receiver: stream headers, frames, clock replies
DIR_FEEDBACK = 1  # receiver -> sender: feedback reports, clock probes
_ROLES = {None: (DIR_DATA, DIR_FEEDBACK), "sender": (DIR_FEEDBACK,), "receiver": (DIR_DATA,)}

# envelope header: version u8 | direction u8 | key_id u32 | session salt 8s | counter u64 | send time u32 (unix s)
_ENV = struct.Struct("<BBI8sQI")
ENVELOPE_HEADER_SIZE = _ENV.size  # 26
OVERHEAD = ENVELOPE_HEADER_SIZE + TAG_SIZE  # bytes added to every message
_PREFIX = 6
_CRC = struct.Struct("<I")
_NONCE = struct.Struct("<B3xQ")  # direction | 0x000000 | counter
_CLOCK_KIND_OFFSET = 10
#: a session draws a new salt (hence a new subkey, counters from 0) after this many messages or bytes sealed:
#: AES-GCM's confidentiality bound degrades with the data under one key; these are TLS 1.3's order of
#: magnitude (~2^24.5 full records, RFC 8446 5.5), about 4.6 h of 1 ms frames. Receivers see a new session.
REKEY_MESSAGES = 1 << 24
REKEY_BYTES = 1 << 36
#: opening a message of a session not seen yet costs a key derivation (~30 us of HKDF) BEFORE its tag can be
#: checked, so forged messages with fresh salts are the cheapest way to burn a receiver's CPU: new sessions are
#: admitted through a token bucket (this many per second, bursts up to ``max_sessions``). Legitimate peers start
#: a session when they (re)start, fork or rekey (every ~4.6 h): a handful per second even for hundreds of peers.
NEW_SESSIONS_PER_S = 64.0


def hardware_aes() -> bool:
    """Whether this CPU has AES instructions (x86 AES-NI, ARMv8 crypto extensions), where AES-GCM wins."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return "aes" in line.split(":", 1)[1].split()
    except OSError:
        pass
    # no /proc/cpuinfo (macOS, Windows): Apple silicon has them, and so has every x86-64 CPU since ~2011
    return platform.machine().lower() in ("arm64", "x86_64", "amd64")


def resolve_aead(name: str) -> int:
    """``"auto"`` (AES-256-GCM with AES instructions, else ChaCha20-Poly1305) or an explicit name -> version."""
    if name == "auto":
        return ENV_AESGCM if hardware_aes() else ENV_CHACHA
    try:
        return AEAD_NAMES[name]
    except KeyError:
        raise SecurityError(f"aead must be 'auto' or one of {sorted(AEAD_NAMES)}, got {name!r}") from None


def _direction(msg: bytes | memoryview) -> int:
    """Which way a plaintext message travels: fixed by its type, so both ends agree without a role."""
    mtype = msg[5]
    if mtype in (wire.MSG_FEEDBACK, wire.MSG_ACK):  # receiver -> sender
        return DIR_FEEDBACK
    if mtype == wire.MSG_CLOCK:
        if len(msg) <= _CLOCK_KIND_OFFSET:
            return -1
        # only replies (kind 1) travel with the data; probes, header and keyframe requests go back upstream
        return DIR_DATA if msg[_CLOCK_KIND_OFFSET] == 1 else DIR_FEEDBACK
    return DIR_DATA


class _ReplayWindow:
    """Highest counter seen plus a bitmap of the ``size`` counters below it (RFC 4303 style)."""

    __slots__ = ("size", "top", "bits", "last_seen")

    def __init__(self, size: int) -> None:
        self.size = size
        self.top = -1
        self.bits = 0
        self.last_seen = time.monotonic()

    def check(self, ctr: int) -> None:
        if ctr > self.top:
            return
        if self.top - ctr >= self.size:
            raise SecurityError(f"replayed or stale message: counter {ctr} is older than the replay window ({self.size})")
        if (self.bits >> (self.top - ctr)) & 1:
            raise SecurityError(f"replayed message: counter {ctr} already seen")

    def accept(self, ctr: int) -> None:
        if ctr > self.top:
            shift = ctr - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.top = ctr
        else:
            self.bits |= 1 << (self.top - ctr)
        self.last_seen = time.monotonic()


class FrameCipher:
    """Seal/open wire messages; one object per endpoint (sender or receiver), same class on both ends.

    ``key``/``key_id`` is the active sealing key; ``keyring`` adds keys accepted for opening (rotation:
    make the new key active on the sender, keep the old id in the receiver's keyring until it drains).
    ``role`` ("sender" / "receiver") restricts which direction :meth:`open` accepts; None accepts both.
    ``max_age_s`` optionally rejects messages whose authenticated send time is further than that from
    this host's clock (bounds replays of whole recorded sessions; needs synchronised clocks).
    ``aead`` picks the sealing algorithm (:func:`resolve_aead`); opening accepts every algorithm. A
    ``role="receiver"`` end answers (feedback, clock probes) in the algorithm its sender uses, and in
    ChaCha20-Poly1305 (version 1, which every release opens) before it has heard one, so upgrading a
    receiver never cuts off an older sender; upgrade receivers before senders.
    """

    def __init__(
        self,
        key: bytes,
        key_id: int,
        *,
        keyring: Mapping[int, bytes] | None = None,
        replay_window: int = 4096,
        max_sessions: int = 256,
        max_age_s: float | None = None,
        role: str | None = None,
        aead: str = "auto",
    ) -> None:
        if role not in _ROLES:
            raise SecurityError(f"role must be 'sender', 'receiver' or None, got {role!r}")
        if not 64 <= replay_window <= 1 << 20:
            raise SecurityError(f"replay_window must be in [64, 2**20], got {replay_window}")
        self._keys: dict[int, bytes] = {}
        for kid, k in (keyring or {}).items():
            self.add_key(kid, k)
        self.add_key(key_id, key)
        self.active_id = key_id
        self.replay_window = replay_window
        self.max_sessions = max_sessions
        self.max_age_s = max_age_s
        self._accept_dirs = _ROLES[role]
        self.version = resolve_aead(aead)  # the envelope version (= algorithm) this end seals with
        self._follow = role == "receiver"  # answers in the version of the data it opened (ENV_CHACHA until then)
        self._reply_version = ENV_CHACHA
        self.salt = os.urandom(8)
        self._counters = [0, 0]
        self._sealed_bytes = 0
        self._pid = os.getpid()  # a forked child must not reuse the parent's (salt, counter) pairs
        self._aead: OrderedDict[tuple[int, int, bytes], AESGCM | ChaCha20Poly1305] = OrderedDict()
        self.new_sessions_per_s = NEW_SESSIONS_PER_S
        self._new_tokens = float(max_sessions)  # token bucket of key derivations for unseen sessions (opening)
        self._new_at = time.monotonic()
        self.sessions_rate_limited = 0  # messages of unseen sessions refused by the bucket (counted, not opened)
        self._windows: OrderedDict[tuple[int, bytes, int], _ReplayWindow] = OrderedDict()
        self._lock = threading.Lock()  # counters must never be handed out twice, even across threads

    # -- keys --------------------------------------------------------------------------------------
    def add_key(self, key_id: int, key: bytes) -> None:
        """Accept ``key_id`` for opening (does not change the sealing key)."""
        if not isinstance(key_id, int) or not 0 <= key_id < 1 << 32:
            raise SecurityError(f"key id must be an int in [0, 2**32), got {key_id!r}")
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
            raise SecurityError(f"key {key_id} must be {KEY_SIZE} bytes, got {len(key) if isinstance(key, (bytes, bytearray)) else type(key).__name__}")
        key = bytes(key)
        if self._keys.get(key_id, key) != key and hasattr(self, "_aead"):  # new bytes under a known id: forget its
            with self._lock:  # cached subkeys, or live sessions would go on opening (and sealing) with the old key
                for k in [k for k in self._aead if k[1] == key_id]:
                    del self._aead[k]
        self._keys[key_id] = key

    def rotate(self, key_id: int, key: bytes | None = None) -> None:
        """Seal with ``key_id`` from now on (adding ``key`` first if given); old ids still open."""
        if key is not None:
            self.add_key(key_id, key)
        if key_id not in self._keys:
            raise SecurityError(f"cannot rotate to unknown key id {key_id}")
        self.active_id = key_id

    def remove_key(self, key_id: int) -> None:
        """Stop accepting ``key_id`` (after rotation has drained); the active key cannot be removed."""
        if key_id == self.active_id:
            raise SecurityError(f"key id {key_id} is the active sealing key; rotate first")
        self._keys.pop(key_id, None)
        for k in [k for k in self._aead if k[1] == key_id]:
            del self._aead[k]

    @property
    def key_ids(self) -> list[int]:
        return sorted(self._keys)

    @property
    def algorithm(self) -> str:
        """The AEAD this end seals with."""
        return next(n for n, v in AEAD_NAMES.items() if v == self.version)

    def _admit_new_session(self) -> None:
        """Spend one token of the new-session bucket (the caller holds the lock), or refuse the message."""
        now = time.monotonic()
        cap = float(max(self.max_sessions, 1))
        self._new_tokens = min(cap, self._new_tokens + (now - self._new_at) * self.new_sessions_per_s)
        self._new_at = now
        if self._new_tokens < 1.0:
            self.sessions_rate_limited += 1
            raise SecurityError(f"too many new sessions (over {self.new_sessions_per_s:g}/s): message of an unseen "
                                "session refused before key derivation (a flood of forged salts?)")
        self._new_tokens -= 1.0

    def _derive(self, version: int, key_id: int, salt: bytes) -> AESGCM | ChaCha20Poly1305:
        """The AEAD of (algorithm, key id, session salt): HKDF of the master key, not cached."""
        master = self._keys.get(key_id)
        if master is None:
            raise SecurityError(f"unknown key id {key_id} (known: {self.key_ids})")
        primitive, info = _AEADS[version]
        return primitive(HKDF(hashes.SHA256(), KEY_SIZE, salt, info + struct.pack("<I", key_id)).derive(master))

    def _remember(self, k: tuple[int, int, bytes], c: AESGCM | ChaCha20Poly1305) -> None:
        self._aead[k] = c
        if len(self._aead) > self.max_sessions + 4:
            self._aead.popitem(last=False)

    def _cipher(self, version: int, key_id: int, salt: bytes) -> AESGCM | ChaCha20Poly1305:
        """The AEAD of (algorithm, key id, session salt), derived once and cached (LRU)."""
        k = (version, key_id, salt)
        c = self._aead.get(k)
        if c is None:
            c = self._derive(version, key_id, salt)
            self._remember(k, c)
        else:
            self._aead.move_to_end(k)
        return c

    # -- seal / open -------------------------------------------------------------------------------
    def _new_session(self) -> None:
        """A fresh salt (so fresh subkeys) and counters from 0; the caller holds the lock."""
        self.salt = os.urandom(8)
        self._counters = [0, 0]
        self._sealed_bytes = 0
        self._pid = os.getpid()

    def _next(self, d: int, nbytes: int) -> tuple[bytes, bytes, AESGCM | ChaCha20Poly1305]:
        """The envelope header and nonce of the next message of direction ``d`` (its counter handed out once,
        never again) and the AEAD to seal it with: version, salt, counter and key are taken together, under the lock."""
        with self._lock:
            if self._pid != os.getpid() or self._counters[d] >= REKEY_MESSAGES or self._sealed_bytes >= REKEY_BYTES:
                self._new_session()
            ctr = self._counters[d]
            self._counters[d] = ctr + 1
            self._sealed_bytes += nbytes
            kid = self.active_id
            ver = self._reply_version if self._follow and d == DIR_FEEDBACK else self.version
            aead = self._cipher(ver, kid, self.salt)
            env = _ENV.pack(ver, d, kid, self.salt, ctr, int(time.time()) & 0xFFFFFFFF)
        return env, _NONCE.pack(d, ctr), aead

    def seal_frame(self, stream_id: int, seq: int, timestamp: float, n_samples: int, n_channels: int, dtype: str,
                   level: int, payload: bytes, flags: int = 0) -> bytes:
        """``seal(wire.pack_frame(...))`` in one step, byte for byte: no plaintext frame, CRC or re-parse.

        Why: the sender's hot path at 1024 channels (a ~30 kB payload per millisecond)."""
        if flags & wire.FLAG_ENCRYPTED:
            raise SecurityError("frame is already sealed (FLAG_ENCRYPTED set)")
        try:
            head = wire.pack_frame_header(stream_id, seq, timestamp, n_samples, n_channels, dtype, level,
                                          ENVELOPE_HEADER_SIZE + len(payload) + TAG_SIZE, flags | wire.FLAG_ENCRYPTED)
        except (WireFormatError, struct.error) as exc:
            raise SecurityError(f"cannot seal a malformed frame: {exc}") from None
        env, nonce, aead = self._next(DIR_DATA, len(payload))
        ad = head + env
        ct = aead.encrypt(nonce, payload, ad)
        return b"".join((ad, ct, _CRC.pack(crc32(ct, crc32(ad)))))

    def seal(self, msg: bytes) -> bytes:
        """Encrypt one plaintext wire message (frame payload or everything after the prefix)."""
        mv = memoryview(msg)
        try:
            mtype = wire.message_type(mv)
            hdr = wire.parse_frame_header(mv) if mtype == wire.MSG_FRAME else None
        except WireFormatError as exc:
            raise SecurityError(f"cannot seal a malformed message: {exc}") from None
        if hdr is not None and hdr.flags & wire.FLAG_ENCRYPTED:
            raise SecurityError("frame is already sealed (FLAG_ENCRYPTED set)")
        if mtype == wire.MSG_CLOCK and len(mv) <= _CLOCK_KIND_OFFSET:
            raise SecurityError("cannot seal a truncated clock message")
        d = _direction(mv)
        env, nonce, aead = self._next(d, len(mv))
        if hdr is not None:
            payload = mv[wire.FRAME_HEADER_SIZE:wire.FRAME_HEADER_SIZE + hdr.payload_len]
            sealed_len = ENVELOPE_HEADER_SIZE + hdr.payload_len + TAG_SIZE
            head = bytearray(mv[:wire.FRAME_HEADER_SIZE])
            struct.pack_into("<H", head, 6, hdr.flags | wire.FLAG_ENCRYPTED)
            struct.pack_into("<I", head, 36, sealed_len)
            ad = bytes(head) + env
            ct = aead.encrypt(nonce, payload, ad)
            return b"".join((ad, ct, _CRC.pack(crc32(ct, crc32(ad)))))
        prefix = bytes(mv[:_PREFIX])
        return prefix + env + aead.encrypt(nonce, mv[_PREFIX:], prefix + env)

    def open(self, msg: bytes) -> bytes:
        """Authenticate, replay-check and decrypt; returns the original wire message or raises SecurityError."""
        out = self._open(msg)
        if isinstance(out, bytes):
            return out
        hdr, ad_head, pt = out
        head = bytearray(ad_head)
        struct.pack_into("<H", head, 6, hdr.flags & ~wire.FLAG_ENCRYPTED)
        struct.pack_into("<I", head, 36, len(pt))
        plain = bytes(head) + pt
        return plain + _CRC.pack(crc32(plain))

    def open_parsed(self, msg: bytes) -> wire.Frame | bytes:
        """Like :meth:`open`, but a frame comes back parsed (:class:`wire.Frame`, plaintext header) instead of
        re-serialised: the receiver's hot path skips rebuilding the frame, its CRC and a second parse."""
        out = self._open(msg)
        if isinstance(out, bytes):
            return out
        h, _, pt = out
        return wire.Frame(wire.FrameHeader(h.stream_id, h.seq, h.timestamp, h.n_samples, h.n_channels, h.dtype, h.level,
                                           h.flags & ~wire.FLAG_ENCRYPTED, len(pt)), pt)

    def _open(self, msg: bytes) -> bytes | tuple[wire.FrameHeader, bytes, bytes]:
        """Authenticated plaintext: a whole message, or (sealed frame header, its 40 bytes, payload) for frames."""
        mv = memoryview(msg)
        try:
            mtype = wire.message_type(mv)
            if mtype == wire.MSG_FRAME:
                hdr = wire.parse_frame_header(mv)
                if not hdr.flags & wire.FLAG_ENCRYPTED:
                    raise SecurityError("unencrypted frame rejected (this endpoint requires encryption)")
                end = wire.FRAME_HEADER_SIZE + hdr.payload_len
                wire.check_crc(mv, end)  # ~1 us (ISA-L); the tag below is the real check, this keeps every bit checked
                ad_head = bytes(mv[:wire.FRAME_HEADER_SIZE])
                body = mv[wire.FRAME_HEADER_SIZE:end]
            else:
                hdr = None
                ad_head = bytes(mv[:_PREFIX])
                body = mv[_PREFIX:]
        except WireFormatError as exc:
            raise SecurityError(f"tampered or malformed sealed message: {exc}") from None
        if len(body) < OVERHEAD:
            raise SecurityError(f"truncated sealed message: {len(body)} bytes of envelope, need at least {OVERHEAD}")
        ver, d, kid, salt, ctr, sent = _ENV.unpack_from(body, 0)
        if ver not in _AEADS:
            raise SecurityError(f"unsupported envelope version {ver} (known: {sorted(_AEADS)})")
        if d not in self._accept_dirs:
            raise SecurityError(f"message from direction {d} not accepted by this endpoint (reflected?)")
        if self.max_age_s is not None and abs(time.time() - sent) > self.max_age_s:
            raise SecurityError(f"stale message: sent {time.time() - sent:.0f} s ago (max_age_s={self.max_age_s}), replayed or clocks out of sync")
        env = bytes(body[:ENVELOPE_HEADER_SIZE])
        wkey = (kid, salt, d)  # one counter space per session and direction, whatever the algorithm
        # check, decrypt and accept as one step: two threads opening the same message must not both pass
        with self._lock:
            win = self._windows.get(wkey)
            if win is not None:
                win.check(ctr)
            ckey = (ver, kid, salt)
            aead = self._aead.get(ckey)
            new = aead is None
            if aead is None:  # an unseen session: its subkey is cached only once a message of it authenticates,
                if kid not in self._keys:  # so forged salts can neither evict real sessions nor pile up
                    raise SecurityError(f"unknown key id {kid} (known: {self.key_ids})")
                self._admit_new_session()
                aead = self._derive(ver, kid, salt)
            try:
                pt = aead.decrypt(_NONCE.pack(d, ctr), body[ENVELOPE_HEADER_SIZE:], ad_head + env)
            except InvalidTag:
                raise SecurityError(f"tampered message or wrong key: authentication failed (key id {kid}, counter {ctr})") from None
            # authenticated: only now may the replay state (and the subkey cache) change
            if new:
                self._remember(ckey, aead)
            else:
                self._aead.move_to_end(ckey)
            if win is None:
                win = self._windows[wkey] = _ReplayWindow(self.replay_window)
                if len(self._windows) > self.max_sessions:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(wkey)
            win.accept(ctr)
            if self._follow and d == DIR_DATA:
                self._reply_version = ver  # answer the sender in its own algorithm
        if hdr is None:
            out = ad_head + pt
            if len(out) > 5 and _direction(out) != d:
                raise SecurityError(f"direction {d} does not match the sealed message's type")
            return out
        if d != DIR_DATA:
            raise SecurityError(f"direction {d} does not match a frame")
        return hdr, ad_head, pt


__all__ = ["FrameCipher", "OVERHEAD", "ENVELOPE_HEADER_SIZE", "DIR_DATA", "DIR_FEEDBACK", "KEY_SIZE", "AEAD_NAMES",
           "ENV_AESGCM", "ENV_CHACHA", "hardware_aes", "resolve_aead"]
