#include "client/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "consensus/encoding.h"
#include "consensus/sha256.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;
using storage::ScopedFd;
using nlohmann::json;

constexpr int kRecordVersion = 1;
constexpr std::string_view kRecordSuffix = ".json";
constexpr std::string_view kTempPrefix = ".tmp-";
// A record is a few hundred bytes; anything far larger is not ours and is not read into memory.
constexpr size_t kMaxRecordBytes = 1 << 20;

std::string ErrnoText(int error) { return std::strerror(error); }

// "/" stays "/", "/a/b//" becomes "/a/b", "" means the system store "/".
std::string NormaliseRoot(std::string_view root) {
  while (root.size() > 1 && root.back() == '/') root.remove_suffix(1);
  if (root.empty()) return "/";
  return std::string(root);
}

absl::Status ValidateId(std::string_view id) {
  if (id.empty() || id.front() == '.' || id.find('/') != std::string_view::npos ||
      id.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("spool record id ", consensus::QuoteForError(id), " is not a record id (ids come from List or Add)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRecord(const SpoolRecord& record) {
  if (record.store_path.empty()) {
    // A derivation output whose path is known only from its realisation (floating content-addressed).
    absl::StatusOr<consensus::StorePath> drv = consensus::StorePath::Parse(record.drv_path);
    if (!drv.ok() || !drv->IsDerivation() || record.output_name.empty()) {
      return absl::InvalidArgumentError(
          "spool record: an empty storePath needs a .drv drvPath and an outputName (the derivation output "
          "whose path its realisation names)");
    }
  } else if (absl::StatusOr<consensus::StorePath> path = consensus::StorePath::Parse(record.store_path);
             !path.ok()) {
    return absl::InvalidArgumentError(Cat("spool record: ", path.status().message()));
  }
  if (!record.drv_path.empty()) {
    if (absl::StatusOr<consensus::StorePath> drv = consensus::StorePath::Parse(record.drv_path); !drv.ok()) {
      return absl::InvalidArgumentError(Cat("spool record drvPath: ", drv.status().message()));
    }
  }
  if (!record.build_kind.empty() && record.build_kind != "rebuild" && record.build_kind != "check") {
    return absl::InvalidArgumentError(Cat("spool record buildKind ", consensus::QuoteForError(record.build_kind),
                                          " is not \"\", \"rebuild\" or \"check\""));
  }
  if (!record.store_root.empty() && record.store_root.front() != '/') {
    return absl::InvalidArgumentError(Cat("spool record storeRoot ", consensus::QuoteForError(record.store_root),
                                          " is not an absolute directory"));
  }
  return absl::OkStatus();
}

std::string Serialise(const SpoolRecord& record) {
  json document = {
      {"version", kRecordVersion},
      {"storePath", record.store_path},
      {"drvPath", record.drv_path},
      {"outputName", record.output_name},
      {"storeRoot", NormaliseRoot(record.store_root)},
      {"storeUri", record.store_uri},
      {"queuedAt", record.queued_at_unix_ms},
      {"acknowledgedBy", record.acknowledged_by},
      {"attempts", record.attempts},
      {"lastError", record.last_error},
  };
  if (!record.build_kind.empty()) document["buildKind"] = record.build_kind;
  // error_handler replace: a last_error quoting odd bytes must not make the record unwritable.
  return document.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace) + "\n";
}

absl::StatusOr<SpoolRecord> Deserialise(std::string_view text) {
  const json document = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) {
    return absl::DataLossError("not a JSON object (a torn or foreign file: inspect it, then delete it)");
  }
  const auto version = document.find("version");
  if (version == document.end() || !version->is_number_integer()) {
    return absl::DataLossError("no integer \"version\" field (not an attest spool record)");
  }
  if (version->get<int64_t>() != kRecordVersion) {
    return absl::FailedPreconditionError(Cat("record version ", version->get<int64_t>(),
                                             " is not supported by this attest (", kRecordVersion,
                                             "): use the attest that wrote it, or upgrade"));
  }
  SpoolRecord record;
  auto get_string = [&](const char* name, std::string& into, bool required) -> absl::Status {
    const auto it = document.find(name);
    if (it == document.end() || it->is_null()) {
      if (required) return absl::DataLossError(Cat("missing \"", name, "\""));
      return absl::OkStatus();
    }
    if (!it->is_string()) return absl::DataLossError(Cat("\"", name, "\" is not a string"));
    into = it->get<std::string>();
    return absl::OkStatus();
  };
  auto get_int = [&](const char* name, int64_t& into) -> absl::Status {
    const auto it = document.find(name);
    if (it == document.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number_integer()) return absl::DataLossError(Cat("\"", name, "\" is not an integer"));
    into = it->get<int64_t>();
    return absl::OkStatus();
  };
  for (absl::Status s : {get_string("storePath", record.store_path, true),
                         get_string("drvPath", record.drv_path, false),
                         get_string("outputName", record.output_name, false),
                         get_string("buildKind", record.build_kind, false),
                         get_string("storeRoot", record.store_root, false),
                         get_string("storeUri", record.store_uri, false),
                         get_string("lastError", record.last_error, false),
                         get_int("queuedAt", record.queued_at_unix_ms), get_int("attempts", record.attempts)}) {
    if (!s.ok()) return s;
  }
  record.store_root = NormaliseRoot(record.store_root);
  if (const auto acks = document.find("acknowledgedBy"); acks != document.end() && !acks->is_null()) {
    if (!acks->is_array()) return absl::DataLossError("\"acknowledgedBy\" is not a list");
    for (const json& ack : *acks) {
      if (!ack.is_string()) return absl::DataLossError("\"acknowledgedBy\" holds a non-string");
      record.acknowledged_by.push_back(ack.get<std::string>());
    }
  }
  if (absl::Status s = ValidateRecord(record); !s.ok()) return absl::DataLossError(s.message());
  return record;
}

absl::Status FsyncDir(const std::string& dir) {
  ScopedFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    return absl::UnavailableError(Cat("cannot open spool directory ", dir, " to sync it: ", ErrnoText(errno)));
  }
  if (::fsync(fd.get()) != 0) {
    return absl::UnavailableError(Cat("cannot sync spool directory ", dir, ": ", ErrnoText(errno),
                                      " (is the disk full or failing?)"));
  }
  return absl::OkStatus();
}

// A name no other writer uses at the same time: the pid is unique among live processes, the counter
// within this one.
std::string TempName(std::string_view id) {
  static std::atomic<uint64_t> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return Cat(kTempPrefix, id, "-", ::getpid(), "-", counter.fetch_add(1), "-", static_cast<int64_t>(now & 0xffffff));
}

// Writes `content` to <dir>/<temp name> and fsyncs it; returns the temp file's full path.
absl::StatusOr<std::string> WriteTemp(const std::string& dir, std::string_view id, std::string_view content) {
  const std::string path = Cat(dir, "/", TempName(id));
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    const int error = errno;
    const std::string what = Cat("cannot create ", path, ": ", ErrnoText(error));
    if (error == ENOSPC || error == EDQUOT) return absl::ResourceExhaustedError(Cat(what, " (free some space)"));
    if (error == EACCES || error == EPERM || error == EROFS) {
      return absl::FailedPreconditionError(Cat(what, " (check the spool directory's owner and mode)"));
    }
    return absl::UnavailableError(what);
  }
  absl::Status status;
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      status = (error == ENOSPC || error == EDQUOT)
                   ? absl::ResourceExhaustedError(Cat("cannot write ", path, ": ", ErrnoText(error), " (free some space)"))
                   : absl::UnavailableError(Cat("cannot write ", path, ": ", ErrnoText(error)));
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (status.ok() && ::fsync(fd.get()) != 0) {
    status = absl::UnavailableError(Cat("cannot sync ", path, ": ", ErrnoText(errno)));
  }
  if (fd.Close() != 0 && status.ok()) {
    status = absl::UnavailableError(Cat("cannot close ", path, ": ", ErrnoText(errno)));
  }
  if (!status.ok()) {
    ::unlink(path.c_str());
    return status;
  }
  return path;
}

// A record's bytes; errors leave the path out (List names the file).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  absl::StatusOr<std::string> text = storage::ReadFileToString(
      path, storage::ReadFileOptions{.max_bytes = kMaxRecordBytes,
                                     .symlinks = storage::Symlinks::kRefuse,
                                     .types = storage::FileTypes::kRegularOnly});
  if (text.ok()) return text;
  switch (text.status().code()) {
    case absl::StatusCode::kNotFound:
      return absl::NotFoundError("removed while reading");
    case absl::StatusCode::kFailedPrecondition:  // a directory, a symbolic link, a pipe
      return absl::DataLossError("not a regular file");
    case absl::StatusCode::kResourceExhausted:
      return absl::DataLossError(Cat("larger than ", kMaxRecordBytes, " bytes, too large for a spool record"));
    default:
      return absl::UnavailableError(text.status().message());
  }
}

}  // namespace

absl::StatusOr<SpoolRecord> ParseSpoolRecord(std::string_view text) { return Deserialise(text); }

std::string SerialiseSpoolRecord(const SpoolRecord& record) { return Serialise(record); }

absl::StatusOr<Spool> Spool::Open(std::string dir) {
  if (dir.empty()) return absl::FailedPreconditionError("no spool directory given (set `spool` in the config)");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        Cat("cannot create spool directory ", dir, ": ", ErrnoText(errno),
            " (create it, owned by the user Nix runs the hook as, or fix `spool` in the config)"));
  }
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(Cat("cannot stat spool directory ", dir, ": ", ErrnoText(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        Cat("spool ", dir, " is not a directory (point `spool` in the config at a directory)"));
  }
  return Spool(std::move(dir));
}

std::string Spool::IdFor(const SpoolRecord& record) {
  const std::string root = NormaliseRoot(record.store_root);
  const auto root_hash = consensus::Sha256(root);
  // 6 bytes of the root's hash tell the stores of one machine apart; the store path's hash part
  // (already unique per path) keeps ids readable and lets `ls` be matched against /nix/store.
  const std::string root_tag = consensus::HexEncode(std::span<const uint8_t>(root_hash.data(), 6));
  if (absl::StatusOr<consensus::StorePath> path = consensus::StorePath::Parse(record.store_path); path.ok()) {
    return Cat(path->hash_part(), "-", root_tag);
  }
  if (record.store_path.empty()) {
    // A derivation output with its path still unknown: the .drv's hash part and a tag of the store
    // root and output name, the same shape as a path's id (the ledger reads only that shape).
    if (absl::StatusOr<consensus::StorePath> drv = consensus::StorePath::Parse(record.drv_path); drv.ok()) {
      const auto tag_hash = consensus::Sha256(Cat(root, std::string_view("\0", 1), "output:", record.output_name));
      return Cat(drv->hash_part(), "-", consensus::HexEncode(std::span<const uint8_t>(tag_hash.data(), 6)));
    }
  }
  // Not a store path (Add refuses those); still a stable, file-name-safe id.
  const auto path_hash = consensus::Sha256(Cat(root, std::string_view("\0", 1), record.store_path));
  return Cat("invalid-", consensus::HexEncode(std::span<const uint8_t>(path_hash.data(), 16)), "-", root_tag);
}

absl::StatusOr<std::string> Spool::Add(const SpoolRecord& record) {
  if (absl::Status s = ValidateRecord(record); !s.ok()) return s;
  const std::string id = IdFor(record);
  const std::string final_path = Cat(dir_, "/", id, kRecordSuffix);
  absl::StatusOr<std::string> temp = WriteTemp(dir_, id, Serialise(record));
  if (!temp.ok()) return temp.status();
  // link() publishes the whole file under its final name only if that name is free: an existing
  // record (perhaps carrying acknowledgements) is never replaced by a fresh one.
  absl::Status status;
  if (::link(temp->c_str(), final_path.c_str()) != 0 && errno != EEXIST) {
    const int error = errno;
    status = absl::UnavailableError(Cat("cannot add spool record ", final_path, ": ", ErrnoText(error)));
  }
  ::unlink(temp->c_str());
  if (!status.ok()) return status;
  // Syncing the directory makes both the new name and the temp's removal durable; an existing
  // record may itself have been added a moment ago and not be synced yet, so sync in every case.
  if (absl::Status s = FsyncDir(dir_); !s.ok()) return s;
  return id;
}

absl::Status Spool::Update(std::string_view id, const SpoolRecord& record) {
  if (absl::Status s = ValidateId(id); !s.ok()) return s;
  if (absl::Status s = ValidateRecord(record); !s.ok()) return s;
  const std::string final_path = Cat(dir_, "/", id, kRecordSuffix);
  // Best effort against resurrecting a record someone removed meanwhile (the pusher is the only
  // remover, so this only matters when a person deletes a file by hand).
  struct stat st{};
  if (::stat(final_path.c_str(), &st) != 0 && errno == ENOENT) {
    return absl::NotFoundError(Cat("spool record ", final_path, " no longer exists"));
  }
  absl::Status replaced = storage::WriteFileAtomically(final_path, Serialise(record), 0600);
  switch (replaced.code()) {
    case absl::StatusCode::kOk:
      return replaced;
    case absl::StatusCode::kResourceExhausted:
      return absl::ResourceExhaustedError(Cat(replaced.message(), " (free some space)"));
    case absl::StatusCode::kFailedPrecondition:
      return absl::FailedPreconditionError(Cat(replaced.message(), " (check the spool directory's owner and mode)"));
    default:
      return absl::UnavailableError(Cat("cannot replace spool record ", final_path, ": ", replaced.message()));
  }
}

absl::Status Spool::Remove(std::string_view id) {
  if (absl::Status s = ValidateId(id); !s.ok()) return s;
  const std::string final_path = Cat(dir_, "/", id, kRecordSuffix);
  if (::unlink(final_path.c_str()) != 0) {
    const int error = errno;
    if (error != ENOENT) {
      return absl::UnavailableError(Cat("cannot remove spool record ", final_path, ": ", ErrnoText(error)));
    }
  }
  return FsyncDir(dir_);
}

absl::StatusOr<SpoolListing> Spool::List() const {
  DIR* dir = ::opendir(dir_.c_str());
  if (dir == nullptr) {
    return absl::FailedPreconditionError(Cat("cannot read spool directory ", dir_, ": ", ErrnoText(errno)));
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name.empty() || name.front() == '.') continue;  // ".", "..", temp files, the push ledger
    if (name.size() <= kRecordSuffix.size() || !name.ends_with(kRecordSuffix)) continue;
    names.emplace_back(name);
  }
  const int read_error = errno;
  ::closedir(dir);
  if (read_error != 0) {
    return absl::UnavailableError(Cat("cannot read spool directory ", dir_, ": ", ErrnoText(read_error)));
  }
  SpoolListing listing;
  for (const std::string& name : names) {
    absl::StatusOr<std::string> text = ReadSmallFile(Cat(dir_, "/", name));
    if (!text.ok()) {
      if (absl::IsNotFound(text.status())) continue;  // pushed and removed since readdir
      listing.errors.push_back(Cat(name, ": ", text.status().message()));
      continue;
    }
    absl::StatusOr<SpoolRecord> record = Deserialise(*text);
    if (!record.ok()) {
      listing.errors.push_back(Cat(name, ": ", record.status().message()));
      continue;
    }
    listing.entries.push_back(
        SpoolEntry{.id = name.substr(0, name.size() - kRecordSuffix.size()), .record = *std::move(record)});
  }
  std::sort(listing.entries.begin(), listing.entries.end(), [](const SpoolEntry& a, const SpoolEntry& b) {
    if (a.record.queued_at_unix_ms != b.record.queued_at_unix_ms) {
      return a.record.queued_at_unix_ms < b.record.queued_at_unix_ms;
    }
    return a.id < b.id;
  });
  std::sort(listing.errors.begin(), listing.errors.end());
  return listing;
}

}  // namespace attest::client
