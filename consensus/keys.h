// Ed25519 keys and signatures in Nix's text format.
//
//   secret key  "<name>:<base64 of 64 bytes: seed || public key>"   (nix key generate-secret)
//   public key  "<name>:<base64 of 32 bytes>"                        (nix key convert-secret-to-public)
//   signature   "<name>:<base64 of 64 bytes>"                        (narinfo Sig: lines)
//
// Key names follow ValidateKeyName. Value types; thread-safe. SecretKey zeroes
// its bytes on destruction and never prints itself.
#ifndef ATTEST_CONSENSUS_KEYS_H_
#define ATTEST_CONSENSUS_KEYS_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace attest::consensus {

// The one rule for key names, wherever a key is named: the policy's builder and maintainer keys,
// signatures, the builder lines of resolution statements and dispute records, the signers of
// signed notes, the pages. OK when `name` is 1..255 bytes with no ':' (Nix splits "<name>:<base64>"
// at the first ':' and takes anything before it) and is a word of displayed text
// (ValidateDisplayText with TextShape::kWord: valid UTF-8, no white space, since nix.conf separates
// trusted keys by white space, no control or bidirectional formatting characters). So '+', '.',
// '-', '_', '/', '=', '@' and non-ASCII letters are all fine. INVALID_ARGUMENT otherwise.
// Keys whose notes standard C2SP clients read (the node's own key) also need ValidateNoteKeyName.
absl::Status ValidateKeyName(std::string_view name);

struct Signature final {
  std::string key_name;
  std::array<uint8_t, 64> bytes{};

  // Parses "<name>:<base64 of 64 bytes>". INVALID_ARGUMENT on a missing name, bad base64 or a length
  // other than 64 bytes (the message gives the decoded length).
  static absl::StatusOr<Signature> Parse(std::string_view text);
  std::string ToString() const;  // "<name>:<base64>"

  friend bool operator==(const Signature&, const Signature&) = default;
};

class PublicKey final {
 public:
  // Parses "<name>:<base64 of 32 bytes>"; surrounding whitespace (a trailing newline) is ignored.
  static absl::StatusOr<PublicKey> Parse(std::string_view text);
  static absl::StatusOr<PublicKey> FromBytes(std::string_view name, std::span<const uint8_t> bytes);

  const std::string& name() const { return name_; }
  const std::array<uint8_t, 32>& bytes() const { return bytes_; }
  std::string ToString() const;  // "<name>:<base64>"

  // OK when `signature` is by this key (same name) over `message`. UNAUTHENTICATED when the name
  // differs or the signature does not verify.
  absl::Status Verify(std::string_view message, const Signature& signature) const;
  // Raw check without the name comparison (signed notes carry names of their own).
  bool VerifyBytes(std::string_view message, std::span<const uint8_t, 64> signature) const;

  friend bool operator==(const PublicKey&, const PublicKey&) = default;

 private:
  PublicKey() = default;
  std::string name_;
  std::array<uint8_t, 32> bytes_{};
};

class SecretKey final {
 public:
  // Parses "<name>:<base64 of 64 bytes>"; surrounding whitespace is ignored. INVALID_ARGUMENT when the
  // text is not a Nix secret key (a public key given by mistake gets its own message), or when the
  // embedded public half does not match the seed.
  static absl::StatusOr<SecretKey> Parse(std::string_view text);
  // Derives the key pair from a 32-byte seed (RFC 8032 secret key). Randomness is the caller's.
  static absl::StatusOr<SecretKey> FromSeed(std::string_view name, std::span<const uint8_t> seed);

  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  ~SecretKey();

  const std::string& name() const { return name_; }
  PublicKey public_key() const;
  Signature Sign(std::string_view message) const;
  // Raw detached signature (signed notes).
  std::array<uint8_t, 64> SignBytes(std::string_view message) const;
  // "<name>:<base64>", the key file's content. Only for writing key files.
  std::string ExportText() const;

 private:
  SecretKey() = default;
  std::string name_;
  std::array<uint8_t, 64> bytes_{};  // libsodium layout: seed || public key
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_KEYS_H_
