#!/usr/bin/env bash
# Regenerates the .drv files in tests/testdata/derivations/ with a real Nix (Debian 12's nix-bin 2.8.0),
# plus
#   show-derivation.json  Nix's own reading of the same files (`nix show-derivation`), which
#                         tests/consensus/derivation_test.cc compares our parser against field by field;
#   manifest.json         for each attribute below: its .drv store path and its output paths as Nix's
#                         evaluator computed them (`drvPath`, `<output>.outPath`), and for each input
#                         source (builtins.toFile) its references; tests/consensus/derivation_paths_test.cc
#                         recomputes all of them;
#   sources/              the input sources (builtins.toFile texts), under their store base names.
#
# Usage (as root or any user; no daemon, no network, no sandbox, nothing is built):
#   tests/testdata/derivations/generate.sh [output-dir]
# Default output: the directory of this script. The derivations are fixed expressions, so a rerun with the
# same Nix on the same system writes the same files; commit the result only when the expressions change.
#
# How: a private chroot store (`--store <dir>`) and a private NIX_CONF_DIR, so the host's Nix setup is
# neither used nor touched. `nix-instantiate -A <attr>` writes each raw `derivation {}` (no nixpkgs) and
# its dependencies into the chroot store; every .drv and source in their closure is copied out under its
# store base name.
# What the set covers:
#   attest-dep        one output, the simplest case
#   attest-lib        two outputs (out, dev), depends on attest-dep
#   attest-multi      four outputs, a builder script as an input source (builtins.toFile), depends on two
#                     outputs of attest-lib and on attest-dep: a dependency chain
#   attest-escapes    env values and args with " \ newline tab carriage-return, a raw control byte,
#                     UTF-8, an empty value
#   attest-fixed      fixed-output, flat sha256           ("out", path, "sha256", hex)
#   attest-fixed-rec  fixed-output, recursive sha256      ("out", path, "r:sha256", hex)
#   attest-ca         floating content-addressed          ("out", "", "r:sha256", "")
#   attest-ca-top     floating CA over floating CA: its env holds a placeholder for the input's path
#                     (attest-ca-base, its input, is copied too)
#   attest-fixed-sha1 fixed-output, recursive sha1        ("out", path, "r:sha1", hex): not a "source" path
#   attest-fixed      (a twin: same name and hash as attest-fixed, another builder, so the same output path)
#   attest-on-fixed   input-addressed over the three fixed-output ones (the twins share one input hash) and
#                     over a builtins.toFile script that refers to another builtins.toFile text
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE}"
command -v nix-instantiate >/dev/null || { echo "needs nix (apt-get install nix-bin)" >&2; exit 1; }
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 1; }

W="$(mktemp -d "${TMPDIR:-/tmp}/attest-drvs-XXXXXX")"
trap 'chmod -R u+w "$W" 2>/dev/null || true; rm -rf "$W"' EXIT
export NIX_CONF_DIR="$W/etc" XDG_CACHE_HOME="$W/xdg" HOME="$W/home"
unset NIX_CONFIG NIX_REMOTE NIX_PATH NIX_STORE_DIR NIX_STATE_DIR NIX_LOG_DIR 2>/dev/null || true
mkdir -p "$NIX_CONF_DIR" "$XDG_CACHE_HOME" "$HOME"
printf 'experimental-features = nix-command ca-derivations\nsubstituters =\nbuild-users-group =\n' \
  > "$NIX_CONF_DIR/nix.conf"
S=(--store "$W/store")

# x86_64-linux is written out (not builtins.currentSystem) so the files do not depend on the machine.
cat > "$W/drvs.nix" <<'EOF'
let
  system = "x86_64-linux";
  sh = "/bin/sh";
  dep = derivation {
    name = "attest-dep"; inherit system; builder = sh;
    args = [ "-c" "echo dep > $out" ];
  };
  lib = derivation {
    name = "attest-lib"; inherit system; builder = sh;
    outputs = [ "out" "dev" ];
    args = [ "-c" "echo ${dep} > $out; echo headers > $dev" ];
  };
  script = builtins.toFile "attest-multi-builder.sh" ''
    echo "$libout $libdev $depPath" > $out
    echo docs > $doc
    echo dev > $dev
    echo bin > $bin
  '';
in rec {
  inherit dep lib;
  multi = derivation {
    name = "attest-multi"; inherit system; builder = sh;
    outputs = [ "out" "doc" "dev" "bin" ];
    args = [ script ];
    libout = lib;
    libdev = lib.dev;
    depPath = dep;
  };
  escapes = derivation {
    name = "attest-escapes"; inherit system; builder = sh;
    args = [ "-c" "printf '%s\\n' \"$quote\" > $out" "tab\there" ];
    quote = "say \"hi\"";
    backslash = "C:\\dir\\";
    newline = "line1\nline2\n";
    tab = "a\tb";
    cr = "a\rb";
    control = builtins.fromJSON "\"bell\\u0007 esc\\u001b\"";
    unicode = "grüße ✓";
    dollar = "\${not interpolated}";
    empty = "";
    all = "\"\\\n\r\t";
  };
  fixed = derivation {
    name = "attest-fixed"; inherit system; builder = sh;
    args = [ "-c" "echo fixed > $out" ];
    outputHashMode = "flat"; outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "fixed\n";
  };
  fixed-rec = derivation {
    name = "attest-fixed-rec"; inherit system; builder = sh;
    args = [ "-c" "echo fixed > $out" ];
    outputHashMode = "recursive"; outputHashAlgo = "sha256";
    outputHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  };
  ca = derivation {
    name = "attest-ca"; inherit system; builder = sh;
    args = [ "-c" "echo ca > $out" ];
    __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
  };
  fixed-sha1 = derivation {
    name = "attest-fixed-sha1"; inherit system; builder = sh;
    args = [ "-c" "mkdir $out" ];
    outputHashMode = "recursive"; outputHashAlgo = "sha1";
    outputHash = "0123456789abcdef0123456789abcdef01234567";
  };
  fixed-twin = derivation {
    name = "attest-fixed"; inherit system; builder = sh;
    args = [ "-c" "printf 'fixed\\n' > $out" ];
    outputHashMode = "flat"; outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "fixed\n";
  };
  on-fixed = let
    note = builtins.toFile "attest-note.txt" "a note\n";
    script = builtins.toFile "attest-on-fixed.sh" ''
      # see ${note}
      cat "$fixed" "$twin" "$recursive" "$sha1" > $out
    '';
  in derivation {
    name = "attest-on-fixed"; inherit system; builder = sh;
    args = [ script ];
    inherit fixed; twin = fixed-twin; recursive = fixed-rec; sha1 = fixed-sha1;
  };
  ca-top = let base = derivation {
      name = "attest-ca-base"; inherit system; builder = sh;
      args = [ "-c" "echo base > $out" ];
      __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
    };
  in derivation {
    name = "attest-ca-top"; inherit system; builder = sh;
    args = [ "-c" "echo ${base} > $out" ];
    __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
  };
}
EOF

ATTRS=(dep lib multi escapes fixed fixed-rec ca ca-top fixed-sha1 fixed-twin on-fixed)
mkdir -p "$OUT/sources"
rm -f "$OUT"/*.drv "$OUT/show-derivation.json" "$OUT/manifest.json" "$OUT"/sources/*
for attr in "${ATTRS[@]}"; do
  # --add-root only keeps Nix from warning about garbage collection; the root is a symlink to the .drv.
  nix-instantiate "${S[@]}" --add-root "$W/roots/$attr" --indirect "$W/drvs.nix" -A "$attr" >/dev/null
done
# The closure of every root: the .drv files and the sources they name.
DRVS=()
SRCS=()
while read -r path; do
  case "$path" in
    *.drv) DRVS+=("$path"); cp "$W/store$path" "$OUT/$(basename "$path")"; chmod 0644 "$OUT/$(basename "$path")" ;;
    *) SRCS+=("$path"); cp "$W/store$path" "$OUT/sources/$(basename "$path")"; chmod 0644 "$OUT/sources/$(basename "$path")" ;;
  esac
done < <(for attr in "${ATTRS[@]}"; do nix-store "${S[@]}" -qR "$(readlink "$W/roots/$attr")"; done | sort -u)
# Nix's own reading of every file, keyed by store path (one JSON object, sorted keys).
nix show-derivation "${S[@]}" "${DRVS[@]}" | jq -S . > "$OUT/show-derivation.json"
# What the evaluator computed: the .drv path and every output path, by attribute (a floating
# content-addressed output has no path before the build; Nix gives a placeholder, written as is).
attrs_nix="[ $(printf '"%s" ' "${ATTRS[@]}") ]"
nix-instantiate "${S[@]}" --eval --strict --json -E "
  let set = import $W/drvs.nix; in
  builtins.listToAttrs (map (attr: let d = set.\${attr}; in {
    name = attr;
    value = {
      drvPath = d.drvPath;
      outputs = builtins.listToAttrs (map (o: { name = o; value = d.\${o}.outPath; }) (d.outputs or [ \"out\" ]));
    };
  }) $attrs_nix)" | jq -S . > "$W/evaluated.json"
sources_json="$(for src in "${SRCS[@]}"; do
  jq -n --arg path "$src" --args '{($path): {references: $ARGS.positional}}' \
    $(nix-store "${S[@]}" -q --references "$src")
done | jq -s 'add // {}')"
jq -S --argjson sources "$sources_json" '{derivations: ., sources: $sources}' "$W/evaluated.json" > "$OUT/manifest.json"
echo "wrote ${#DRVS[@]} derivations, ${#SRCS[@]} sources, show-derivation.json and manifest.json to $OUT" \
  "($(nix --version))" >&2
