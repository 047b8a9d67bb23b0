# see /nix/store/js5vwj7w2qxy3n7ghwa1bikcpcm79nma-attest-note.txt
cat "$fixed" "$twin" "$recursive" "$sha1" > $out
