// NAR (Nix ARchive) serialisation of a file system path, and its hash, computed natively.
//
// The bytes are exactly what `nix-store --dump PATH` writes, so HashNar gives what `nix hash path`,
// `nix-hash --type sha256 PATH` and a store path's NarHash/NarSize say:
//
//   nar      = str("nix-archive-1") node
//   node     = str("(") str("type") ( regular | symlink | directory ) str(")")
//   regular  = str("regular") [ str("executable") str("") ] str("contents") str(<file bytes>)
//   symlink  = str("symlink") str("target") str(<link target>)
//   directory= str("directory") { str("entry") str("(") str("name") str(<name>) str("node") node str(")") }
//   str(s)   = <u64 little-endian length of s> s <zero bytes up to a multiple of 8>
//
// As Nix does: the path itself is lstat'ed, so a symlink given as PATH is serialised as a symlink (but
// "link/" resolves through it); "executable" means the owner's execute bit; directory entries come in
// bytewise (unsigned) order of their names, without "." and ".."; nothing else (times, owners, other
// permission bits) is recorded. Sockets, fifos and devices cannot be serialised.
//
// Files are read once, in large chunks, straight into the output buffer; directories are walked
// through descriptors (openat/fstatat), so the depth of a tree is limited neither by PATH_MAX nor by
// the descriptor limit. A file's size is taken from its lstat before it is read; a file that shrinks
// while being read is an error (a file that grows is read up to that size, as Nix does).
//
// Thread-safe: the functions share no state; concurrent calls on different paths are fine.
#ifndef ATTEST_CLIENT_NAR_H_
#define ATTEST_CLIENT_NAR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/nar_hash.h"

namespace attest::client {

// The sink receives the NAR in order, in chunks of at most kNarChunkSize bytes (the last one and
// chunks between small entries may be shorter). A chunk is valid only during the call. A non-OK
// status stops the serialisation and is returned by DumpNar unchanged.
inline constexpr size_t kNarChunkSize = size_t{1} << 20;
using NarSink = absl::FunctionRef<absl::Status(std::string_view chunk)>;

// Writes the NAR serialisation of `path` to `sink`. Errors name the offending path inside the tree:
//   NOT_FOUND          the path (or an entry that vanished during the walk) does not exist
//   PERMISSION_DENIED  a file or directory cannot be read
//   INVALID_ARGUMENT   a socket, fifo or device inside the tree, or an entry whose name is too long
//   UNAVAILABLE        a read error, or a file that shrank while it was read (retry when nothing is
//                      writing to the tree)
//   RESOURCE_EXHAUSTED out of file descriptors or memory
// The sink may already have received part of the NAR when an error is returned.
absl::Status DumpNar(const std::string& path, NarSink sink);

struct NarDigest final {
  consensus::NarHash hash;  // SHA-256 of the NAR: NarHash in a narinfo, "sha256:<nix32>"
  uint64_t size = 0;        // length of the NAR in bytes: NarSize
};

// SHA-256 (OpenSSL) and length of the NAR serialisation of `path`: what Nix records as NarHash and
// NarSize for a store path with these contents. Same errors as DumpNar; INTERNAL if OpenSSL fails.
absl::StatusOr<NarDigest> HashNar(const std::string& path);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_NAR_H_
