// The pusher's one pass and its parts, in the order a pass uses them: the spool lock and ledger, the
// scan for unattested paths, preparing (reading the Nix database, signing), the derivations offered to
// the nodes (their closures, MissingDerivations, SubmitDerivations), then the pass itself and the
// once/watch loops. It is long because a pass is one state machine over records and nodes that these
// parts share (per-node backoff, final failures, the report); the derivation part is the candidate
// to move into a file of its own if it grows.
#include "client/pusher.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/nar.h"
#include "client/nix_store_location.h"
#include "consensus/attestation.h"
#include "consensus/derivation.h"
#include "consensus/derivation_paths.h"
#include "consensus/encoding.h"
#include "consensus/realisation.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "proto/convert.h"
#include "client/nix_store_db.h"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;

constexpr std::string_view kLedgerName = ".attested";
constexpr std::string_view kLockName = ".push.lock";

std::string ErrnoText(int error) { return std::strerror(error); }

// "out" when the path is named like its derivation, "<output>" for "<drv name>-<output>", else empty.
std::string OutputNameFor(const consensus::StorePath& path, std::string_view drv_path) {
  absl::StatusOr<consensus::StorePath> drv = consensus::StorePath::Parse(drv_path);
  if (!drv.ok() || !drv->IsDerivation()) return "";
  std::string_view drv_name = drv->name();
  drv_name.remove_suffix(4);  // ".drv"
  const std::string_view name = path.name();
  if (name == drv_name) return "out";
  if (name.size() > drv_name.size() + 1 && name.starts_with(drv_name) && name[drv_name.size()] == '-') {
    return std::string(name.substr(drv_name.size() + 1));
  }
  return "";
}

// "node X: CODE: message", without naming the node twice when the node client already did.
std::string ErrorText(const std::string& node, const absl::Status& status) {
  const std::string code = absl::StatusCodeToString(status.code());
  if (node.empty()) return Cat("reading the Nix store: ", code, ": ", status.message());
  const std::string prefix = Cat("node ", node, ": ");
  if (consensus::StdView(status.message()).starts_with(prefix)) {
    return Cat(prefix, code, ": ", consensus::StdView(status.message()).substr(prefix.size()));
  }
  return Cat(prefix, code, ": ", status.message());
}

consensus::BuildKind BuildKindOf(const SpoolRecord& record) {
  if (record.build_kind == "rebuild") return consensus::BuildKind::kRebuild;
  if (record.build_kind == "check") return consensus::BuildKind::kCheck;
  return consensus::BuildKind::kFirstBuild;
}

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// How a record is named in outcomes: its path, or "<drv>^<output>" while the path is not known.
std::string RecordLabel(const SpoolRecord& record) {
  if (!record.store_path.empty()) return record.store_path;
  return Cat(record.drv_path, "^", record.output_name);
}

// The realisations Nix registered for the derivation outputs of records of one store.
struct FoundRealisations {
  std::map<std::string, NixRealisation> by_record;  // record id -> its realisation
  // record id -> why there is none: not registered, or the key could not be computed
  std::map<std::string, std::string> missing;
  // record id -> the output is floating content-addressed or deferred (a realisation is expected)
  std::set<std::string> floating;
};

// Reads `drv_path` and every input derivation it needs that `graph` lacks, from the store's files.
absl::Status LoadDerivationClosure(consensus::DerivationGraph& graph, const NixStoreLocation& location,
                                   const consensus::StorePath& drv_path) {
  std::vector<consensus::StorePath> to_read = {drv_path};
  while (!to_read.empty()) {
    consensus::StorePath path = std::move(to_read.back());
    to_read.pop_back();
    if (graph.Contains(path)) continue;
    absl::StatusOr<std::string> text =
        storage::ReadFileToString(location.PhysicalPath(path.full()), consensus::kMaxDerivationBytes);
    if (!text.ok()) {
      return absl::Status(text.status().code(), Cat("cannot read derivation ", path.full(), ": ",
                                                    text.status().message()));
    }
    absl::StatusOr<consensus::Derivation> drv = consensus::VerifyDerivationFile(path, *text);
    if (!drv.ok()) return drv.status();
    for (const consensus::DerivationInput& input : drv->input_derivations) {
      if (!graph.Contains(input.drv_path)) to_read.push_back(input.drv_path);
    }
    graph.Add(path, *std::move(drv));
  }
  return absl::OkStatus();
}

// Finds the realisation of each record's derivation output (see pusher.h). The outer status fails only
// when the database cannot be read.
absl::StatusOr<FoundRealisations> FindRealisations(NixStoreDb& db, const std::string& root,
                                                   const std::vector<const SpoolEntry*>& entries) {
  FoundRealisations found;
  std::vector<const SpoolEntry*> candidates;
  for (const SpoolEntry* entry : entries) {
    if (entry->record.drv_path.empty() || entry->record.output_name.empty()) continue;
    absl::StatusOr<consensus::StorePath> drv = consensus::StorePath::Parse(entry->record.drv_path);
    if (drv.ok() && drv->IsDerivation()) candidates.push_back(entry);
  }
  if (candidates.empty()) return found;
  const std::string none_here =
      Cat("Nix registered no realisation for it in the store at ", root,
          " (is the experimental feature ca-derivations enabled where it was built?)");
  absl::StatusOr<bool> any = db.HasRealisations();
  if (!any.ok()) return any.status();
  consensus::DerivationGraph graph;
  const NixStoreLocation location{.root = root, .uri = ""};
  std::vector<NixRealisationId> ids;
  std::vector<const SpoolEntry*> asked;
  for (const SpoolEntry* entry : candidates) {
    const SpoolRecord& record = entry->record;
    const consensus::StorePath drv_path = *consensus::StorePath::Parse(record.drv_path);
    if (absl::Status s = LoadDerivationClosure(graph, location, drv_path); !s.ok()) {
      found.missing[entry->id] = Cat("cannot compute its realisation key: ", s.message());
      continue;
    }
    const consensus::DerivationOutput* output = graph.Find(drv_path)->FindOutput(record.output_name);
    if (output == nullptr) {
      found.missing[entry->id] = Cat(record.drv_path, " has no output ", consensus::QuoteForError(record.output_name));
      continue;
    }
    if (output->kind() == consensus::DerivationOutput::Kind::kFloating ||
        output->kind() == consensus::DerivationOutput::Kind::kDeferred) {
      found.floating.insert(entry->id);
    }
    if (!*any) {
      found.missing[entry->id] = none_here;
      continue;
    }
    absl::StatusOr<consensus::Sha256Digest> hash = graph.RealisationHash(drv_path);
    if (!hash.ok()) {
      found.missing[entry->id] = Cat("cannot compute its realisation key: ", hash.status().message());
      continue;
    }
    ids.push_back(NixRealisationId{.drv_hash = consensus::HexEncode(*hash), .output_name = record.output_name});
    asked.push_back(entry);
  }
  if (ids.empty()) return found;
  absl::StatusOr<std::vector<std::optional<NixRealisation>>> rows = db.Realisations(ids);
  if (!rows.ok()) return rows.status();
  for (size_t i = 0; i < asked.size(); ++i) {
    if ((*rows)[i].has_value()) {
      found.by_record.emplace(asked[i]->id, *std::move((*rows)[i]));
    } else {
      found.missing[asked[i]->id] =
          Cat("no realisation sha256:", ids[i].drv_hash, "!", ids[i].output_name, ": ", none_here);
    }
  }
  return found;
}

v1::RealisationAttestation RealisationMessage(const consensus::RealisationAttestation& attestation,
                                              const std::string& public_key) {
  v1::RealisationAttestation message = proto::ToProto(attestation);
  message.set_public_key(public_key);
  return message;
}

// An exclusive flock on <spool>/.push.lock, held for the object's lifetime (and dropped by the kernel
// when the process dies, so a crashed pusher never blocks the next one).
class SpoolLock final {
 public:
  static absl::StatusOr<std::unique_ptr<SpoolLock>> TryAcquire(const std::string& dir) {
    const std::string path = Cat(dir, "/", kLockName);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          Cat("cannot open ", path, ": ", ErrnoText(errno), " (check the spool directory's owner and mode)"));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK) {
        return absl::UnavailableError(Cat("another `attest push` (perhaps the --watch service) is shipping the spool ",
                                          dir, " right now; it holds ", path));
      }
      return absl::FailedPreconditionError(Cat("cannot lock ", path, ": ", ErrnoText(error)));
    }
    return std::unique_ptr<SpoolLock>(new SpoolLock(fd));
  }
  ~SpoolLock() { ::close(fd_); }  // closing releases the lock
  SpoolLock(const SpoolLock&) = delete;
  SpoolLock& operator=(const SpoolLock&) = delete;

 private:
  explicit SpoolLock(int fd) : fd_(fd) {}
  int fd_;
};

// Waits for the lock until `give_up` (checking `stop`), sleeping through the clock.
absl::StatusOr<std::unique_ptr<SpoolLock>> AcquireLock(const std::string& dir, const PushClock& clock,
                                                       absl::Time give_up, const std::function<bool()>& stop,
                                                       absl::Duration poll) {
  for (;;) {
    absl::StatusOr<std::unique_ptr<SpoolLock>> lock = SpoolLock::TryAcquire(dir);
    if (lock.ok() || !absl::IsUnavailable(lock.status())) return lock;
    if ((stop && stop()) || clock.now() + poll > give_up) return lock.status();
    clock.sleep(poll);
  }
}

// The directory's modification time: it changes when a record is added, replaced or removed.
std::optional<std::pair<int64_t, int64_t>> DirStamp(const std::string& dir) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) return std::nullopt;
  return std::make_pair(static_cast<int64_t>(st.st_mtim.tv_sec), static_cast<int64_t>(st.st_mtim.tv_nsec));
}

// A whole record id as Spool::IdFor makes it ("<32 nix32>-<12 hex>"), so the fragment a crash may
// leave at the end of the ledger never reads as an id.
bool ValidLedgerId(std::string_view id) {
  constexpr size_t kHashLength = consensus::kStorePathHashLength;
  if (id.size() != kHashLength + 1 + 12 || id[kHashLength] != '-') return false;
  for (size_t i = 0; i < kHashLength; ++i) {
    if (consensus::kNix32Alphabet.find(id[i]) == std::string_view::npos) return false;
  }
  for (size_t i = kHashLength + 1; i < id.size(); ++i) {
    if (std::string_view("0123456789abcdef").find(id[i]) == std::string_view::npos) return false;
  }
  return true;
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(Cat("cannot open ", dir, " to sync it: ", ErrnoText(errno)));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return absl::UnavailableError(Cat("cannot sync ", dir, ": ", ErrnoText(error)));
  return absl::OkStatus();
}

}  // namespace

PushClock PushClock::Real() {
  return PushClock{.now = [] { return absl::Now(); }, .sleep = [](absl::Duration d) { absl::SleepFor(d); }};
}

bool IsRetryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted || code == absl::StatusCode::kAborted;
}

// ---------------------------------------------------------------------------------------------
// PushLedger

PushLedger::PushLedger(std::string spool_dir) : path_(Cat(spool_dir, "/", kLedgerName)) {}

absl::StatusOr<std::set<std::string>> PushLedger::Read() const {
  std::set<std::string> ids;
  // The ledger holds one line per record pushed since the spool was last emptied: bounded by memory,
  // like the spool it describes.
  absl::StatusOr<std::string> read = storage::ReadFileToString(path_, std::numeric_limits<size_t>::max());
  if (!read.ok()) {
    const absl::Status& status = read.status();
    if (absl::IsNotFound(status)) return ids;
    if (absl::IsPermissionDenied(status) || absl::IsFailedPrecondition(status)) {
      return absl::FailedPreconditionError(Cat("cannot read the push ledger ", status.message()));
    }
    return absl::UnavailableError(Cat("cannot read the push ledger ", status.message()));
  }
  const std::string& text = *read;
  // Only complete lines count: a line torn by a crash mid-append is ignored (its record was not
  // removed yet, since removal follows the fsync of the ledger).
  const size_t complete = text.rfind('\n');
  if (complete == std::string::npos) return ids;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), complete), '\n')) {
    if (ValidLedgerId(consensus::StdView(line))) ids.emplace(line);
  }
  return ids;
}

absl::Status PushLedger::Append(const std::vector<std::string>& ids) {
  if (ids.empty()) return absl::OkStatus();
  struct stat st{};
  const bool existed = ::stat(path_.c_str(), &st) == 0;
  const int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(Cat("cannot open the push ledger ", path_, ": ", ErrnoText(errno)));
  }
  std::string text;
  // After a torn append, start on a fresh line so the torn part stays one ignorable line.
  if (existed && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') text += '\n';
  }
  for (const std::string& id : ids) text += Cat(id, "\n");
  absl::Status status;
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::UnavailableError(Cat("cannot append to the push ledger ", path_, ": ", ErrnoText(errno)));
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (status.ok() && ::fsync(fd) != 0) {
    status = absl::UnavailableError(Cat("cannot sync the push ledger ", path_, ": ", ErrnoText(errno)));
  }
  ::close(fd);
  if (status.ok() && !existed) status = FsyncDir(path_.substr(0, path_.rfind('/')));
  return status;
}

// ---------------------------------------------------------------------------------------------
// Scan

absl::StatusOr<ScanReport> ScanForUnattested(Spool& spool, const std::string& store_root, absl::Time now) {
  absl::StatusOr<std::unique_ptr<NixStoreDb>> db = NixStoreDb::Open(store_root);
  if (!db.ok()) return db.status();
  absl::StatusOr<std::vector<NixBuiltPath>> built = (*db)->BuiltPaths();
  if (!built.ok()) return built.status();
  absl::StatusOr<std::set<std::string>> attested = PushLedger(spool.dir()).Read();
  if (!attested.ok()) return attested.status();
  absl::StatusOr<SpoolListing> listing = spool.List();
  if (!listing.ok()) return listing.status();
  std::set<std::string> spooled;
  for (const SpoolEntry& entry : listing->entries) spooled.insert(entry.id);

  ScanReport report;
  report.built = built->size();
  for (const NixBuiltPath& path : *built) {
    SpoolRecord record;
    record.store_path = path.path.full();
    record.store_root = (*db)->store_root();
    if (absl::StatusOr<consensus::StorePath> drv = consensus::StorePath::Parse(path.deriver);
        drv.ok() && drv->IsDerivation()) {
      record.drv_path = path.deriver;
      record.output_name = OutputNameFor(path.path, path.deriver);
    }
    record.queued_at_unix_ms = absl::ToUnixMillis(now);
    const std::string id = Spool::IdFor(record);
    if (attested->contains(id)) {
      ++report.already_attested;
      continue;
    }
    if (spooled.contains(id)) {
      ++report.already_spooled;
      continue;
    }
    absl::StatusOr<std::string> added = spool.Add(record);
    if (!added.ok()) return added.status();
    report.added.push_back(record.store_path);
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Pusher

Pusher::Pusher(Spool spool, consensus::SecretKey key, PushOptions options, NodeConnector connect, PushClock clock,
               std::function<void(std::string_view)> log)
    : spool_(std::move(spool)),
      key_(std::move(key)),
      public_key_(key_.public_key().ToString()),
      options_(std::move(options)),
      connect_(std::move(connect)),
      clock_(std::move(clock)),
      log_(std::move(log)),
      ledger_(spool_.dir()) {
  if (options_.batch_size == 0) options_.batch_size = 1;
}

absl::Duration Pusher::Backoff(const NodeState& state) const {
  absl::Duration wait = options_.initial_backoff;
  for (int i = 1; i < state.failures && wait < options_.max_backoff; ++i) wait *= 2;
  return std::min(wait, options_.max_backoff);
}

void Pusher::NoteNodeFailure(const std::string& node, const absl::Status& status, PassResult& result) {
  NodeState& state = nodes_[node];
  ++state.failures;
  const absl::Duration wait = Backoff(state);
  state.next_try = clock_.now() + wait;
  result.retryable_left = true;
  result.next_retry = std::min(result.next_retry, state.next_try);
  if (!log_) return;
  const std::string who = node.empty() ? "reading the Nix store" : Cat("node ", node);
  const std::string next = state.next_try < run_deadline_ ? Cat("retrying in ", absl::FormatDuration(wait))
                                                          : std::string("no time left to retry");
  if (state.failures == 1) {
    log_(Cat(ErrorText(node, status), "; ", next));
  } else {
    log_(Cat(who, ": still ", absl::StatusCodeToString(status.code()), "; ", next));
  }
}

void Pusher::Prepare(const std::vector<SpoolEntry>& entries, std::map<std::string, SignedRecord>& signed_by_id,
                     std::map<std::string, RecordDeriver>& derivers, std::vector<PushOutcome>& local,
                     PassResult& result) {
  const absl::Time now = clock_.now();
  absl::Status retry_later;  // a retryable failure to read the store (busy): one backoff for all records
  auto fail = [&](const SpoolEntry& entry, OutcomeKind kind, const absl::Status& status, std::string message) {
    local.push_back(PushOutcome{.record_id = entry.id,
                                .path = RecordLabel(entry.record),
                                .node = "",
                                .kind = kind,
                                .code = static_cast<int>(status.code()),
                                .message = std::move(message)});
    if (IsRetryable(status.code())) {
      retry_later = status;
    } else {
      final_until_[{entry.id, ""}] = now + options_.final_retry_interval;
    }
  };

  std::map<std::string, std::vector<const SpoolEntry*>> by_root;
  for (const SpoolEntry& entry : entries) by_root[entry.record.store_root].push_back(&entry);
  for (const auto& [root, all_root_entries] : by_root) {
    absl::StatusOr<std::unique_ptr<NixStoreDb>> db = NixStoreDb::Open(root);
    absl::StatusOr<FoundRealisations> found =
        db.ok() ? FindRealisations(**db, root, all_root_entries) : absl::StatusOr<FoundRealisations>(db.status());
    if (!found.ok()) {
      for (const SpoolEntry* entry : all_root_entries) {
        fail(*entry, OutcomeKind::kSkipped, found.status(), std::string(found.status().message()));
      }
      continue;
    }
    // The path of each record: its own, or its realisation's.
    std::vector<const SpoolEntry*> root_entries;
    std::vector<consensus::StorePath> paths;
    for (const SpoolEntry* entry : all_root_entries) {
      const auto realisation = found->by_record.find(entry->id);
      if (!entry->record.store_path.empty()) {
        paths.push_back(*consensus::StorePath::Parse(entry->record.store_path));
        if (realisation == found->by_record.end() && found->floating.contains(entry->id)) {
          result.report.realisation_notes.push_back(
              Cat(RecordLabel(entry->record), " (", entry->record.drv_path, "^", entry->record.output_name,
                  "): no realisation attested: ", found->missing[entry->id], "; its path attestation goes alone"));
        }
      } else if (realisation != found->by_record.end()) {
        paths.push_back(realisation->second.out_path);
      } else {
        const std::string record_file = Cat(spool_.dir(), "/", entry->id, ".json");
        fail(*entry, OutcomeKind::kSkipped, absl::NotFoundError("no realisation"),
             Cat("the output path of ", RecordLabel(entry->record), " is not known: ", found->missing[entry->id],
                 "; build it again with ca-derivations enabled, or delete ", record_file));
        continue;
      }
      root_entries.push_back(entry);
    }
    absl::StatusOr<std::vector<absl::StatusOr<NixStorePathInfo>>> infos = (*db)->PathInfos(paths);
    if (!infos.ok()) {
      for (const SpoolEntry* entry : root_entries) {
        fail(*entry, OutcomeKind::kSkipped, infos.status(), std::string(infos.status().message()));
      }
      continue;
    }
    const NixStoreLocation location{.root = root, .uri = ""};
    for (size_t i = 0; i < root_entries.size(); ++i) {
      const SpoolEntry& entry = *root_entries[i];
      const std::string record_file = Cat(spool_.dir(), "/", entry.id, ".json");
      const std::string& store_path = paths[i].full();
      const absl::StatusOr<NixStorePathInfo>& info = (*infos)[i];
      if (!info.ok()) {
        std::string message(info.status().message());
        if (absl::IsNotFound(info.status())) {
          message += Cat(": it cannot be attested from this store any more; build it again, or delete ", record_file);
        }
        fail(entry, OutcomeKind::kSkipped, info.status(), std::move(message));
        continue;
      }
      const consensus::BuildKind build_kind = BuildKindOf(entry.record);
      // A check rebuilt the path here and Nix compared the bytes, but Nix leaves a substituted path
      // without `ultimate` after a check (see the header).
      if (!info->ultimate && build_kind != consensus::BuildKind::kCheck) {
        fail(entry, OutcomeKind::kRefused, absl::FailedPreconditionError("not ultimate"),
             Cat("Nix's database at ", root, " does not mark ", store_path,
                 " as built here (not `ultimate`: it was substituted or copied): an attestation must come from "
                 "an independent rebuild; delete the path from the store and build it here (`nix-store --delete`, then "
                 "build), or delete ",
                 record_file));
        continue;
      }
      absl::StatusOr<consensus::PathInfo> claim = info->Claim();
      if (absl::IsFailedPrecondition(claim.status())) {
        // An old row without hash or size: hash the files, keep the references Nix found.
        absl::StatusOr<NarDigest> digest = HashNar(location.PhysicalPath(store_path));
        claim = digest.ok() ? consensus::PathInfo::Create(info->path, digest->hash, digest->size, info->references)
                            : absl::StatusOr<consensus::PathInfo>(digest.status());
      }
      if (!claim.ok()) {
        fail(entry, OutcomeKind::kSkipped, claim.status(),
             Cat("cannot make a claim for ", store_path, ": ", claim.status().message()));
        continue;
      }
      const std::string deriver = entry.record.drv_path.empty() ? info->deriver : entry.record.drv_path;
      consensus::BuildMetadata metadata{
          .deriver = deriver,
          .output_name =
              entry.record.output_name.empty() ? OutputNameFor(info->path, deriver) : entry.record.output_name,
          .system = options_.system,
          .build_kind = build_kind,
          .build_time_unix = info->registration_time,
      };
      // Metadata is informational; a claim is worth sending without the part that does not fit.
      if (!consensus::ValidateBuildMetadata(metadata).ok()) {
        metadata.output_name.clear();
        if (!consensus::ValidateBuildMetadata(metadata).ok()) {
          metadata = consensus::BuildMetadata();
          metadata.build_kind = build_kind;
        }
      }
      SignedRecord signed_record;
      signed_record.attestation = proto::ToProto(consensus::SignAttestation(*claim, key_, metadata));
      signed_record.attestation.set_public_key(public_key_);
      if (const auto found_realisation = found->by_record.find(entry.id);
          found_realisation != found->by_record.end()) {
        signed_record.realisations = SignRealisations(entry.record, found_realisation->second, metadata,
                                                      result.report.realisation_notes);
      }
      signed_by_id.emplace(entry.id, std::move(signed_record));
      if (absl::StatusOr<consensus::StorePath> drv = consensus::StorePath::Parse(deriver);
          drv.ok() && drv->IsDerivation()) {
        derivers.emplace(entry.id, RecordDeriver{.store_root = root, .drv_path = drv->full()});
      }
    }
  }
  if (!retry_later.ok()) NoteNodeFailure("", retry_later, result);
}

std::vector<v1::RealisationAttestation> Pusher::SignRealisations(const SpoolRecord& record,
                                                                 const NixRealisation& found,
                                                                 const consensus::BuildMetadata& path_metadata,
                                                                 std::vector<std::string>& notes) const {
  std::vector<v1::RealisationAttestation> messages;
  const consensus::StorePath drv_path = *consensus::StorePath::Parse(record.drv_path);
  consensus::BuildMetadata metadata = path_metadata;
  metadata.deriver = record.drv_path;
  metadata.output_name = record.output_name;
  std::vector<absl::StatusOr<consensus::Realisation>> claims;
  absl::StatusOr<consensus::RealisationKey> drv_hash_key =
      consensus::RealisationKey::FromDrvHash(found.drv_hash, found.output_name);
  claims.push_back(drv_hash_key.ok() ? consensus::Realisation::Create(*drv_hash_key, found.out_path, found.dependent)
                                     : absl::StatusOr<consensus::Realisation>(drv_hash_key.status()));
  absl::StatusOr<consensus::RealisationKey> build_trace_key =
      consensus::RealisationKey::FromDrvPath(drv_path, record.output_name);
  claims.push_back(build_trace_key.ok() ? consensus::Realisation::Create(*build_trace_key, found.out_path)
                                        : absl::StatusOr<consensus::Realisation>(build_trace_key.status()));
  for (const absl::StatusOr<consensus::Realisation>& claim : claims) {
    if (!claim.ok()) {
      notes.push_back(Cat(RecordLabel(record), ": a realisation of ", record.drv_path, "^", record.output_name,
                          " is not attested: ", claim.status().message()));
      continue;
    }
    consensus::BuildMetadata claim_metadata = metadata;
    if (!consensus::ValidateRealisationMetadata(*claim, claim_metadata).ok()) {
      claim_metadata = consensus::BuildMetadata();
      claim_metadata.build_kind = metadata.build_kind;
    }
    messages.push_back(RealisationMessage(consensus::SignRealisation(*claim, key_, claim_metadata), public_key_));
  }
  return messages;
}

// ---------------------------------------------------------------------------------------------
// Derivations

// The .drv references of derivations, read from the databases of the stores records name, and the
// closures they give. Each store's database is opened once; paths are read level by level, one
// snapshot per level, so a closure of thousands of derivations costs as many reads as it is deep.
class Pusher::DerivationClosures final {
 public:
  // Reads whatever `derivers` need that is not known yet.
  void Load(const std::set<RecordDeriver>& derivers) {
    std::map<std::string, std::vector<std::string>> by_root;
    for (const RecordDeriver& d : derivers) by_root[d.store_root].push_back(d.drv_path);
    for (auto& [root, start] : by_root) LoadRoot(root, std::move(start));
  }

  // Every .drv `deriver` needs, itself included, each after the inputs it uses (so a node that reads
  // them in order finds every input first). FAILED_PRECONDITION or the database's error when the
  // deriver or one of its inputs cannot be read from the store.
  absl::StatusOr<std::vector<std::string>> Closure(const RecordDeriver& deriver) const {
    if (const auto db = dbs_.find(deriver.store_root); db != dbs_.end() && !db->second.ok()) {
      return db->second.status();
    }
    const auto graph_it = graphs_.find(deriver.store_root);
    if (graph_it == graphs_.end()) return absl::InternalError("derivation closure asked before it was loaded");
    const std::map<std::string, Entry>& graph = graph_it->second;
    std::vector<std::string> order;
    std::set<std::string> seen{deriver.drv_path};
    // Iterative depth-first walk (nixpkgs' bootstrap chains are hundreds deep): a path is emitted once
    // all its inputs are.
    std::vector<std::pair<std::string, size_t>> stack{{deriver.drv_path, 0}};
    while (!stack.empty()) {
      auto& [path, next_input] = stack.back();
      const auto entry = graph.find(path);
      if (entry == graph.end()) return absl::InternalError(Cat("derivation ", path, " was not read"));
      if (!entry->second.status.ok()) {
        const absl::Status& status = entry->second.status;
        if (path == deriver.drv_path && absl::IsNotFound(status)) {
          return absl::FailedPreconditionError(
              Cat("it is not in the store at ", deriver.store_root,
                  " (garbage-collected? Nix keeps derivations with `keep-derivations = true`)"));
        }
        return absl::Status(status.code(), Cat(path == deriver.drv_path ? "" : Cat("its input ", path, ": "),
                                               status.message()));
      }
      if (next_input < entry->second.inputs.size()) {
        const std::string& input = entry->second.inputs[next_input++];
        if (seen.insert(input).second) stack.emplace_back(input, 0);
        continue;
      }
      order.push_back(path);
      stack.pop_back();
    }
    return order;
  }

 private:
  struct Entry {
    absl::Status status;               // why the path could not be read (NOT_FOUND: not in the store)
    std::vector<std::string> inputs;   // its .drv references, itself excluded
  };

  void LoadRoot(const std::string& root, std::vector<std::string> frontier) {
    auto db = dbs_.find(root);
    if (db == dbs_.end()) db = dbs_.emplace(root, NixStoreDb::Open(root)).first;
    if (!db->second.ok()) return;
    std::map<std::string, Entry>& graph = graphs_[root];
    std::erase_if(frontier, [&](const std::string& path) { return graph.contains(path); });
    std::set<std::string> queued(frontier.begin(), frontier.end());
    while (!frontier.empty()) {
      std::vector<consensus::StorePath> paths;
      for (const std::string& path : frontier) {
        // Derivers were parsed before they got here, and references come from Nix's database.
        absl::StatusOr<consensus::StorePath> parsed = consensus::StorePath::Parse(path);
        if (parsed.ok()) paths.push_back(*std::move(parsed));
      }
      absl::StatusOr<std::vector<absl::StatusOr<NixStorePathInfo>>> infos = (*db->second)->PathInfos(paths);
      std::vector<std::string> next;
      for (size_t i = 0; i < paths.size(); ++i) {
        Entry entry;
        if (!infos.ok()) {
          entry.status = infos.status();
        } else if (!(*infos)[i].ok()) {
          entry.status = (*infos)[i].status();
        } else {
          for (const consensus::StorePath& reference : (*infos)[i]->references) {
            if (!reference.IsDerivation() || reference == paths[i]) continue;
            entry.inputs.push_back(reference.full());
            if (!graph.contains(reference.full()) && queued.insert(reference.full()).second) {
              next.push_back(reference.full());
            }
          }
        }
        graph.insert_or_assign(paths[i].full(), std::move(entry));
      }
      frontier = std::move(next);
    }
  }

  std::map<std::string, absl::StatusOr<std::unique_ptr<NixStoreDb>>> dbs_;  // by store root
  std::map<std::string, std::map<std::string, Entry>> graphs_;              // store root -> .drv -> entry
};

void Pusher::SendDerivations(const std::string& node, NodeApi& api, const std::set<RecordDeriver>& derivers,
                             DerivationClosures& closures, absl::Time deadline, PushReport& report) {
  const DerivationLimits& limits = options_.derivation_limits;
  auto not_sent = [&](const RecordDeriver& d, std::string_view why) {
    return Cat("derivation ", d.drv_path, ": not sent to node ", node, ": ", why);
  };
  // An RPC failure. UNIMPLEMENTED is a node from before the Rebuilds service: nothing to tell.
  auto rpc_failed = [&](const absl::Status& status) {
    if (absl::IsUnimplemented(status)) return;
    report.derivation_errors.push_back(
        Cat(ErrorText(node, status), " (derivations not sent; the attestations are delivered)"));
  };
  auto out_of_time = [&] {
    if (stop_ != nullptr && (*stop_)()) return true;
    if (clock_.now() < deadline) return false;
    report.derivation_errors.push_back(Cat("node ", node, ": derivations not sent: gave up after ",
                                           absl::FormatDuration(options_.give_up_after)));
    return true;
  };

  closures.Load(derivers);
  // Held back until the node shows it takes derivations: an older node has no use for them.
  std::vector<std::string> closure_errors;
  std::vector<std::pair<const RecordDeriver*, std::vector<std::string>>> usable;
  std::vector<std::string> query;
  std::set<std::string> queried;
  for (const RecordDeriver& d : derivers) {
    absl::StatusOr<std::vector<std::string>> closure = closures.Closure(d);
    if (!closure.ok()) {
      closure_errors.push_back(not_sent(d, consensus::StdView(closure.status().message())));
      continue;
    }
    for (const std::string& path : *closure) {
      if (queried.insert(path).second) query.push_back(path);
    }
    usable.emplace_back(&d, *std::move(closure));
  }

  // Which of them the node lacks. With nothing to ask, an empty question still tells whether the
  // node would have taken them, and so whether the closure errors are worth reporting.
  std::set<std::string> missing;
  size_t start = 0;
  do {
    if (out_of_time()) return;
    v1::MissingDerivationsRequest request;
    const size_t end = std::min(query.size(), start + std::max<size_t>(1, limits.max_paths_per_query));
    for (size_t i = start; i < end; ++i) request.add_store_paths(query[i]);
    absl::StatusOr<v1::MissingDerivationsResponse> response = api.MissingDerivations(request);
    if (!response.ok()) {
      if (!absl::IsUnimplemented(response.status())) {
        report.derivation_errors.insert(report.derivation_errors.end(), closure_errors.begin(),
                                        closure_errors.end());
      }
      rpc_failed(response.status());
      return;
    }
    // Only what was asked: a confused node cannot make us read other files.
    for (const std::string& path : response->missing()) {
      if (queried.contains(path)) missing.insert(path);
    }
    start = end;
  } while (start < query.size());
  report.derivation_errors.insert(report.derivation_errors.end(), closure_errors.begin(), closure_errors.end());
  if (missing.empty()) return;

  // Each deriver's missing part, read and measured; one that cannot go whole does not go at all.
  std::map<std::string, std::string> contents;
  struct Part {
    std::vector<std::string> files;
    size_t bytes = 0;
  };
  std::vector<Part> parts;
  for (const auto& [d, closure] : usable) {
    Part part;
    std::string problem;
    const NixStoreLocation location{.root = d->store_root, .uri = ""};
    for (const std::string& path : closure) {
      if (!missing.contains(path)) continue;
      auto it = contents.find(path);
      if (it == contents.end()) {
        absl::StatusOr<std::string> read =
            storage::ReadFileToString(location.PhysicalPath(path), limits.max_file_bytes);
        if (!read.ok()) {
          problem = absl::IsResourceExhausted(read.status())
                        ? Cat(path == d->drv_path ? std::string("it") : Cat("its input ", path),
                              " is larger than the ", limits.max_file_bytes, " bytes a node takes per derivation")
                        : Cat("cannot read ", path, ": ", read.status().message());
          break;
        }
        it = contents.emplace(path, *std::move(read)).first;
      }
      part.files.push_back(path);
      part.bytes += it->second.size();
    }
    if (problem.empty() && part.files.size() > limits.max_files) {
      problem = Cat("the node lacks ", part.files.size(), " derivations of its closure, more than the ",
                    limits.max_files, " one request may hold");
    }
    if (problem.empty() && part.bytes > limits.max_request_bytes) {
      problem = Cat("the node lacks ", part.bytes, " bytes of derivations of its closure, more than the ",
                    limits.max_request_bytes, " one request may hold");
    }
    if (!problem.empty()) {
      report.derivation_errors.push_back(not_sent(*d, problem));
      continue;
    }
    if (!part.files.empty()) parts.push_back(std::move(part));
  }

  // Usually one request. A file already in an earlier request is not repeated: the node stored it
  // (durably, before answering) by the time the next request arrives.
  std::vector<std::vector<std::string>> requests;
  std::vector<std::string> current;
  size_t current_bytes = 0;
  std::set<std::string> placed;
  for (const Part& part : parts) {
    std::vector<std::string> add;
    size_t add_bytes = 0;
    for (const std::string& path : part.files) {
      if (placed.contains(path)) continue;
      add.push_back(path);
      add_bytes += contents.at(path).size();
    }
    if (!current.empty() &&
        (current.size() + add.size() > limits.max_files || current_bytes + add_bytes > limits.max_request_bytes)) {
      requests.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    for (std::string& path : add) {
      placed.insert(path);
      current.push_back(std::move(path));
    }
    current_bytes += add_bytes;
  }
  if (!current.empty()) requests.push_back(std::move(current));

  for (const std::vector<std::string>& files : requests) {
    if (out_of_time()) return;
    v1::SubmitDerivationsRequest request;
    for (const std::string& path : files) {
      v1::DerivationFile* file = request.add_derivations();
      file->set_store_path(path);
      file->set_contents(contents.at(path));
    }
    absl::StatusOr<v1::SubmitDerivationsResponse> response = api.SubmitDerivations(request);
    if (response.ok() && static_cast<size_t>(response->results_size()) != files.size()) {
      response = absl::InternalError(Cat("node ", node, " answered ", response->results_size(), " results for ",
                                         files.size(), " derivations (a bug in the node?)"));
    }
    if (!response.ok()) {
      rpc_failed(response.status());
      return;
    }
    report.derivations_sent += files.size();
    for (size_t i = 0; i < files.size(); ++i) {
      const v1::DerivationResult& r = response->results(static_cast<int>(i));
      if (r.outcome() == v1::DerivationResult::STORED) {
        ++report.derivations_stored;
      } else if (r.outcome() != v1::DerivationResult::ALREADY_PRESENT) {
        const auto code = r.code() == 0 ? absl::StatusCode::kUnknown : static_cast<absl::StatusCode>(r.code());
        report.derivation_errors.push_back(
            Cat("node ", node, ": derivation ", files[i], " rejected: ", absl::StatusCodeToString(code), ": ",
                r.message().empty() ? "without a reason" : r.message()));
      }
    }
  }
}

Pusher::PassResult Pusher::Pass(absl::Time deadline) {
  PassResult result;
  if (options_.nodes.empty()) {
    // Every record would count as acknowledged by all (no) nodes and be removed: refuse instead.
    result.report.fatal = absl::FailedPreconditionError("no nodes to push to: set `nodes` in the config or pass --node");
    return result;
  }
  absl::StatusOr<SpoolListing> listing = spool_.List();
  if (!listing.ok()) {
    result.report.fatal = listing.status();
    return result;
  }
  result.report.spool_errors = listing->errors;
  const absl::Time now = clock_.now();
  auto is_final = [&](const std::string& id, const std::string& node) {
    const auto it = final_until_.find({id, node});
    return it != final_until_.end() && it->second > now;
  };

  // What each record still needs, and from which nodes now.
  std::map<std::string, std::vector<std::string>> due_nodes;  // record id -> nodes to send to now
  std::vector<SpoolEntry> to_prepare;
  std::vector<const SpoolEntry*> complete;  // acknowledged by every node already (a crash before removal)
  for (const SpoolEntry& entry : listing->entries) {
    std::vector<std::string> missing;
    for (const std::string& node : options_.nodes) {
      if (!Contains(entry.record.acknowledged_by, node)) missing.push_back(node);
    }
    if (missing.empty()) {
      complete.push_back(&entry);
      continue;
    }
    if (is_final(entry.id, "")) continue;
    if (nodes_[""].next_try > now) {  // reading the store failed a moment ago: wait with everyone
      result.retryable_left = true;
      result.next_retry = std::min(result.next_retry, nodes_[""].next_try);
      continue;
    }
    std::vector<std::string> due;
    for (const std::string& node : missing) {
      if (is_final(entry.id, node)) continue;
      if (nodes_[node].next_try > now) {
        result.retryable_left = true;
        result.next_retry = std::min(result.next_retry, nodes_[node].next_try);
        continue;
      }
      due.push_back(node);
    }
    if (due.empty()) continue;
    due_nodes[entry.id] = std::move(due);
    to_prepare.push_back(entry);
  }

  std::map<std::string, SignedRecord> signed_by_id;
  std::map<std::string, RecordDeriver> derivers;
  std::vector<PushOutcome> outcomes;
  Prepare(to_prepare, signed_by_id, derivers, outcomes, result);
  DerivationClosures closures;  // shared by the nodes: each store's database is read once per pass

  // Per record: nodes that acknowledged in this pass, and the failures to note.
  std::map<std::string, std::vector<std::string>> new_acks;
  std::map<std::string, std::vector<std::string>> failures;
  for (const PushOutcome& o : outcomes) failures[o.record_id].push_back(o.message);

  for (const std::string& node : options_.nodes) {
    std::vector<std::pair<std::string, const SignedRecord*>> items;
    for (const SpoolEntry& entry : to_prepare) {
      const auto due = due_nodes.find(entry.id);
      const auto message = signed_by_id.find(entry.id);
      if (message == signed_by_id.end() || !Contains(due->second, node)) continue;
      items.emplace_back(entry.id, &message->second);
    }
    if (items.empty()) continue;
    const std::map<std::string, std::string> path_of = [&] {
      std::map<std::string, std::string> m;
      for (const auto& [id, message] : items) m[id] = message->attestation.path_info().store_path();
      return m;
    }();
    // `what`: the store path, or the key of a realisation.
    auto outcome_about = [&](const std::string& id, const std::string& what, OutcomeKind kind, int code,
                             std::string message) {
      outcomes.push_back(PushOutcome{.record_id = id, .path = what, .node = node, .kind = kind,
                                     .code = code, .message = std::move(message)});
    };
    auto outcome_for = [&](const std::string& id, OutcomeKind kind, int code, std::string message) {
      outcome_about(id, path_of.at(id), kind, code, std::move(message));
    };

    absl::Status node_failure;  // set once the node failed; the rest of its items are not sent
    bool stopped_here = false;  // node_failure is our own deadline or a stop request, not the node's
    bool node_answered = false;
    bool soft_failure = false;  // an item was refused with a retryable code
    std::set<RecordDeriver> acked_derivers;  // of the records this node acknowledged now
    std::unique_ptr<NodeApi> api;
    for (size_t start = 0; start < items.size(); start += options_.batch_size) {
      const size_t end = std::min(items.size(), start + options_.batch_size);
      const absl::Duration left = deadline - clock_.now();
      if (node_failure.ok() && stop_ != nullptr && (*stop_)()) {
        node_failure = absl::CancelledError("not sent: stopping (SIGTERM or SIGINT)");
        stopped_here = true;
      }
      if (node_failure.ok() && left <= absl::ZeroDuration()) {
        node_failure = absl::DeadlineExceededError(
            Cat("not sent: gave up after ", absl::FormatDuration(options_.give_up_after)));
        stopped_here = true;
      }
      if (node_failure.ok() && api == nullptr) {
        NodeOptions node_options{.address = node,
                                 .timeout = std::min(options_.rpc_timeout, left),
                                 .retry = RetryOptions{.max_attempts = 2,
                                                       .initial_backoff = absl::Milliseconds(100),
                                                       .max_backoff = absl::Seconds(1)}};
        absl::StatusOr<std::unique_ptr<NodeApi>> connected = connect_(node_options);
        if (connected.ok()) {
          api = *std::move(connected);
        } else {
          node_failure = connected.status();
        }
      }
      absl::StatusOr<v1::SubmitResponse> response =
          node_failure.ok() ? absl::StatusOr<v1::SubmitResponse>(absl::UnknownError("not sent")) : node_failure;
      v1::SubmitRequest request;
      std::vector<int> attestation_at;               // per item: its attestation's position in the request
      std::vector<std::vector<int>> realisations_at;  // per item: its realisations' positions
      if (node_failure.ok()) {
        // Two records may carry the same attestation (the resolved and the original .drv of a CA
        // derivation name one output path); the node takes each once, and both share its answer.
        request = v1::SubmitRequest();
        attestation_at.assign(end - start, 0);
        realisations_at.assign(end - start, {});
        std::map<std::string, int> sent_attestations;  // path + signature -> position in the request
        std::map<std::string, int> sent_realisations;  // fingerprint + signature -> position
        for (size_t i = start; i < end; ++i) {
          const v1::Attestation& a = items[i].second->attestation;
          const auto [it, fresh] =
              sent_attestations.try_emplace(Cat(a.path_info().store_path(), "\n", a.signature()),
                                            request.attestations_size());
          if (fresh) *request.add_attestations() = a;
          attestation_at[i - start] = it->second;
        }
        for (size_t i = start; i < end; ++i) {
          for (const v1::RealisationAttestation& r : items[i].second->realisations) {
            const auto [it, fresh] =
                sent_realisations.try_emplace(Cat(r.fingerprint(), "\n", r.signature()), request.realisations_size());
            if (fresh) *request.add_realisations() = r;
            realisations_at[i - start].push_back(it->second);
          }
        }
        response = api->Submit(request);
        const size_t asked = static_cast<size_t>(request.attestations_size() + request.realisations_size());
        if (response.ok() && static_cast<size_t>(response->results_size()) != asked) {
          response = absl::InternalError(
              Cat("node ", node, " answered ", response->results_size(), " results for ", request.attestations_size(),
                  " attestations and ", request.realisations_size(),
                  " realisations (a node from before realisations answers only the attestations: upgrade it)"));
        }
        if (!response.ok()) node_failure = response.status();
      }
      if (!response.ok()) {
        for (size_t i = start; i < end; ++i) {
          const std::string& id = items[i].first;
          outcome_for(id, OutcomeKind::kNotSent, static_cast<int>(node_failure.code()),
                      std::string(node_failure.message()));
          if (stopped_here) continue;  // nothing happened to the record: nothing to note in it
          failures[id].push_back(ErrorText(node, node_failure));
          if (!IsRetryable(node_failure.code())) final_until_[{id, node}] = now + options_.final_retry_interval;
        }
        continue;
      }
      node_answered = true;
      // One answer: its outcome noted; true when it acknowledges.
      auto take = [&](const std::string& id, const std::string& what, const v1::SubmitResult& r) {
        switch (r.outcome()) {
          case v1::SubmitResult::ACCEPTED:
          case v1::SubmitResult::ALREADY_PRESENT:
            outcome_about(id, what,
                          r.outcome() == v1::SubmitResult::ACCEPTED ? OutcomeKind::kAccepted
                                                                    : OutcomeKind::kAlreadyPresent,
                          0, "");
            return true;
          case v1::SubmitResult::OBSERVED: {
            const std::string message =
                Cat("the node stored it for observation only: key ", key_.name(),
                    " is not a builder key in its policy, so it does not count (add the key to the policy, then "
                    "push again)");
            outcome_about(id, what, OutcomeKind::kObserved, 0, message);
            failures[id].push_back(Cat("node ", node, ": ", message));
            final_until_[{id, node}] = now + options_.final_retry_interval;
            return false;
          }
          default: {
            // A rejection without a code is the node's bug; it is still a rejection.
            const auto code = r.code() == 0 ? absl::StatusCode::kUnknown : static_cast<absl::StatusCode>(r.code());
            std::string message = r.message().empty() ? "rejected without a reason" : r.message();
            outcome_about(id, what, OutcomeKind::kRejected, r.code(), message);
            failures[id].push_back(ErrorText(node, absl::Status(code, message)));
            if (IsRetryable(code)) {
              soft_failure = true;
            } else {
              final_until_[{id, node}] = now + options_.final_retry_interval;
            }
            return false;
          }
        }
      };
      const int realisations_from = request.attestations_size();  // their results follow the attestations'
      for (size_t i = start; i < end; ++i) {
        const std::string& id = items[i].first;
        bool acknowledged = take(id, path_of.at(id), response->results(attestation_at[i - start]));
        const std::vector<v1::RealisationAttestation>& realisations = items[i].second->realisations;
        for (size_t j = 0; j < realisations.size(); ++j) {
          absl::StatusOr<consensus::Realisation> claim =
              consensus::Realisation::ParseFingerprint(realisations[j].fingerprint());
          const std::string key = claim.ok() ? claim->key.ToString() : realisations[j].fingerprint();
          acknowledged =
              take(id, key, response->results(realisations_from + realisations_at[i - start][j])) && acknowledged;
        }
        if (acknowledged) {
          new_acks[id].push_back(node);
          if (const auto d = derivers.find(id); d != derivers.end()) acked_derivers.insert(d->second);
        }
      }
    }
    if (api != nullptr && !acked_derivers.empty()) {
      SendDerivations(node, *api, acked_derivers, closures, deadline, result.report);
    }
    if (stopped_here) {
      result.retryable_left = true;
      result.report.gave_up = true;
    } else if (!node_failure.ok() && IsRetryable(node_failure.code())) {
      NoteNodeFailure(node, node_failure, result);
    } else if (soft_failure) {
      NoteNodeFailure(node, absl::UnavailableError("some attestations were refused for now"), result);
    } else if (node_answered) {
      nodes_[node] = NodeState{};
    }
  }

  // Apply: note acknowledgements and failures; remove what every node has.
  std::vector<const SpoolEntry*> done = complete;
  std::vector<std::pair<const SpoolEntry*, SpoolRecord>> updates;
  for (const SpoolEntry& entry : listing->entries) {
    const auto acks = new_acks.find(entry.id);
    const auto failed = failures.find(entry.id);
    if (acks == new_acks.end() && failed == failures.end()) continue;
    SpoolRecord record = entry.record;
    if (acks != new_acks.end()) {
      for (const std::string& node : acks->second) {
        if (!Contains(record.acknowledged_by, node)) record.acknowledged_by.push_back(node);
      }
    }
    bool all = true;
    for (const std::string& node : options_.nodes) all = all && Contains(record.acknowledged_by, node);
    if (all) {
      done.push_back(&entry);
      continue;
    }
    // The latest failure stays until a newer one replaces it (or the record is delivered and removed).
    const std::string error = failed == failures.end() ? entry.record.last_error : absl::StrJoin(failed->second, "; ");
    // A node that stays down does not rewrite every record on every pass: only news is written.
    if (record.acknowledged_by == entry.record.acknowledged_by && error == entry.record.last_error) continue;
    if (!error.empty() && error != entry.record.last_error) ++record.attempts;
    record.last_error = error;
    updates.emplace_back(&entry, std::move(record));
  }
  for (const auto& [entry, record] : updates) {
    absl::Status s = spool_.Update(entry->id, record);
    if (!s.ok() && !absl::IsNotFound(s) && log_) log_(Cat("cannot note progress in the spool: ", s.message()));
  }
  if (!done.empty()) {
    std::vector<std::string> ids;
    for (const SpoolEntry* entry : done) ids.push_back(entry->id);
    // The ledger first: a crash between the two leaves a record that is sent again (idempotent), never
    // a removed record missing from the ledger.
    if (absl::Status s = ledger_.Append(ids); !s.ok()) {
      if (log_) log_(Cat(s.message(), "; the acknowledged records stay in the spool for now"));
      result.retryable_left = true;
      result.next_retry = std::min(result.next_retry, clock_.now() + options_.initial_backoff);
    } else {
      for (const SpoolEntry* entry : done) {
        if (absl::Status removed = spool_.Remove(entry->id); !removed.ok()) {
          if (log_) log_(Cat("cannot remove a delivered record: ", removed.message()));
          continue;
        }
        const auto signed_record = signed_by_id.find(entry->id);
        result.report.delivered.push_back(signed_record != signed_by_id.end()
                                              ? signed_record->second.attestation.path_info().store_path()
                                              : RecordLabel(entry->record));
      }
    }
  }
  result.report.outcomes = std::move(outcomes);
  return result;
}

PushReport Pusher::PushOnce() {
  const absl::Time deadline = clock_.now() + options_.give_up_after;
  run_deadline_ = deadline;
  PushReport report;
  absl::StatusOr<std::unique_ptr<SpoolLock>> lock =
      AcquireLock(spool_.dir(), clock_, deadline, {}, options_.poll_interval);
  if (!lock.ok()) {
    report.fatal = lock.status();
  } else {
    // (record, path or realisation key, node) -> position in outcomes
    std::map<std::tuple<std::string, std::string, std::string>, size_t> index;
    for (;;) {
      PassResult pass = Pass(deadline);
      for (PushOutcome& o : pass.report.outcomes) {
        const auto key = std::make_tuple(o.record_id, o.path, o.node);
        if (const auto it = index.find(key); it != index.end()) {
          report.outcomes[it->second] = std::move(o);
        } else {
          index.emplace(key, report.outcomes.size());
          report.outcomes.push_back(std::move(o));
        }
      }
      report.spool_errors = pass.report.spool_errors;
      report.delivered.insert(report.delivered.end(), pass.report.delivered.begin(), pass.report.delivered.end());
      report.derivations_sent += pass.report.derivations_sent;
      report.derivations_stored += pass.report.derivations_stored;
      report.derivation_errors.insert(report.derivation_errors.end(), pass.report.derivation_errors.begin(),
                                      pass.report.derivation_errors.end());
      for (std::string& note : pass.report.realisation_notes) {  // each pass finds the same ones again
        if (!Contains(report.realisation_notes, note)) report.realisation_notes.push_back(std::move(note));
      }
      if (!pass.report.fatal.ok()) {
        report.fatal = pass.report.fatal;
        break;
      }
      if (!pass.retryable_left) {
        report.gave_up = pass.report.gave_up;
        break;
      }
      const absl::Time now = clock_.now();
      const absl::Time wake = std::max(pass.next_retry, now);
      if (pass.report.gave_up || wake >= deadline) {
        report.gave_up = true;
        if (log_) {
          log_(Cat("giving up: nodes did not answer within the ", absl::FormatDuration(options_.give_up_after),
                   " a push may take; the records stay in the spool for the next `attest push`"));
        }
        break;
      }
      clock_.sleep(wake - now);
    }
  }
  absl::StatusOr<SpoolListing> after = spool_.List();
  if (after.ok()) {
    report.remaining = after->entries.size() + after->errors.size();
    report.spool_errors = after->errors;
  } else if (report.fatal.ok()) {
    report.fatal = after.status();
  }
  return report;
}

absl::Status Pusher::Watch(const std::function<bool()>& stop, const std::function<void(const PushReport&)>& on_pass) {
  absl::StatusOr<std::unique_ptr<SpoolLock>> lock =
      AcquireLock(spool_.dir(), clock_, absl::InfiniteFuture(), stop, options_.poll_interval);
  if (!lock.ok()) {
    if (stop()) return absl::OkStatus();
    return lock.status();
  }
  stop_ = &stop;
  run_deadline_ = absl::InfiniteFuture();
  // A full pass at least this often, in case a change to the directory went unnoticed (its mtime has
  // the kernel's clock-tick granularity).
  const absl::Duration rescan = options_.poll_interval * 30;
  absl::Status status;
  while (!stop()) {
    const auto stamp = DirStamp(spool_.dir());
    const absl::Time started = clock_.now();
    PassResult pass = Pass(absl::InfiniteFuture());
    if (!pass.report.fatal.ok()) {
      status = pass.report.fatal;
      break;
    }
    if (on_pass && (!pass.report.outcomes.empty() || !pass.report.delivered.empty() ||
                    !pass.report.spool_errors.empty())) {
      on_pass(pass.report);
    }
    absl::Time wake = std::min(pass.next_retry, started + rescan);
    for (const auto& [key, until] : final_until_) wake = std::min(wake, until);
    // Sleep until something may have changed: a record added (or our own writes: then one more pass
    // finds nothing to do and writes nothing), a backoff over, a final failure due for another try.
    while (!stop() && clock_.now() < wake && DirStamp(spool_.dir()) == stamp) {
      clock_.sleep(std::min(options_.poll_interval, wake - clock_.now()));
    }
  }
  stop_ = nullptr;
  return status;
}

}  // namespace attest::client
