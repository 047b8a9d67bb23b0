#!/usr/bin/env bash
# The gateway's NAR relay (docs/node.md, "Gateway without an upstream"), measured in one run:
#
#   1. Throughput: NARs fetched through the gateway (from an operator's file:// cache, every byte
#      verified on the way into the node's NAR cache) against nginx serving the very same NAR files,
#      alternating, several rounds; large NARs (--large-count of --large-mib MiB) and many small ones
#      (--small-count of --small-kib KiB), 8 concurrent clients. "cold": the node starts each round
#      with an empty NAR cache, so every NAR is fetched from the source and verified during the timed
#      part; "warm": the same requests again, from the node's verified cache. Target: >= 0.7 of nginx.
#   2. Memory: --streams concurrent NARs of --stream-gib GiB each (zstd-compressed files of zeros, so
#      the sources take no disk; the NAR cache takes streams x size), attestd's peak resident memory
#      (VmHWM) and the largest VmRSS sampled. Target: <= 256 MiB.
#
#   bench/relay_bench.sh [--build DIR] [--rounds N] [--large-count N] [--large-mib N] [--small-count N]
#                        [--small-kib N] [--streams N] [--stream-gib N] [--dir DIR]
#
# Needs `scripts/install-deps --bench` (nginx-light), curl and zstd. Store paths, NARs and narinfos are
# written directly (a NAR of one regular file, Nix's format); attestations go in with `attest submit`.
# --dir puts the work directory (large: streams x stream-gib GiB) elsewhere than $TMPDIR.
set -euo pipefail

BUILD=build
ROUNDS=3
LARGE_COUNT=4
LARGE_MIB=256
SMALL_COUNT=1000
SMALL_KIB=16
STREAMS=16
STREAM_GIB=1
BASE="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --large-count) LARGE_COUNT="$2"; shift 2 ;;
    --large-mib) LARGE_MIB="$2"; shift 2 ;;
    --small-count) SMALL_COUNT="$2"; shift 2 ;;
    --small-kib) SMALL_KIB="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --stream-gib) STREAM_GIB="$2"; shift 2 ;;
    --dir) BASE="$2"; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--rounds N] [--large-count N] [--large-mib N] [--small-count N]" \
            "[--small-kib N] [--streams N] [--stream-gib N] [--dir DIR]" >&2; exit 2 ;;
  esac
done
ATTESTD="$(cd "$BUILD" && pwd)/server/attestd"
ATTEST="$(cd "$BUILD" && pwd)/client/attest"
for tool in nginx python3 curl zstd nix "$ATTESTD" "$ATTEST"; do
  command -v "$tool" >/dev/null || { echo "relay_bench: $tool not found" >&2; exit 2; }
done

W="$(mktemp -d "$BASE/relay-bench.XXXXXX")"
chmod 755 "$W"  # nginx's workers run unprivileged and must read the cache
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
export XDG_CACHE_HOME="$W/xdg" HOME="$W/home"
mkdir -p "$XDG_CACHE_HOME" "$HOME"

source "$(dirname "$0")/lib.sh"

# Writes NAR files, narinfos and a path-info JSON (for `attest submit`) into a binary cache directory.
#   make_cache DIR PREFIX COUNT BYTES COMPRESSION
# COMPRESSION "none": random contents, one file per NAR. "zstd": zeros, one compressed file shared by
# every narinfo (same NAR, different store paths), so the cache takes no disk.
make_cache() {
  python3 - "$@" <<'PYEOF'
import hashlib, json, os, random, struct, subprocess, sys
directory, prefix, count, size, compression = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
os.makedirs(os.path.join(directory, "nar"), exist_ok=True)
ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
def nix32(digest):
    out = []
    for n in range(len(digest) * 8 // 5, -1, -1):
        b = n * 5
        i, j = b // 8, b % 8
        c = (digest[i] >> j) | ((digest[i + 1] << (8 - j)) if i + 1 < len(digest) else 0)
        out.append(ALPHABET[c & 0x1f])
    return "".join(out)
def nar_string(b):
    return struct.pack("<Q", len(b)) + b + b"\0" * ((8 - len(b) % 8) % 8)
def nar_header(size):
    head = b"".join(nar_string(t) for t in [b"nix-archive-1", b"(", b"type", b"regular", b"contents"])
    return head + struct.pack("<Q", size)
def nar_trailer(size):
    return b"\0" * ((8 - size % 8) % 8) + nar_string(b")")
rng = random.Random(prefix)  # distinct store paths per set
infos = []
shared = None
if compression == "zstd":
    # One NAR of `size` zero bytes, hashed and compressed while streaming.
    h = hashlib.sha256()
    path = os.path.join(directory, "nar", "zeros.nar.zst")
    with open(path, "wb") as out:
        z = subprocess.Popen(["zstd", "-q", "-1", "-c"], stdin=subprocess.PIPE, stdout=out)
        def put(b):
            h.update(b); z.stdin.write(b)
        put(nar_header(size))
        chunk = b"\0" * (1 << 20)
        left = size
        while left:
            n = min(left, len(chunk)); put(chunk[:n]); left -= n
        put(nar_trailer(size))
        z.stdin.close(); z.wait()
    shared = ("nar/zeros.nar.zst", "sha256:" + nix32(h.digest()), len(nar_header(size)) + size + len(nar_trailer(size)))
for i in range(count):
    hash_part = "".join(rng.choice(ALPHABET) for _ in range(32))
    store_path = f"/nix/store/{hash_part}-{prefix}-{i}"
    if shared:
        url, nar_hash, nar_size = shared
    else:
        url = f"nar/{hash_part}.nar"
        h = hashlib.sha256()
        nar_size = 0
        with open(os.path.join(directory, url), "wb") as f:
            def put(b):
                global nar_size
                h.update(b); f.write(b); nar_size += len(b)
            put(nar_header(size))
            left = size
            while left:
                n = min(left, 1 << 20); put(rng.randbytes(n)); left -= n
            put(nar_trailer(size))
        nar_hash = "sha256:" + nix32(h.digest())
    with open(os.path.join(directory, f"{hash_part}.narinfo"), "w") as f:
        f.write(f"StorePath: {store_path}\nURL: {url}\nCompression: {compression}\nNarHash: {nar_hash}\n"
                f"NarSize: {nar_size}\nReferences: \n")
    infos.append({"path": store_path, "narHash": nar_hash, "narSize": nar_size, "references": [], "url": url,
                  "ultimate": True})
with open(os.path.join(directory, f"{prefix}.json"), "w") as f:
    json.dump(infos, f)
PYEOF
}

echo "relay_bench: writing the caches..."
CACHE="$W/cache"
make_cache "$CACHE" large "$LARGE_COUNT" $((LARGE_MIB << 20)) none
make_cache "$CACHE" small "$SMALL_COUNT" $((SMALL_KIB << 10)) none
make_cache "$W/zcache" stream "$STREAMS" $((STREAM_GIB << 30)) zstd
chmod -R a+rX "$CACHE"

export NIX_CONFIG="experimental-features = nix-command"
nix key generate-secret --key-name alpha-builder-1 > "$W/alpha.sec"
nix key generate-secret --key-name beta-builder-1 > "$W/beta.sec"
nix key generate-secret --key-name node > "$W/node.sec"
ALPHA_PUB="$(nix key convert-secret-to-public < "$W/alpha.sec")"
BETA_PUB="$(nix key convert-secret-to-public < "$W/beta.sec")"
cat > "$W/policy.toml" <<EOF
quorum = 2
[[operator]]
name = "alpha"
builders = ["$ALPHA_PUB"]
caches = ["file://$CACHE", "file://$W/zcache"]
[[operator]]
name = "beta"
builders = ["$BETA_PUB"]
EOF
GRPC_PORT="$(free_port)"; HTTP_PORT="$(free_port)"
CACHE_MIB=$(( (STREAMS * STREAM_GIB << 10) + LARGE_COUNT * LARGE_MIB + 1024 ))
cat > "$W/node.toml" <<EOF
[node]
grpc = "127.0.0.1:$GRPC_PORT"
http = "127.0.0.1:$HTTP_PORT"
database = "attest.db"
key = "node.sec"
policy = "policy.toml"

[gateway]
nar_cache = "nar-cache"
nar_cache_mib = $CACHE_MIB
max_nar_mib = $(( (STREAM_GIB << 10) + 16 ))
nar_fetches = $STREAMS
EOF
start_attestd
for key in alpha beta; do
  for set in "$CACHE/large.json" "$CACHE/small.json" "$W/zcache/stream.json"; do
    "$ATTEST" submit --node "127.0.0.1:$GRPC_PORT" --key "$W/$key.sec" "$set" > /dev/null 2>&1
  done
done

start_nginx "$CACHE"

# The NAR URLs of a set, on the gateway (from its narinfos: every one must be served) or on nginx.
gateway_urls() {
  python3 - "$1" "$HTTP_PORT" <<'PYEOF'
import json, sys, urllib.request
infos, port = json.load(open(sys.argv[1])), sys.argv[2]
for info in infos:
    hash_part = info["path"][11:43]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/{hash_part}.narinfo").read().decode()
    url = next(line[5:] for line in text.splitlines() if line.startswith("URL: "))
    print(f"http://127.0.0.1:{port}/{url}")
PYEOF
}
nginx_urls() {
  python3 -c 'import json, sys; [print("http://127.0.0.1:%s/%s" % (sys.argv[2], i["url"])) for i in json.load(open(sys.argv[1]))]' \
    "$1" "$NGINX_PORT"
}
# Fetches every URL of a list file, 8 transfers at once in one curl (connections kept alive, as Nix
# does); prints "seconds bytes"; fails on any non-200.
fetch_all() {
  local list="$1" start end
  sed 's/.*/url = "&"\noutput = "\/dev\/null"/' "$list" > "$W/curl.cfg"
  start=$(date +%s.%N)
  curl -s --no-progress-meter --parallel --parallel-max 8 -K "$W/curl.cfg" -w '%{http_code} %{size_download}\n' > "$W/fetch.out"
  end=$(date +%s.%N)
  if grep -qv '^200 ' "$W/fetch.out"; then
    echo "relay_bench: a request was not answered 200: $(grep -v '^200 ' "$W/fetch.out" | head -1)" >&2; exit 1
  fi
  python3 -c "import sys; print($end - $start, sum(int(l.split()[1]) for l in open(sys.argv[1])))" "$W/fetch.out"
}

RESULTS="$W/results"
: > "$RESULTS"
for round in $(seq "$ROUNDS"); do
  stop_attestd; rm -rf "$W/nar-cache"; start_attestd
  for set in large small; do
    gateway_urls "$CACHE/$set.json" > "$W/$set-gateway.urls"  # narinfos first, as Nix asks (not timed)
    nginx_urls "$CACHE/$set.json" > "$W/$set-nginx.urls"
    echo "$set cold $(fetch_all "$W/$set-gateway.urls")" >> "$RESULTS"
    echo "$set warm $(fetch_all "$W/$set-gateway.urls")" >> "$RESULTS"
    echo "$set nginx $(fetch_all "$W/$set-nginx.urls")" >> "$RESULTS"
  done
done

python3 - "$RESULTS" "$LARGE_COUNT" "$LARGE_MIB" "$SMALL_COUNT" "$SMALL_KIB" <<'PYEOF'
import collections, statistics, sys
rates = collections.defaultdict(list)
for line in open(sys.argv[1]):
    s, kind, seconds, size = line.split()
    rates[(s, kind)].append(int(size) / float(seconds) / 2**20)
print(f"NAR relay throughput, 8 concurrent clients, {len(rates[('large', 'nginx')])} rounds (MiB/s of NAR, median)")
for s, label in (("large", f"{sys.argv[2]} x {sys.argv[3]} MiB"), ("small", f"{sys.argv[4]} x {sys.argv[5]} KiB")):
    n = statistics.median(rates[(s, "nginx")])
    for kind in ("cold", "warm"):
        g = statistics.median(rates[(s, kind)])
        runs = ", ".join(f"{x:.0f}" for x in rates[(s, kind)])
        print(f"  {label:>16} gateway {kind}: {g:8.1f}  (runs {runs})  ratio to nginx {g / n:.2f} (target >= 0.7)")
    print(f"  {label:>16} nginx     : {n:8.1f}  (runs {', '.join(f'{x:.0f}' for x in rates[(s, 'nginx')])})")
PYEOF

# Memory: STREAMS concurrent NARs of STREAM_GIB GiB each, from a cold NAR cache.
stop_attestd; rm -rf "$W/nar-cache"; start_attestd
gateway_urls "$W/zcache/stream.json" > "$W/stream.urls"
PEAK_RSS_FILE="$W/rss"
( peak=0
  while kill -0 "$ATTESTD_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$ATTESTD_PID/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" > "$PEAK_RSS_FILE"
    sleep 0.2
  done ) &
SAMPLER=$!
BEFORE_HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$ATTESTD_PID/status")
start=$(date +%s.%N)
sed 's/.*/url = "&"\noutput = "\/dev\/null"/' "$W/stream.urls" > "$W/curl.cfg"
curl -s --no-progress-meter --parallel --parallel-max "$STREAMS" -K "$W/curl.cfg" -w '%{http_code} %{size_download}\n' > "$W/stream.out"
end=$(date +%s.%N)
HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$ATTESTD_PID/status")
stop_attestd
wait "$SAMPLER" 2>/dev/null || true
if grep -qv '^200 ' "$W/stream.out"; then echo "relay_bench: a stream was not answered 200" >&2; exit 1; fi
python3 - "$STREAMS" "$STREAM_GIB" "$start" "$end" "$BEFORE_HWM" "$HWM" "$(cat "$PEAK_RSS_FILE" 2>/dev/null || echo 0)" \
  "$W/stream.out" <<'PYEOF'
import sys
streams, gib, start, end, before, hwm, sampled = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
total = sum(int(l.split()[1]) for l in open(sys.argv[8]))
print(f"memory while relaying {streams} concurrent NARs of {gib} GiB (zstd sources, verified into the NAR cache):")
print(f"  {total / 2**30:.1f} GiB served in {end - start:.1f} s")
print(f"  attestd peak resident memory (VmHWM) {hwm / 1024:.0f} MiB (before the streams {before / 1024:.0f} MiB); "
      f"largest sampled VmRSS {sampled / 1024:.0f} MiB (target <= 256 MiB)")
PYEOF
