#include "client/log_state.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "consensus/encoding.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;
using nlohmann::ordered_json;

// A checkpoint note is a few hundred bytes (a hundred cosignatures stay far below this); anything
// larger is not a state file.
constexpr size_t kMaxStateBytes = 1 << 20;

// What to do when the state file cannot be written where it should be.
constexpr std::string_view kWriteRemedy =
    " (check the directory's owner and mode, or pass --state FILE to keep it elsewhere)";

std::string ErrnoText(int error) { return std::strerror(error); }

absl::Status WriteError(std::string_view what, const std::string& path, int error) {
  const std::string message = Cat("cannot ", what, " ", path, ": ", ErrnoText(error));
  if (error == ENOSPC || error == EDQUOT) return absl::ResourceExhaustedError(Cat(message, " (free some space)"));
  if (error == EACCES || error == EPERM || error == EROFS || error == ENOTDIR) {
    return absl::FailedPreconditionError(Cat(message, kWriteRemedy));
  }
  return absl::UnavailableError(message);
}

std::string Parent(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p with mode 0700 for what it creates.
absl::Status MakeDirectories(const std::string& dir) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        Cat("cannot create the state directory ", dir, ": a file of that name is in the way"));
  }
  if (errno != ENOENT) return WriteError("stat", dir, errno);
  const std::string parent = Parent(dir);
  if (parent != dir) {
    if (absl::Status s = MakeDirectories(parent); !s.ok()) return s;
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return WriteError("create directory", dir, errno);
  return absl::OkStatus();
}

absl::StatusOr<const json*> Field(const json& object, std::string_view name, json::value_t type,
                                  std::string_view type_name) {
  const auto it = object.find(std::string(name));
  if (it == object.end()) return absl::DataLossError(Cat("\"", name, "\" is missing"));
  const bool ok = type == json::value_t::number_unsigned ? it->is_number_unsigned() : it->type() == type;
  if (!ok) return absl::DataLossError(Cat("\"", name, "\" is not ", type_name));
  return &*it;
}

}  // namespace

absl::StatusOr<LogState> MakeLogState(const consensus::PublicKey& node_key, std::string_view note) {
  absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(note, node_key);
  if (!checkpoint.ok()) return checkpoint.status();
  return LogState{.node_key = node_key, .checkpoint = *std::move(checkpoint), .note = std::string(note)};
}

std::string SerializeLogState(const LogState& state) {
  ordered_json document;
  document["version"] = kLogStateVersion;
  document["origin"] = state.checkpoint.origin;
  document["node_key"] = state.node_key.ToString();
  document["checkpoint"] = ordered_json{{"size", state.checkpoint.size},
                                        {"root", consensus::Base64Encode(state.checkpoint.root)},
                                        {"note", state.note}};
  return document.dump(2, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace) + "\n";
}

absl::StatusOr<LogState> ParseLogState(std::string_view text) {
  const json document = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return absl::DataLossError("not JSON");
  if (!document.is_object()) return absl::DataLossError("not a JSON object");

  auto version = Field(document, "version", json::value_t::number_unsigned, "a version number");
  if (!version.ok()) return version.status();
  if ((*version)->get<uint64_t>() != kLogStateVersion) {
    return absl::DataLossError(Cat("version ", (*version)->get<uint64_t>(), " is not ", kLogStateVersion,
                                   " (written by another attest version?)"));
  }
  auto origin = Field(document, "origin", json::value_t::string, "a string");
  if (!origin.ok()) return origin.status();
  auto key_text = Field(document, "node_key", json::value_t::string, "a string");
  if (!key_text.ok()) return key_text.status();
  auto checkpoint = Field(document, "checkpoint", json::value_t::object, "an object");
  if (!checkpoint.ok()) return checkpoint.status();
  auto size = Field(**checkpoint, "size", json::value_t::number_unsigned, "a tree size");
  if (!size.ok()) return size.status();
  auto root = Field(**checkpoint, "root", json::value_t::string, "a string");
  if (!root.ok()) return root.status();
  auto note = Field(**checkpoint, "note", json::value_t::string, "a string");
  if (!note.ok()) return note.status();

  absl::StatusOr<consensus::PublicKey> key = consensus::PublicKey::Parse((*key_text)->get<std::string>());
  if (!key.ok()) return absl::DataLossError(Cat("\"node_key\": ", key.status().message()));
  const std::string& origin_text = (*origin)->get_ref<const std::string&>();
  if (key->name() != origin_text) {
    return absl::DataLossError(Cat("\"node_key\" is named ", consensus::QuoteForError(key->name()),
                                   " but the log's origin is ", consensus::QuoteForError(origin_text),
                                   " (a node's log origin is its key's name)"));
  }
  absl::StatusOr<LogState> state = MakeLogState(*key, (*note)->get<std::string>());
  if (!state.ok()) {
    return absl::DataLossError(Cat("the remembered checkpoint does not verify with the pinned key: ",
                                   state.status().message()));
  }
  if (state->checkpoint.size != (*size)->get<uint64_t>()) {
    return absl::DataLossError(Cat("\"size\" is ", (*size)->get<uint64_t>(), " but the signed checkpoint's size is ",
                                   state->checkpoint.size));
  }
  if (consensus::Base64Encode(state->checkpoint.root) != (*root)->get_ref<const std::string&>()) {
    return absl::DataLossError(Cat("\"root\" is ", consensus::QuoteForError((*root)->get<std::string>()),
                                   " but the signed checkpoint's root is ",
                                   consensus::Base64Encode(state->checkpoint.root)));
  }
  return state;
}

std::string LogStateFileName(std::string_view origin) {
  std::string name(origin);
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return name + ".json";
}

absl::StatusOr<std::string> DefaultLogStatePath(std::string_view origin, const EnvLookup& env_var) {
  auto lookup = [&](std::string_view name) -> std::string {
    if (!env_var) return "";
    return env_var(name).value_or("");
  };
  const std::string file = Cat("attest/logs/", LogStateFileName(origin));
  // The XDG Base Directory spec says relative values are invalid and must be ignored.
  if (const std::string state_home = lookup("XDG_STATE_HOME"); !state_home.empty() && state_home[0] == '/') {
    return Cat(state_home, state_home.back() == '/' ? "" : "/", file);
  }
  if (const std::string home = lookup("HOME"); !home.empty() && home[0] == '/') {
    return Cat(home, home.back() == '/' ? "" : "/", ".local/state/", file);
  }
  return absl::FailedPreconditionError(
      "cannot tell where to keep the log's state: neither XDG_STATE_HOME nor HOME is set to an absolute "
      "directory (pass --state FILE)");
}

absl::StatusOr<std::optional<LogState>> LoadLogState(const std::string& path) {
  const std::string corrupt = Cat("the log state file ", path, " is corrupt: ");
  const std::string remedy =
      " (it is not trusted as it is; if you cannot restore it, move it away and run again with --node-key, "
      "which pins the key afresh)";
  absl::StatusOr<std::string> text = storage::ReadFileToString(
      path, storage::ReadFileOptions{.max_bytes = kMaxStateBytes, .types = storage::FileTypes::kRegularOnly});
  if (!text.ok()) {
    const absl::Status& status = text.status();
    switch (status.code()) {
      case absl::StatusCode::kNotFound:
        return std::nullopt;
      case absl::StatusCode::kPermissionDenied:
        return absl::PermissionDeniedError(Cat("cannot open the log state file ", status.message()));
      case absl::StatusCode::kFailedPrecondition:  // a directory, a pipe, a device
        return absl::DataLossError(Cat(corrupt, "not a regular file", remedy));
      case absl::StatusCode::kResourceExhausted:
        return absl::DataLossError(Cat(corrupt, "far too large for a state file", remedy));
      default:
        return absl::UnavailableError(Cat("cannot read the log state file ", status.message()));
    }
  }
  absl::StatusOr<LogState> state = ParseLogState(*text);
  if (!state.ok()) return absl::DataLossError(Cat(corrupt, state.status().message(), remedy));
  return std::optional<LogState>(*std::move(state));
}

absl::Status SaveLogState(const std::string& path, const LogState& state) {
  if (absl::Status s = MakeDirectories(Parent(path)); !s.ok()) return s;
  absl::Status saved = storage::WriteFileAtomically(path, SerializeLogState(state), 0600);
  switch (saved.code()) {
    case absl::StatusCode::kOk:
      return saved;
    case absl::StatusCode::kResourceExhausted:
      return absl::ResourceExhaustedError(Cat(saved.message(), " (free some space)"));
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
      return absl::FailedPreconditionError(Cat(saved.message(), kWriteRemedy));
    default:
      return saved;
  }
}

}  // namespace attest::client
