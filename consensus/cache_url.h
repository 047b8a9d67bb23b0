// The one rule for the address of a Nix binary cache that attest may fetch NARs from: the caches an
// operator lists in the policy (`caches` in [[operator]]) and the mirrors a node lists in its own config
// ([[source]] url). Both come only from those files, never from a request or an attestation.
//
// Accepted: http://host[:port][/path], https://host[:port][/path] and file:///absolute/path, in the
// binary cache layout (what `nix copy --to`, nix-serve or harmonia serve; an S3 bucket through its
// https:// address). Refused: any other scheme (s3://, ftp:, ...), a relative file path, a user name or
// password, a query or fragment, white space, control and non-ASCII bytes, empty, `.` or `..` path
// segments, and more than kMaxCacheUrlLength bytes.
//
// Normalised form: trailing slashes are removed ("https://c.example/" is "https://c.example", as Nix
// itself treats them), so one cache has one spelling in the policy's canonical text and comparisons
// find duplicates. Nothing else is rewritten (a host name's case is kept).
//
// Pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_CACHE_URL_H_
#define ATTEST_CONSENSUS_CACHE_URL_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace attest::consensus {

// The longest cache URL accepted, in bytes.
inline constexpr size_t kMaxCacheUrlLength = 1024;

// The normalised form of `url` (see above), or INVALID_ARGUMENT saying what is wrong and, in
// parentheses at the end, what to write instead. A message never repeats a URL that carries
// credentials. Callers prefix the message with where the URL was written.
absl::StatusOr<std::string> ValidateCacheUrl(std::string_view url);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_CACHE_URL_H_
