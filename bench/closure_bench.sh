#!/usr/bin/env bash
# Substituting a closure of 200 paths through the gateway, against the same closure from a plain static
# binary cache (nginx serving the very files the gateway reads), in one run, alternating, several runs
# each. Target: gateway overhead <= 20%.
#
# With --relay the gateway has no upstream: three operators (alpha, beta, gamma) each list their own
# copy of the closure as a cache in the policy (alpha uncompressed, beta xz, gamma uncompressed over
# HTTP), and the gateway relays NARs from them, verified (docs/node.md, "Gateway without an
# upstream"). Each gateway run then starts attestd afresh with an empty NAR cache (outside the timed
# part), so every NAR is fetched from a source and verified during the run ("cold"), and a second
# realisation right after it measures the NAR cache ("warm"). Target: overhead <= 25% against one
# static cache.
#
#   bench/closure_bench.sh [--build DIR] [--runs N] [--paths N] [--relay]
#
# What it does, with real Nix (Debian's nix-bin) and real processes on 127.0.0.1:
#   1. builds N raw derivations (a top path referring to N-1 others, each with a few KiB of content) in a
#      builder chroot store;
#   2. attests them with two builder keys of two operators (`attest submit`), so every path is CONFIRMED
#      at quorum 2, and copies the closure into a file:// binary cache signed with one builder key;
#   3. starts attestd with that cache as its gateway upstream, and nginx serving the same directory;
#   4. realises the top path into fresh empty client stores, alternately from the gateway (trusting only
#      the node key) and from nginx (trusting only the builder key), and prints the medians and ratio.
# Needs `scripts/install-deps --bench` (nginx-light). Everything lives in a temp dir removed at the end.
set -euo pipefail

BUILD=build
RUNS=5
PATHS=200
RELAY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --relay) RELAY=1; shift ;;
    --build) BUILD="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --paths) PATHS="$2"; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--runs N] [--paths N] [--relay]" >&2; exit 2 ;;
  esac
done
ATTESTD="$(cd "$BUILD" && pwd)/server/attestd"
ATTEST="$(cd "$BUILD" && pwd)/client/attest"
for tool in nix nix-build nginx python3 "$ATTESTD" "$ATTEST"; do
  command -v "$tool" >/dev/null || { echo "closure_bench: $tool not found" >&2; exit 2; }
done

W="$(mktemp -d)"
chmod 755 "$W"  # nginx's workers run unprivileged and must read the cache
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# Nix isolated from the host, as in the test suite.
export NIX_CONF_DIR="$W/etc" XDG_CACHE_HOME="$W/xdg" HOME="$W/home" TMPDIR="$W/tmp"
unset NIX_CONFIG NIX_REMOTE NIX_PATH NIX_STORE_DIR NIX_STATE_DIR NIX_LOG_DIR 2>/dev/null || true
mkdir -p "$NIX_CONF_DIR" "$XDG_CACHE_HOME" "$HOME" "$TMPDIR"
cat > "$NIX_CONF_DIR/nix.conf" <<'EOF'
experimental-features = nix-command
substituters =
build-users-group =
sandbox = true
extra-sandbox-paths = /bin /usr /lib /lib64?
max-jobs = 2
EOF

source "$(dirname "$0")/lib.sh"

echo "closure_bench: building $PATHS paths..."
{
  echo 'let system = builtins.currentSystem;'
  echo '  leaf = i: derivation { name = "closure-leaf-${toString i}"; inherit system; builder = "/bin/sh";'
  echo '    args = [ "-c" "i=0; while [ $i -lt 64 ]; do echo line $i of leaf ${toString i} padding padding padding; i=$((i+1)); done > $out" ]; };'
  echo "  leaves = map leaf (builtins.genList (x: x) $((PATHS - 1)));"
  echo 'in derivation { name = "closure-top"; inherit system; builder = "/bin/sh";'
  echo '  args = [ "-c" "echo ${toString leaves} > $out" ]; }'
} > "$W/closure.nix"
BUILDER="$W/store-builder"
TOP="$(nix-build --store "$BUILDER" --no-out-link "$W/closure.nix" 2>/dev/null)"
[ "$(nix path-info --store "$BUILDER" --recursive "$TOP" | wc -l)" -eq "$PATHS" ] || {
  echo "closure_bench: the closure does not have $PATHS paths" >&2; exit 1; }

nix key generate-secret --key-name alpha-builder-1 > "$W/alpha.sec"
nix key generate-secret --key-name beta-builder-1 > "$W/beta.sec"
nix key generate-secret --key-name node > "$W/node.sec"
ALPHA_PUB="$(nix key convert-secret-to-public < "$W/alpha.sec")"
BETA_PUB="$(nix key convert-secret-to-public < "$W/beta.sec")"
NODE_PUB="$(nix key convert-secret-to-public < "$W/node.sec")"
CACHE="$W/cache"
nix copy --store "$BUILDER" --to "file://$CACHE?compression=none&secret-key=$W/alpha.sec" "$TOP" 2>/dev/null
chmod -R a+rX "$CACHE"

ALPHA_CACHES=""; BETA_CACHES=""; GATEWAY_SOURCE="upstream = \"file://$CACHE\""
if [ "$RELAY" = 1 ]; then
  nix key generate-secret --key-name gamma-builder-1 > "$W/gamma.sec"
  GAMMA_PUB="$(nix key convert-secret-to-public < "$W/gamma.sec")"
  nix copy --store "$BUILDER" --to "file://$W/cache-beta" "$TOP" 2>/dev/null  # xz, Nix's default
  cp -r "$CACHE" "$W/cache-gamma"
  GAMMA_HTTP_PORT="$(free_port)"
  python3 -m http.server "$GAMMA_HTTP_PORT" --bind 127.0.0.1 --directory "$W/cache-gamma" > "$W/gamma-http.log" 2>&1 &
  PIDS+=($!)
  wait_port "$GAMMA_HTTP_PORT"
  ALPHA_CACHES="caches = [\"file://$CACHE\"]"
  BETA_CACHES="caches = [\"file://$W/cache-beta\"]"
  GATEWAY_SOURCE="nar_cache = \"nar-cache\""
fi
{
  echo 'quorum = 2'
  printf '[[operator]]\nname = "alpha"\nbuilders = ["%s"]\n%s\n' "$ALPHA_PUB" "$ALPHA_CACHES"
  printf '[[operator]]\nname = "beta"\nbuilders = ["%s"]\n%s\n' "$BETA_PUB" "$BETA_CACHES"
  if [ "$RELAY" = 1 ]; then
    printf '[[operator]]\nname = "gamma"\nbuilders = ["%s"]\ncaches = ["http://127.0.0.1:%s"]\n' \
      "$GAMMA_PUB" "$GAMMA_HTTP_PORT"
  fi
} > "$W/policy.toml"

GRPC_PORT="$(free_port)"; HTTP_PORT="$(free_port)"
cat > "$W/node.toml" <<EOF
[node]
grpc = "127.0.0.1:$GRPC_PORT"
http = "127.0.0.1:$HTTP_PORT"
database = "attest.db"
key = "node.sec"
policy = "policy.toml"

[gateway]
$GATEWAY_SOURCE
priority = 30
EOF
start_attestd
nix path-info --json --recursive --store "$BUILDER" "$TOP" > "$W/closure.json"
OPERATOR_KEYS="alpha beta"; [ "$RELAY" = 1 ] && OPERATOR_KEYS="alpha beta gamma"
for key in $OPERATOR_KEYS; do
  "$ATTEST" submit --node "127.0.0.1:$GRPC_PORT" --key "$W/$key.sec" "$W/closure.json" > /dev/null
done
CONFIRMED="$("$ATTEST" status --node "127.0.0.1:$GRPC_PORT" --json $(nix path-info --store "$BUILDER" --recursive "$TOP") \
  | python3 -c 'import json, sys; print(sum(s["verdict"] == "CONFIRMED" for s in json.load(sys.stdin)))')"
[ "$CONFIRMED" -eq "$PATHS" ] || { echo "closure_bench: only $CONFIRMED of $PATHS paths CONFIRMED" >&2; exit 1; }

start_nginx "$CACHE"

# One realisation into a fresh store; prints its wall seconds. Fails when anything was built locally.
realise() {
  local name="$1" url="$2" key="$3" store="$W/client-$1"
  rm -rf "$store" "$XDG_CACHE_HOME"; mkdir -p "$XDG_CACHE_HOME"
  local start end
  start=$(date +%s.%N)
  nix-store --store "$store" --realise "$TOP" --option substituters "$url" --option trusted-public-keys "$key" \
    --option narinfo-cache-negative-ttl 0 > "$W/realise-$name.log" 2>&1
  end=$(date +%s.%N)
  if grep -q "^building '" "$W/realise-$name.log"; then
    echo "closure_bench: $name built something instead of substituting" >&2; exit 1
  fi
  chmod -R u+w "$store" 2>/dev/null || true
  rm -rf "$store"
  python3 -c "print($end - $start)"
}

GATEWAY_TIMES=(); STATIC_TIMES=(); WARM_TIMES=()
for run in $(seq "$RUNS"); do
  if [ "$RELAY" = 1 ]; then
    # A fresh node process with an empty NAR cache: every NAR comes from a source in the timed run.
    stop_attestd; rm -rf "$W/nar-cache"; start_attestd
  fi
  GATEWAY_TIMES+=("$(realise gateway "http://127.0.0.1:$HTTP_PORT" "$NODE_PUB")")
  if [ "$RELAY" = 1 ]; then WARM_TIMES+=("$(realise gateway-warm "http://127.0.0.1:$HTTP_PORT" "$NODE_PUB")"); fi
  STATIC_TIMES+=("$(realise static "http://127.0.0.1:$NGINX_PORT" "$ALPHA_PUB")")
done
if [ "$RELAY" = 1 ]; then
  curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep -E '^attest_nar_source_(paths|mismatches)_total' | sed 's/^/  /'
fi

python3 - "$PATHS" "$RELAY" "${GATEWAY_TIMES[*]}" "${STATIC_TIMES[*]}" "${WARM_TIMES[*]:-}" <<'EOF'
import statistics, sys
paths, relay = int(sys.argv[1]), sys.argv[2] == "1"
gw, st = [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
g, s = statistics.median(gw), statistics.median(st)
runs = lambda xs: ", ".join(f"{x:.3f}" for x in xs)
print(f"closure of {paths} paths, {len(gw)} runs each, alternating")
if relay:
    warm = [float(x) for x in sys.argv[5].split()]
    w = statistics.median(warm)
    print(f"  gateway relay, cold (3 operator caches, every NAR fetched and verified): median {g:.3f} s  runs {runs(gw)}")
    print(f"  gateway relay, warm (NARs from the node's verified cache)              : median {w:.3f} s  runs {runs(warm)}")
    print(f"  static cache (nginx, one operator's files)                             : median {s:.3f} s  runs {runs(st)}")
    print(f"  relay overhead: cold {100 * (g / s - 1):+.1f}%, warm {100 * (w / s - 1):+.1f}% (target <= +25%)")
else:
    print(f"  gateway (attestd, file:// upstream): median {g:.3f} s  runs {runs(gw)}")
    print(f"  static cache (nginx, same files)   : median {s:.3f} s  runs {runs(st)}")
    print(f"  gateway overhead                    : {100 * (g / s - 1):+.1f}% (target <= +20%)")
EOF
