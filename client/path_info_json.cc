#include "client/path_info_json.h"

#include "absl/status/status.h"
#include "consensus/nar_hash.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;

// A store path given either in full or as a base name.
absl::StatusOr<consensus::StorePath> ParseAnyStorePath(std::string_view text) {
  if (text.rfind('/', 0) == 0) return consensus::StorePath::Parse(text);
  return consensus::StorePath::ParseBaseName(text);
}

absl::StatusOr<consensus::NarHash> ParseNarHashJson(const json& value) {
  if (value.is_string()) return consensus::NarHash::Parse(value.get_ref<const std::string&>());
  if (!value.is_object()) return absl::InvalidArgumentError("narHash is neither a string nor an object");
  const auto algorithm = value.find("algorithm");
  const auto hash = value.find("hash");
  if (algorithm == value.end() || !algorithm->is_string() || hash == value.end() || !hash->is_string()) {
    return absl::InvalidArgumentError("structured narHash needs string fields \"algorithm\" and \"hash\"");
  }
  if (algorithm->get_ref<const std::string&>() != "sha256") {
    return absl::InvalidArgumentError(
        Cat("narHash algorithm '", algorithm->get_ref<const std::string&>(), "' is not sha256"));
  }
  const std::string& text = hash->get_ref<const std::string&>();
  if (text.rfind("sha256-", 0) == 0 || text.rfind("sha256:", 0) == 0) return consensus::NarHash::Parse(text);
  // base16, nix32 and base64 have different lengths for a SHA-256, so the length tells them apart.
  return consensus::NarHash::Parse("sha256:" + text);
}

absl::StatusOr<NixPathInfo> ParseEntry(const json& entry, const std::string* key_path) {
  if (!entry.is_object()) return absl::InvalidArgumentError("is not a JSON object");
  if (auto valid = entry.find("valid"); valid != entry.end() && valid->is_boolean() && !valid->get<bool>()) {
    return absl::InvalidArgumentError(
        "is not valid in the store (\"valid\": false); build or fetch it first");
  }
  std::string path_text;
  if (auto path = entry.find("path"); path != entry.end() && path->is_string()) {
    path_text = path->get<std::string>();
  } else if (key_path != nullptr) {
    path_text = *key_path;
  } else {
    return absl::InvalidArgumentError("has no \"path\" string");
  }
  auto path = ParseAnyStorePath(path_text);
  if (!path.ok()) return absl::InvalidArgumentError(Cat("path: ", path.status().message()));

  const auto nar_hash_field = entry.find("narHash");
  if (nar_hash_field == entry.end() || nar_hash_field->is_null()) {
    return absl::InvalidArgumentError("has no \"narHash\"");
  }
  auto nar_hash = ParseNarHashJson(*nar_hash_field);
  if (!nar_hash.ok()) return absl::InvalidArgumentError(Cat("narHash: ", nar_hash.status().message()));

  const auto nar_size = entry.find("narSize");
  if (nar_size == entry.end() || nar_size->is_null()) return absl::InvalidArgumentError("has no \"narSize\"");
  if (!nar_size->is_number_unsigned() && !(nar_size->is_number_integer() && nar_size->get<int64_t>() >= 0)) {
    return absl::InvalidArgumentError("\"narSize\" is not a non-negative integer");
  }

  std::vector<consensus::StorePath> references;
  if (auto refs = entry.find("references"); refs != entry.end() && !refs->is_null()) {
    if (!refs->is_array()) return absl::InvalidArgumentError("\"references\" is not a list");
    for (const json& ref : *refs) {
      if (!ref.is_string()) return absl::InvalidArgumentError("a reference is not a string");
      auto parsed = ParseAnyStorePath(ref.get_ref<const std::string&>());
      if (!parsed.ok()) return absl::InvalidArgumentError(Cat("reference: ", parsed.status().message()));
      references.push_back(*std::move(parsed));
    }
  } else {
    // Nix always prints the list (empty when there are none); a missing one is a truncated input, and
    // guessing "no references" would sign a different fingerprint from the one Nix has.
    return absl::InvalidArgumentError("has no \"references\" list");
  }

  auto claim =
      consensus::PathInfo::Create(*path, *nar_hash, nar_size->get<uint64_t>(), std::move(references));
  if (!claim.ok()) return claim.status();
  NixPathInfo info{.claim = *std::move(claim),
                   .deriver = std::nullopt,
                   .output_name = "",
                   .ultimate = false,
                   .registration_time = 0,
                   .signatures = {}};

  if (auto deriver = entry.find("deriver");
      deriver != entry.end() && deriver->is_string() && !deriver->get_ref<const std::string&>().empty()) {
    auto parsed = ParseAnyStorePath(deriver->get_ref<const std::string&>());
    if (!parsed.ok()) return absl::InvalidArgumentError(Cat("deriver: ", parsed.status().message()));
    if (!parsed->IsDerivation()) return absl::InvalidArgumentError("deriver is not a .drv store path");
    info.deriver = *std::move(parsed);
  }
  if (auto output = entry.find("outputName"); output != entry.end() && output->is_string()) {
    info.output_name = output->get<std::string>();
  } else if (info.deriver) {
    info.output_name = GuessOutputName(info.claim.path, *info.deriver);
  }
  if (auto ultimate = entry.find("ultimate"); ultimate != entry.end()) {
    if (!ultimate->is_boolean()) return absl::InvalidArgumentError("\"ultimate\" is not true or false");
    info.ultimate = ultimate->get<bool>();
  }
  if (auto time = entry.find("registrationTime"); time != entry.end() && time->is_number_integer()) {
    const int64_t t = time->get<int64_t>();
    info.registration_time = t > 0 ? t : 0;
  }
  if (auto sigs = entry.find("signatures"); sigs != entry.end() && sigs->is_array()) {
    for (const json& sig : *sigs) {
      if (sig.is_string()) {
        info.signatures.push_back(sig.get<std::string>());
      } else if (sig.is_object() && sig.contains("keyName") && sig.contains("sig") &&
                 sig["keyName"].is_string() && sig["sig"].is_string()) {
        // Nix 2.35 structured signatures.
        info.signatures.push_back(sig["keyName"].get<std::string>() + ":" + sig["sig"].get<std::string>());
      }
    }
  }
  return info;
}

absl::Status EntryError(size_t index, std::string_view path, const absl::Status& status) {
  return absl::InvalidArgumentError(Cat("path-info entry ", index + 1,
                                        path.empty() ? std::string() : Cat(" (", path, ")"), ": ",
                                        status.message()));
}

std::string PathOf(const json& entry) {
  if (entry.is_object()) {
    if (auto path = entry.find("path"); path != entry.end() && path->is_string())
      return path->get<std::string>();
  }
  return "";
}

}  // namespace

std::string GuessOutputName(const consensus::StorePath& output, const consensus::StorePath& deriver) {
  std::string_view drv_name = deriver.name();
  if (drv_name.size() <= 4 || drv_name.substr(drv_name.size() - 4) != ".drv") return "";
  drv_name.remove_suffix(4);
  const std::string_view name = output.name();
  if (name == drv_name) return "out";
  if (name.size() > drv_name.size() + 1 && name.substr(0, drv_name.size()) == drv_name &&
      name[drv_name.size()] == '-') {
    return std::string(name.substr(drv_name.size() + 1));
  }
  return "";
}

absl::StatusOr<std::vector<NixPathInfo>> ParsePathInfoJson(std::string_view text) {
  const json document = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    return absl::InvalidArgumentError(
        "input is not valid JSON (expected the output of `nix path-info --json`)");
  }
  std::vector<NixPathInfo> out;
  if (document.is_array()) {
    for (size_t i = 0; i < document.size(); ++i) {
      auto info = ParseEntry(document[i], nullptr);
      if (!info.ok()) return EntryError(i, PathOf(document[i]), info.status());
      out.push_back(*std::move(info));
    }
  } else if (document.is_object()) {
    size_t i = 0;
    for (auto it = document.begin(); it != document.end(); ++it, ++i) {
      if (it->is_null()) {
        return EntryError(i, it.key(),
                          absl::InvalidArgumentError("is not valid in the store (null); build or "
                                                     "fetch it first"));
      }
      auto info = ParseEntry(*it, &it.key());
      if (!info.ok()) return EntryError(i, it.key(), info.status());
      if (auto path = it->find("path");
          path != it->end() && path->is_string() && path->get_ref<const std::string&>() != it.key()) {
        auto key_path = ParseAnyStorePath(it.key());
        if (!key_path.ok() || *key_path != info->claim.path) {
          return EntryError(i, it.key(),
                            absl::InvalidArgumentError("its \"path\" field names another path than its key"));
        }
      }
      out.push_back(*std::move(info));
    }
  } else {
    return absl::InvalidArgumentError(
        "expected a JSON list (Nix before 2.19) or object (Nix 2.19 and later) from `nix path-info --json`");
  }
  return out;
}

}  // namespace attest::client
