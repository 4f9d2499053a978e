"""``neurolink keys ...``: make and rotate key material (wired into the main CLI by the lead)."""

from __future__ import annotations

import argparse
from pathlib import Path

from neurolink.errors import NeurolinkError
from neurolink.security.keys import (
    Keyring,
    authorize_client,
    generate_key,
    rotate_keyring,
    write_curve_keypair,
    write_keyring,
)


def _generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    kfile = out / "frame_keys.toml"
    if kfile.exists() and not args.force:
        print(f"error: {kfile} exists (use --force to overwrite, or `neurolink keys rotate --keys {kfile}`)")
        return 1
    write_keyring(kfile, Keyring({args.key_id: generate_key()}, args.key_id))
    spub, ssec = write_curve_keypair(out, "server")
    cpub, csec = write_curve_keypair(out, "client")
    allowed = authorize_client(cpub, out / "authorized_clients")
    print(f"frame keys    {kfile}  (secret, same file on sender and receiver)")
    print(f"CURVE server  {spub}  {ssec}")
    print(f"CURVE client  {cpub}  {csec}")
    print(f"allowed       {allowed.parent}/  (copy more client *.key files here to admit them)")
    print(f"\nsender.toml:    [security] keys_file = \"{kfile}\"")
    print(f"                [transport.curve] secret_key = \"{ssec}\", authorized_clients = \"{allowed.parent}\"")
    print(f"receiver.toml:  [security] keys_file = \"{kfile}\"")
    print(f"                [transport.curve] secret_key = \"{csec}\", server_key = \"{spub}\"")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    new = rotate_keyring(args.keys)
    print(f"{args.keys}: key id {new} is now active; older ids still open (remove them once every sender has switched)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="neurolink keys", description="Generate and rotate neurolink key material.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="frame-encryption keyring + CURVE server/client certificates")
    g.add_argument("--out", required=True, help="directory to write keys into")
    g.add_argument("--key-id", type=int, default=1)
    g.add_argument("--force", action="store_true")
    r = sub.add_parser("rotate", help="add a new active frame key to a keyring file")
    r.add_argument("--keys", required=True, help="keyring file (frame_keys.toml)")
    args = ap.parse_args(argv)
    try:
        return _generate(args) if args.cmd == "generate" else _rotate(args)
    except (NeurolinkError, OSError) as exc:
        print(f"error: {exc}")
        return 1
