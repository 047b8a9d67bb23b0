#!/usr/bin/env python3
"""An independent C2SP tlog-tiles client, Python 3 standard library only.

Written from the published specifications (C2SP signed-note, tlog-checkpoint and tlog-tiles; RFC 6962
section 2.1 for the tree; RFC 8032 for Ed25519), not from the node's code, so that the node's log is
checked by a reader that shares none of its assumptions.

    tlog_client.py --log http://HOST:PORT/log --key NAME:BASE64 [--checkpoint FILE]
    tlog_client.py --self-test RFC8032_VECTORS

With --checkpoint the client is pinned to that checkpoint text (one fetched earlier); otherwise it
fetches <log>/checkpoint. It then:
  1. verifies the checkpoint's Ed25519 signature by the log key (a Nix public key, name:base64; the
     key name is the note's signer name and must be the checkpoint's origin);
  2. fetches every hash tile and entry bundle that a tree of the checkpoint's size consists of, at
     exactly the widths that size gives them (it never falls back to a wider or full tile: the spec
     obliges the log to serve the partial tiles of every size it signed);
  3. checks each entry's leaf hash against the level-0 tiles and each higher tile's hashes against the
     full tiles below, and recomputes the tree root from the entries, which must be the checkpoint's.
Prints "verified <origin> size <N> root <base64>" and exits 0, or prints the problem on stderr and
exits 1 (2 for a usage error).

--self-test checks the Ed25519 verifier against the RFC 8032 vectors (a file of blocks with 'public',
'message' and 'signature' lines, hex), including altered messages and signatures that must fail.
"""

import argparse
import base64
import gzip
import hashlib
import sys
import urllib.error
import urllib.request

TILE_WIDTH = 256
HASH_SIZE = 32


class Failure(Exception):
    """What went wrong, for the one line on stderr."""


# ---- Ed25519 verification (RFC 8032 section 5.1.7), on Python integers --------------------------------

P = 2**255 - 19
ORDER = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _inverse(x):
    return pow(x, P - 2, P)


def _add(a, b):
    # Extended twisted Edwards coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z.
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e = ((y1 - x1) * (y2 - x2)) % P
    f = ((y1 + x1) * (y2 + x2)) % P
    g = (t1 * 2 * D * t2) % P
    h = (z1 * 2 * z2) % P
    e, f, g, h = f - e, h - g, h + g, f + e
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar, point):
    result = (0, 1, 1, 0)  # the neutral element
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _decode_point(data):
    if len(data) != 32:
        raise Failure("an Ed25519 point is 32 bytes")
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        raise Failure("not an Ed25519 point (y out of range)")
    x2 = (y * y - 1) * _inverse(D * y * y + 1) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        raise Failure("not an Ed25519 point (no square root)")
    if x == 0 and sign:
        raise Failure("not an Ed25519 point (negative zero)")
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


_BASE_Y = 4 * _inverse(5) % P
BASE = _decode_point(_BASE_Y.to_bytes(32, "little"))


def ed25519_verify(public_key, message, signature):
    """True when `signature` (64 bytes) is a valid signature of `message` by `public_key` (32 bytes)."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        a = _decode_point(public_key)
        r = _decode_point(signature[:32])
    except Failure:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= ORDER:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % ORDER
    # [S]B = R + [k]A, multiplied by the cofactor 8 as RFC 8032 allows.
    left = _multiply(8 * s, BASE)
    right = _multiply(8, _add(r, _multiply(k, a)))
    return _same(left, right)


# ---- signed notes and checkpoints -----------------------------------------------------------------


def parse_nix_key(text):
    name, sep, encoded = text.strip().partition(":")
    if not sep or not name:
        raise Failure(f"key {text!r} is not name:base64")
    key = base64.b64decode(encoded, validate=True)
    if len(key) != 32:
        raise Failure(f"key {name} is {len(key)} bytes, not an Ed25519 public key (32)")
    return name, key


def verify_checkpoint(note, key_name, public_key):
    """Returns (origin, size, root) of a checkpoint note signed by the key."""
    separator = note.rfind("\n\n")
    if separator < 0 or not note.endswith("\n"):
        raise Failure("the checkpoint is not a signed note (no blank line before the signatures)")
    text = note[: separator + 1]
    key_id = hashlib.sha256(key_name.encode() + b"\n" + b"\x01" + public_key).digest()[:4]
    verified = False
    for line in note[separator + 2 :].splitlines():
        if not line.startswith("\u2014 "):
            raise Failure(f"signature line {line!r} does not start with an em dash")
        name, _, encoded = line[2:].rpartition(" ")
        if name != key_name:
            continue  # someone else's signature (a cosigner)
        blob = base64.b64decode(encoded, validate=True)
        if blob[:4] != key_id:
            continue
        if not ed25519_verify(public_key, text.encode(), blob[4:]):
            raise Failure(f"the signature by {key_name} does not verify")
        verified = True
    if not verified:
        raise Failure(f"the checkpoint carries no signature by {key_name}")
    lines = text.split("\n")
    if len(lines) < 4:
        raise Failure("a checkpoint has an origin, a size and a root line")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise Failure(f"checkpoint size {size_text!r} is not a decimal number")
    root = base64.b64decode(root_text, validate=True)
    if len(root) != HASH_SIZE:
        raise Failure(f"checkpoint root is {len(root)} bytes, not 32")
    if origin != key_name:
        raise Failure(f"checkpoint origin {origin!r} is not the log key's name {key_name!r}")
    return origin, int(size_text), root


# ---- RFC 6962 hashing -----------------------------------------------------------------------------


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(leaves):
    """MTH of a list of leaf hashes. The empty tree's hash is SHA-256 of the empty string."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return node_hash(tree_hash(leaves[:split]), tree_hash(leaves[split:]))


# ---- tiles ----------------------------------------------------------------------------------------


def tile_index_path(index):
    parts = [f"{index % 1000:03d}"]
    index //= 1000
    while index > 0:
        parts.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(parts))


def tile_path(level, index, width):
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{tile_index_path(index)}{suffix}"


def tiles_of_level(count):
    """(index, width) of the tiles holding `count` hashes of one level."""
    return [(n, min(TILE_WIDTH, count - n * TILE_WIDTH)) for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH)]


def fetch(base, path):
    url = f"{base}/{path}"
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, identity"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            if response.headers.get("Content-Encoding", "identity") == "gzip":
                body = gzip.decompress(body)
            return body
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace").strip()
        raise Failure(f"GET {url}: HTTP {error.code}: {detail}") from None
    except urllib.error.URLError as error:
        raise Failure(f"GET {url}: {error.reason}") from None


def decode_bundle(data, path):
    entries = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise Failure(f"{path}: truncated length prefix")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise Failure(f"{path}: entry {len(entries)} is cut short")
        entries.append(data[offset : offset + length])
        offset += length
    return entries


def verify_log(base, size, root):
    # Entries, from the bundles of the checkpoint's size.
    leaves = []
    for index, width in tiles_of_level(size):
        path = f"tile/entries/{tile_index_path(index)}" + ("" if width == TILE_WIDTH else f".p/{width}")
        entries = decode_bundle(fetch(base, path), path)
        if len(entries) != width:
            raise Failure(f"{path}: {len(entries)} entries, expected {width}")
        leaves.extend(leaf_hash(entry) for entry in entries)

    # Hash tiles, level by level: level 0 holds the leaf hashes, level L the hashes of the full tiles of
    # level L-1 (each a perfect subtree of 256 hashes).
    level_hashes = leaves
    level = 0
    while level_hashes:
        for index, width in tiles_of_level(len(level_hashes)):
            path = tile_path(level, index, width)
            data = fetch(base, path)
            expected = b"".join(level_hashes[index * TILE_WIDTH : index * TILE_WIDTH + width])
            if len(data) != width * HASH_SIZE:
                raise Failure(f"{path}: {len(data)} bytes, expected {width * HASH_SIZE}")
            if data != expected:
                raise Failure(f"{path}: the hashes differ from those of the entries")
        full = len(level_hashes) // TILE_WIDTH
        level_hashes = [tree_hash(level_hashes[n * TILE_WIDTH : (n + 1) * TILE_WIDTH]) for n in range(full)]
        level += 1

    computed = tree_hash(leaves)
    if computed != root:
        raise Failure(
            f"the entries give root {base64.b64encode(computed).decode()}, "
            f"the checkpoint says {base64.b64encode(root).decode()}"
        )


def self_test(vectors_path):
    blocks = []
    current = {}
    with open(vectors_path, encoding="utf-8") as vectors:
        for line in vectors:
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                if current:
                    blocks.append(current)
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field.rstrip(":")] = value.strip()
    if current:
        blocks.append(current)
    checked = 0
    for block in blocks:
        public = bytes.fromhex(block["public"])
        message = bytes.fromhex(block.get("message", ""))
        signature = bytes.fromhex(block["signature"])
        if not ed25519_verify(public, message, signature):
            raise Failure(f"{block.get('name')}: a published signature does not verify")
        if ed25519_verify(public, message + b"x", signature):
            raise Failure(f"{block.get('name')}: a signature verifies over another message")
        altered = bytearray(signature)
        altered[5] ^= 1
        if ed25519_verify(public, message, bytes(altered)):
            raise Failure(f"{block.get('name')}: an altered signature verifies")
        checked += 1
    if checked == 0:
        raise Failure(f"{vectors_path}: no vectors")
    if tree_hash([]).hex() != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855":
        raise Failure("the empty tree's hash is not SHA-256 of the empty string")
    print(f"ok: {checked} Ed25519 vectors")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", help="the log's URL prefix, e.g. http://127.0.0.1:7780/log")
    parser.add_argument("--key", help="the log's public key, name:base64 (Nix format)")
    parser.add_argument("--checkpoint", help="a checkpoint note fetched earlier (default: fetch the latest)")
    parser.add_argument("--self-test", metavar="RFC8032_VECTORS", help="check the Ed25519 verifier")
    args = parser.parse_args()
    try:
        if args.self_test:
            self_test(args.self_test)
            return 0
        if not args.log or not args.key:
            parser.print_usage(sys.stderr)
            print("tlog_client.py: --log and --key are required", file=sys.stderr)
            return 2
        base = args.log.rstrip("/")
        key_name, public_key = parse_nix_key(args.key)
        if args.checkpoint:
            with open(args.checkpoint, encoding="utf-8", newline="") as pinned:
                note = pinned.read()
        else:
            note = fetch(base, "checkpoint").decode("utf-8")
        origin, size, root = verify_checkpoint(note, key_name, public_key)
        verify_log(base, size, root)
        print(f"verified {origin} size {size} root {base64.b64encode(root).decode()}")
        return 0
    except (Failure, ValueError, OSError) as error:
        print(f"tlog_client.py: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
