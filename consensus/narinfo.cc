#include "consensus/narinfo.h"

#include <algorithm>

#include "absl/status/status.h"
#include "consensus/nar_hash.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {


absl::Status LineError(std::string_view source, size_t line, std::string_view what) {
  return absl::InvalidArgumentError(Cat(source, ":", line, ": ", what));
}

// Splits on spaces, dropping empty tokens (Nix's tokenizeString).
std::vector<std::string_view> Tokens(std::string_view value) {
  std::vector<std::string_view> tokens;
  size_t pos = 0;
  while (pos < value.size()) {
    const size_t space = value.find(' ', pos);
    const size_t end = space == std::string_view::npos ? value.size() : space;
    if (end > pos) tokens.push_back(value.substr(pos, end - pos));
    pos = end + 1;
  }
  return tokens;
}

}  // namespace

absl::StatusOr<NarInfo> ParseNarInfo(std::string_view text, std::string_view source) {
  std::optional<StorePath> store_path;
  std::optional<NarHash> nar_hash;
  std::optional<uint64_t> nar_size;
  std::optional<std::vector<StorePath>> references;
  std::string url, compression, file_hash, system, ca;
  std::optional<uint64_t> file_size;
  std::optional<StorePath> deriver;
  std::vector<std::string> signatures;

  if (text.empty()) return absl::InvalidArgumentError(Cat(source, ": empty narinfo"));
  size_t pos = 0;
  size_t line_number = 0;
  while (pos < text.size()) {
    ++line_number;
    const size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) {
      return LineError(source, line_number,
                       Cat("the last line ", QuoteForError(text.substr(pos)),
                           " does not end in a newline; every narinfo line must (Nix rejects the file as "
                           "corrupt otherwise)"));
    }
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') {
      return LineError(source, line_number, "the line ends in \\r\\n; narinfo lines end in \\n alone");
    }
    const size_t colon = line.find(':');
    // Nix takes the value from two characters after the colon, so exactly one space must be there.
    // ("Key:" with nothing after it is read as an empty value.)
    if (colon == std::string_view::npos || colon == 0 ||
        (colon + 1 < line.size() && line[colon + 1] != ' ')) {
      return LineError(source, line_number, Cat(QuoteForError(line), " is not a 'Key: Value' line"));
    }
    const std::string_view key = line.substr(0, colon);
    const std::string_view value = colon + 2 <= line.size() ? line.substr(colon + 2) : std::string_view();

    auto once = [&](bool already) -> absl::Status {
      if (already) return LineError(source, line_number, Cat("a second ", key, " line"));
      return absl::OkStatus();
    };

    if (key == "StorePath") {
      if (auto s = once(store_path.has_value()); !s.ok()) return s;
      auto parsed = StorePath::Parse(value);
      if (!parsed.ok()) return LineError(source, line_number, Cat("StorePath: ", parsed.status().message()));
      store_path = *std::move(parsed);
    } else if (key == "NarHash") {
      if (auto s = once(nar_hash.has_value()); !s.ok()) return s;
      auto parsed = NarHash::Parse(value);
      if (!parsed.ok()) return LineError(source, line_number, Cat("NarHash: ", parsed.status().message()));
      nar_hash = *parsed;
    } else if (key == "NarSize") {
      if (auto s = once(nar_size.has_value()); !s.ok()) return s;
      nar_size = ParseStrictDecimal(value);
      if (!nar_size) {
        return LineError(source, line_number,
                         Cat("NarSize ", QuoteForError(value), " is not a decimal number"));
      }
      if (*nar_size == 0)
        return LineError(source, line_number, "NarSize is 0 (Nix rejects the narinfo as corrupt)");
    } else if (key == "References") {
      if (auto s = once(references.has_value()); !s.ok()) return s;
      std::vector<StorePath> refs;
      for (std::string_view token : Tokens(value)) {
        auto ref = StorePath::ParseBaseName(token);
        if (!ref.ok()) return LineError(source, line_number, Cat("References: ", ref.status().message()));
        refs.push_back(*std::move(ref));
      }
      // Nix reads References into a set: a repeated name counts once, and the signature covers the set.
      std::sort(refs.begin(), refs.end());
      refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
      references = std::move(refs);
    } else if (key == "Deriver") {
      if (value != "unknown-deriver" && !value.empty()) {
        auto parsed = StorePath::ParseBaseName(value);
        if (!parsed.ok()) return LineError(source, line_number, Cat("Deriver: ", parsed.status().message()));
        if (!parsed->IsDerivation()) {
          return LineError(source, line_number, Cat("Deriver ", QuoteForError(value), " is not a .drv"));
        }
        deriver = *std::move(parsed);
      }
    } else if (key == "Sig") {
      signatures.emplace_back(value);
    } else if (key == "URL") {
      url = std::string(value);
    } else if (key == "Compression") {
      compression = std::string(value);
    } else if (key == "FileHash") {
      file_hash = std::string(value);
    } else if (key == "FileSize") {
      file_size = ParseStrictDecimal(value);
      if (!file_size) {
        return LineError(source, line_number,
                         Cat("FileSize ", QuoteForError(value), " is not a decimal number"));
      }
    } else if (key == "System") {
      system = std::string(value);
    } else if (key == "CA") {
      ca = std::string(value);
    }
    // Any other key is ignored, as Nix does.
  }
  if (!store_path) return absl::InvalidArgumentError(Cat(source, ": no StorePath line"));
  if (!nar_hash) return absl::InvalidArgumentError(Cat(source, ": no NarHash line"));
  if (!nar_size) return absl::InvalidArgumentError(Cat(source, ": no NarSize line"));
  auto claim =
      PathInfo::Create(*store_path, *nar_hash, *nar_size,
                                  references ? *std::move(references) : std::vector<StorePath>{});
  if (!claim.ok()) return absl::InvalidArgumentError(Cat(source, ": ", claim.status().message()));
  return NarInfo{
      .claim = *std::move(claim),
      .url = std::move(url),
      .compression = std::move(compression),
      .file_hash = std::move(file_hash),
      .file_size = file_size,
      .deriver = std::move(deriver),
      .system = std::move(system),
      .ca = std::move(ca),
      .signatures = std::move(signatures),
  };
}

std::vector<NarInfoSignature> ParseNarInfoSignatures(const NarInfo& narinfo) {
  std::vector<NarInfoSignature> out;
  for (const std::string& text : narinfo.signatures) {
    NarInfoSignature sig;
    sig.text = text;
    auto parsed = Signature::Parse(text);
    if (parsed.ok()) {
      sig.signature = *std::move(parsed);
    } else {
      sig.error = std::string(parsed.status().message());
    }
    out.push_back(std::move(sig));
  }
  return out;
}

NarInfoVerification VerifyNarInfo(const NarInfo& narinfo,
                                  std::span<const PublicKey> trusted_keys) {
  NarInfoVerification verification;
  const std::string fingerprint = narinfo.claim.Fingerprint();
  for (NarInfoSignature& sig : ParseNarInfoSignatures(narinfo)) {
    SignatureCheck check;
    if (!sig.signature) {
      check.result = SignatureCheck::Result::kMalformed;
      check.detail = sig.error;
      verification.checks.push_back(std::move(check));
      continue;
    }
    check.key_name = sig.signature->key_name;
    // As in Nix: the key is looked up by name; the first trusted key with that name is the one.
    const PublicKey* key = nullptr;
    for (const PublicKey& candidate : trusted_keys) {
      if (candidate.name() == check.key_name) {
        key = &candidate;
        break;
      }
    }
    if (key == nullptr) {
      check.result = SignatureCheck::Result::kUntrustedKey;
      check.detail = Cat("no trusted key is named '", check.key_name, "'");
    } else if (absl::Status s = key->Verify(fingerprint, *sig.signature); !s.ok()) {
      check.result = SignatureCheck::Result::kDoesNotVerify;
      check.detail = std::string(s.message());
    } else {
      check.result = SignatureCheck::Result::kValid;
      verification.valid_keys.push_back(check.key_name);
    }
    verification.checks.push_back(std::move(check));
  }
  std::sort(verification.valid_keys.begin(), verification.valid_keys.end());
  verification.valid_keys.erase(std::unique(verification.valid_keys.begin(), verification.valid_keys.end()),
                                verification.valid_keys.end());
  return verification;
}

}  // namespace attest::consensus
