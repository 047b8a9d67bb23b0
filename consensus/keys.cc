#include "consensus/keys.h"

#include <sodium.h>

#include <algorithm>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "consensus/display_text.h"
#include "consensus/encoding.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

static_assert(crypto_sign_PUBLICKEYBYTES == 32);
static_assert(crypto_sign_SECRETKEYBYTES == 64);
static_assert(crypto_sign_BYTES == 64);
static_assert(crypto_sign_SEEDBYTES == 32);

constexpr size_t kMaxKeyNameLength = 255;

// libsodium must be initialised before use (it picks implementations at run time). sodium_init() is
// thread-safe and idempotent; the function-local static runs it once without a global constructor.
void EnsureSodium() {
  static const bool initialised = [] {
    // Fails only when the system cannot provide randomness; signing and verifying would still be
    // wrong to attempt, and there is no caller that could recover.
    if (sodium_init() < 0) std::abort();
    return true;
  }();
  (void)initialised;
}

struct NameAndPayload {
  std::string_view name;
  std::string_view payload;
};

// Splits "<name>:<base64>" at the first ':' as Nix does, and validates the name. `what` names the
// kind of text in messages; `shown` is what to quote (never a secret key).
absl::StatusOr<NameAndPayload> SplitNamed(std::string_view text, std::string_view what,
                                          std::string_view shown, std::string_view expected) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(what, " ", shown, " has no ':'; expected '", expected, "'"));
  }
  const std::string_view name = text.substr(0, colon);
  if (name.empty()) {
    return absl::InvalidArgumentError(
        Cat(what, " ", shown, " has an empty key name before ':'; expected '", expected, "'"));
  }
  if (absl::Status s = ValidateKeyName(name); !s.ok()) {
    return absl::InvalidArgumentError(Cat(what, " ", shown, ": ", s.message()));
  }
  return NameAndPayload{name, text.substr(colon + 1)};
}

}  // namespace

absl::Status ValidateKeyName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("key name is empty");
  if (name.size() > kMaxKeyNameLength) {
    return absl::InvalidArgumentError(Cat("key name ", QuoteForError(name), " has ", name.size(),
                                          " bytes; at most ", kMaxKeyNameLength, " are allowed"));
  }
  if (name.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("key name ", QuoteForError(name),
            " contains ':', which separates the name from the key in Nix's "
            "'<name>:<base64>' format; choose a name without ':'"));
  }
  // Names are shown on pages and terminals and separated by white space in nix.conf and in signature
  // lines; Nix itself takes any bytes before the first ':'.
  return ValidateDisplayText(name, TextShape::kWord, "key name");
}

// ---------------------------------------------------------------------------------------------
// Signature

absl::StatusOr<Signature> Signature::Parse(std::string_view text) {
  constexpr std::string_view kExpected = "<key name>:<base64 of 64 bytes>";
  auto parts = SplitNamed(text, "signature", QuoteForError(text), kExpected);
  if (!parts.ok()) return parts.status();
  auto bytes = Base64Decode(parts->payload);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(Cat("signature ", QuoteForError(text), " by key '",
                                          parts->name,
                                          "' is not valid base64: ", bytes.status().message()));
  }
  if (bytes->size() != 64) {
    return absl::InvalidArgumentError(
        Cat("signature ", QuoteForError(text), " by key '", parts->name, "' decodes to ",
            bytes->size(), " bytes; an Ed25519 signature has 64 (is the text truncated?)"));
  }
  Signature sig;
  sig.key_name = std::string(parts->name);
  std::copy(bytes->begin(), bytes->end(), sig.bytes.begin());
  return sig;
}

std::string Signature::ToString() const { return Cat(key_name, ":", Base64Encode(bytes)); }

// ---------------------------------------------------------------------------------------------
// PublicKey

absl::StatusOr<PublicKey> PublicKey::Parse(std::string_view text) {
  // Key files are often written with a trailing newline (or by `nix key` without one); accept both.
  const std::string_view trimmed = StdView(absl::StripAsciiWhitespace(AbslView(text)));
  constexpr std::string_view kExpected = "<key name>:<base64 of 32 bytes>";
  auto parts = SplitNamed(trimmed, "public key", QuoteForError(trimmed), kExpected);
  if (!parts.ok()) return parts.status();
  auto bytes = Base64Decode(parts->payload);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        Cat("public key '", parts->name, "' is not valid base64: ", bytes.status().message()));
  }
  if (bytes->size() == 64) {
    // Do not echo the text: it is very likely a secret key.
    sodium_memzero(bytes->data(), bytes->size());
    return absl::InvalidArgumentError(Cat(
        "public key '", parts->name,
        "' decodes to 64 bytes: this is a secret key, not a public key. Derive the public key with "
        "`nix key convert-secret-to-public < secret.key`, and keep the secret key private"));
  }
  if (bytes->size() != 32) {
    return absl::InvalidArgumentError(Cat("public key ", QuoteForError(trimmed), " decodes to ",
                                          bytes->size(), " bytes; an Ed25519 public key has 32"));
  }
  return FromBytes(parts->name, *bytes);
}

absl::StatusOr<PublicKey> PublicKey::FromBytes(std::string_view name,
                                               std::span<const uint8_t> bytes) {
  if (absl::Status s = ValidateKeyName(name); !s.ok()) return s;
  if (bytes.size() != 32) {
    return absl::InvalidArgumentError(
        Cat("public key '", name, "' has ", bytes.size(), " bytes; an Ed25519 public key has 32"));
  }
  PublicKey key;
  key.name_ = std::string(name);
  std::copy(bytes.begin(), bytes.end(), key.bytes_.begin());
  return key;
}

std::string PublicKey::ToString() const { return Cat(name_, ":", Base64Encode(bytes_)); }

absl::Status PublicKey::Verify(std::string_view message, const Signature& signature) const {
  // Nix looks keys up by name; a signature under another name is simply not by this key.
  if (signature.key_name != name_) {
    return absl::UnauthenticatedError(
        Cat("signature is by key '", signature.key_name, "', not by key '", name_, "'"));
  }
  if (!VerifyBytes(message, signature.bytes)) {
    return absl::UnauthenticatedError(
        Cat("signature by key '", name_,
            "' does not verify (the signed text differs, or the key is not the one that signed)"));
  }
  return absl::OkStatus();
}

bool PublicKey::VerifyBytes(std::string_view message,
                            std::span<const uint8_t, 64> signature) const {
  EnsureSodium();
  return crypto_sign_verify_detached(signature.data(),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), bytes_.data()) == 0;
}

// ---------------------------------------------------------------------------------------------
// SecretKey

absl::StatusOr<SecretKey> SecretKey::Parse(std::string_view text) {
  const std::string_view trimmed = StdView(absl::StripAsciiWhitespace(AbslView(text)));
  constexpr std::string_view kExpected = "<key name>:<base64 of 64 bytes>";
  // Never quote the text: it is (or is close to) secret.
  auto parts = SplitNamed(trimmed, "secret key", "text", kExpected);
  if (!parts.ok()) return parts.status();
  auto bytes = Base64Decode(parts->payload);
  if (!bytes.ok()) {
    // The decoder's message names the offending character and offset; drop it, it is key material.
    return absl::InvalidArgumentError(
        Cat("secret key '", parts->name,
            "' is not valid standard base64 (the key file is damaged; generate a new key with "
            "`nix key generate-secret --key-name ",
            parts->name, "`)"));
  }
  // Erase the decoded copy on every path out of this function.
  struct Wipe {
    std::vector<uint8_t>& v;
    ~Wipe() { sodium_memzero(v.data(), v.size()); }
  } wipe{*bytes};
  if (bytes->size() == 32) {
    return absl::InvalidArgumentError(
        Cat("secret key '", parts->name,
            "' decodes to 32 bytes: this is a public key, not a secret key. A Nix secret key is 64 "
            "bytes, as written by `nix key generate-secret --key-name ",
            parts->name, "`"));
  }
  if (bytes->size() != 64) {
    return absl::InvalidArgumentError(Cat("secret key '", parts->name, "' decodes to ",
                                          bytes->size(),
                                          " bytes; a Nix secret key has 64 (seed || public "
                                          "key)"));
  }
  auto key = FromSeed(parts->name, std::span<const uint8_t>(bytes->data(), 32));
  if (!key.ok()) return key.status();
  // The second half is redundant; a mismatch means the file was edited or corrupted, and signing
  // with it would make signatures that verify under neither half.
  if (sodium_memcmp(key->bytes_.data() + 32, bytes->data() + 32, 32) != 0) {
    return absl::InvalidArgumentError(
        Cat("secret key '", parts->name,
            "' is inconsistent: its public half does not belong to its seed (the key file is "
            "damaged; restore it from a backup or generate a new key)"));
  }
  return key;
}

absl::StatusOr<SecretKey> SecretKey::FromSeed(std::string_view name,
                                              std::span<const uint8_t> seed) {
  if (absl::Status s = ValidateKeyName(name); !s.ok()) return s;
  if (seed.size() != crypto_sign_SEEDBYTES) {
    return absl::InvalidArgumentError(
        Cat("Ed25519 seed for key '", name, "' has ", seed.size(), " bytes; expected 32"));
  }
  EnsureSodium();
  SecretKey key;
  key.name_ = std::string(name);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  if (crypto_sign_seed_keypair(pk, key.bytes_.data(), seed.data()) != 0) {
    return absl::InternalError("crypto_sign_seed_keypair failed");
  }
  return key;
}

SecretKey::SecretKey(SecretKey&& other) noexcept
    : name_(std::move(other.name_)), bytes_(other.bytes_) {
  sodium_memzero(other.bytes_.data(), other.bytes_.size());
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    name_ = std::move(other.name_);
    bytes_ = other.bytes_;
    sodium_memzero(other.bytes_.data(), other.bytes_.size());
  }
  return *this;
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

PublicKey SecretKey::public_key() const {
  // Cannot fail: the name was validated when this key was made, and the half is 32 bytes.
  return *PublicKey::FromBytes(name_, std::span<const uint8_t>(bytes_.data() + 32, 32));
}

Signature SecretKey::Sign(std::string_view message) const {
  Signature sig;
  sig.key_name = name_;
  sig.bytes = SignBytes(message);
  return sig;
}

std::array<uint8_t, 64> SecretKey::SignBytes(std::string_view message) const {
  EnsureSodium();
  std::array<uint8_t, 64> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), bytes_.data());
  return sig;
}

std::string SecretKey::ExportText() const { return Cat(name_, ":", Base64Encode(bytes_)); }

}  // namespace attest::consensus
