"""One side of the latency benchmark in its own process, so its CPU time can be read on its own.

``python -m neurolink.bench._latency_worker sender   --transport JSON --source-id SID --samples N --out F``
``python -m neurolink.bench._latency_worker receiver --transport JSON --out F``

The sender reads the LSL source with ``source_id`` SID and stops (flushing, end-of-stream) after N
samples; the receiver republishes on LSL (source_id ``SID@neurolink``) until the end-of-stream frame.
Both write their counters as JSON to ``--out`` and exit; SIGTERM/SIGINT stop them cleanly too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time

from neurolink.transports import make_receiver_transport, make_sender_transport


def _cipher(args: argparse.Namespace, role: str):
    """End-to-end frame encryption when the bench passes a keyring (the encrypted runs)."""
    if not args.keys:
        return None
    from neurolink.security import cipher_from_config

    return cipher_from_config({"keys_file": args.keys}, role=role)


async def _sender(args: argparse.Namespace) -> dict:
    from neurolink.codecs import load_ladder
    from neurolink.sender import Sender, StreamSpec
    from neurolink.sources.lsl_inlet import LSLSource

    ladder = load_ladder()
    source = LSLSource(source_id=args.source_id, resolve_timeout=args.timeout)
    spec = StreamSpec(source, 1, ladder,
                      controller={"id": "fixed", "level": 0}, queue_frames=args.queue_frames)
    reliable = None
    if args.archive:  # the reliable archive path beside the live one, as the daemon builds it
        from neurolink.reliable.sender import ReliableSender

        reliable = ReliableSender(f"{args.archive}/spool", background=not args.archive_inline)
    sender = Sender([spec], make_sender_transport(json.loads(args.transport)), sealer=_cipher(args, "sender"),
                    reliable=reliable)
    _on_signals(sender.stop)
    deadline = time.monotonic() + args.timeout

    async def watch() -> None:
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            st = sender.streams.get(1)
            if st is not None:
                if st.stats.samples_in >= args.samples:
                    break
                if st.stats.samples_in != last:
                    last, since = st.stats.samples_in, time.monotonic()
                # overloaded: the source queue dropped chunks (counted), so the total is never reached
                elif source.samples_in >= args.samples and time.monotonic() - since > 1.0:
                    break
            await asyncio.sleep(0.02)
        sender.stop()

    w = asyncio.create_task(watch())
    await sender.run()
    w.cancel()
    out = sender.summary().get(1, {})
    st = sender.streams.get(1)
    if st is not None:
        out["frames_dropped_transport"] = st.stats.frames_dropped_transport
        out["wire_bytes"] = st.stats.wire_bytes
        out["raw_bytes"] = st.stats.raw_bytes
        out["source_samples_in"] = spec.source.samples_in  # type: ignore[attr-defined]
    out["transport"] = sender.transport.stats.as_dict()
    return out


async def _receiver(args: argparse.Namespace) -> dict:
    from neurolink.receiver import Receiver
    from neurolink.sinks.lsl_outlet import LSLOutletSink

    reliable = None
    if args.archive:
        from neurolink.reliable.receiver import ReliableReceiver
        from neurolink.sinks.archive import ArchiveSink

        reliable = ReliableReceiver(lambda h: ArchiveSink(f"{args.archive}/archive.zarr", chunk_s=1.0),
                                    background=not args.archive_inline)
    receiver = Receiver(make_receiver_transport(json.loads(args.transport)), lambda h: [LSLOutletSink()],
                        opener=_cipher(args, "receiver"), reliable=reliable)
    _on_signals(receiver.stop)

    async def watch() -> None:
        try:
            await asyncio.wait_for(receiver.ended_event.wait(), args.timeout)
            if reliable is not None:  # and the archive copy (so the sender's drain gets its acks)
                end = time.monotonic() + 30
                while not (reliable.streams and all(st.ended for st in reliable.streams.values())) and time.monotonic() < end:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # let liblsl hand the last chunk to the consumer
        except TimeoutError:
            logging.getLogger(__name__).warning("receiver: no end-of-stream within %.0f s", args.timeout)
        receiver.stop()

    w = asyncio.create_task(watch())
    await receiver.run()
    w.cancel()
    out = receiver.summary().get(1, {})
    st = receiver.streams.get(1)
    if st is not None:
        out.update(frames_ok=st.stats.frames_ok, frames_lost=st.stats.frames_lost,
                   frames_undecodable=st.stats.frames_undecodable, samples_out=st.stats.samples_out,
                   samples_concealed=st.stats.samples_concealed)
    out["transport"] = receiver.transport.stats.as_dict()
    out["bad_messages"] = receiver.bad_messages
    return out


def _prewarm() -> None:
    """Load the level-0 codec's compiled kernels now, not on the first live frame (a ~1 s stall)."""
    import numpy as np

    from neurolink.codecs import get_codec, load_ladder

    x = np.random.default_rng(0).integers(-500, 500, (30, 4)).astype(np.int16)
    enc, dec = get_codec(load_ladder()[0]), get_codec(load_ladder()[0])
    for _ in range(3):
        dec.decode(enc.encode(x))


def _on_signals(stop) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neurolink.bench._latency_worker")
    p.add_argument("role", choices=["sender", "receiver"])
    p.add_argument("--transport", required=True, help="transport config as JSON")
    p.add_argument("--source-id", default="")
    p.add_argument("--samples", type=int, default=0)
    p.add_argument("--queue-frames", type=int, default=2000)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--out", required=True)
    p.add_argument("--keys", default="", help="frame keyring (TOML): run with end-to-end encryption")
    p.add_argument("--archive", default="", help="folder: archive losslessly on the reliable path beside the live one")
    p.add_argument("--archive-inline", action="store_true",
                   help="code archive blocks on the event loop (the pre-background behaviour, for comparison)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"[{args.role}] %(levelname)s %(name)s: %(message)s")
    _prewarm()
    result = asyncio.run(_sender(args) if args.role == "sender" else _receiver(args))
    with open(args.out, "w") as f:
        json.dump(result, f, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
