// Fakes for in-process tests of `attest push` (pusher_test, push_command_test):
//   FakeNixStore  a Nix chroot store made without Nix: files under <root>/nix/store and a database at
//                 <root>/nix/var/nix/db/db.sqlite with the tables NixStoreDb reads, as Nix 2.8 creates
//                 them. Tests against real Nix live in tests/storage and tests/e2e.
//   FakePushNode  a node that verifies and stores attestations (and realisations), and can be down, hang, reject, observe;
//                 with `takes_derivations`, it also answers MissingDerivations and SubmitDerivations,
//                 storing a .drv only when it parses and every input derivation it names is stored or
//                 in the same request (as a real node must, to check its output paths).
//                 FakePushNodes hands them out as a NodeConnector.
//   RealNix       Debian's real Nix (2.8), isolated as tests/e2e/nix_harness.cc does (a private
//                 NIX_CONF_DIR, no substituters, sandboxed builds), for chroot stores under a temp dir.
#ifndef ATTEST_TESTS_CLIENT_PUSH_TEST_UTIL_H_
#define ATTEST_TESTS_CLIENT_PUSH_TEST_UTIL_H_

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "client/nar.h"
#include "client/node_client.h"
#include "consensus/attestation.h"
#include "consensus/derivation.h"
#include "consensus/realisation.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "gtest/gtest.h"
#include "proto/convert.h"
#include "storage/sqlite.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {

class FakeNixStore final {
 public:
  explicit FakeNixStore(std::string root) : root_(std::move(root)) {
    std::filesystem::create_directories(root_ + "/nix/store");
    std::filesystem::create_directories(root_ + "/nix/var/nix/db");
    auto db = storage::sqlite::Connection::Open(db_path(), storage::sqlite::OpenMode::kReadWriteCreate,
                                                absl::Seconds(5));
    EXPECT_TRUE(db.ok()) << db.status();
    for (const char* sql : {
             "PRAGMA journal_mode = WAL",
             "CREATE TABLE ValidPaths (id integer primary key autoincrement not null, path text unique not null, "
             "hash text not null, registrationTime integer not null, deriver text, narSize integer, ultimate "
             "integer, sigs text, ca text)",
             "CREATE TABLE Refs (referrer integer not null, reference integer not null, primary key (referrer, "
             "reference), foreign key (referrer) references ValidPaths(id) on delete cascade, foreign key "
             "(reference) references ValidPaths(id) on delete restrict)",
         }) {
      // journal_mode answers with a row; QueryText consumes it.
      if (std::string_view(sql).starts_with("PRAGMA")) {
        EXPECT_TRUE((*db)->QueryText(sql, "wal").ok());
      } else {
        EXPECT_TRUE((*db)->Execute(sql, "schema").ok());
      }
    }
  }

  enum class Kind { kBuilt, kSubstituted };
  enum class Row { kComplete, kWithoutNarSize };

  // Writes a one-file store path with `content` and registers it with its real NAR hash and size.
  // Returns the full store path.
  std::string Add(const std::string& name, const std::string& content, Kind kind = Kind::kBuilt,
                  const std::vector<std::string>& references = {}, Row row = Row::kComplete) {
    const consensus::StorePath path = TestStorePath(name);
    const std::string file = root_ + path.full();
    WriteFileOrDie(file, content);
    auto digest = client::HashNar(file);
    EXPECT_TRUE(digest.ok()) << digest.status();
    const std::string deriver = TestStorePath(name + ".drv").full();
    auto db = Open();
    const std::string insert = consensus::Cat(
        "INSERT INTO ValidPaths(path, hash, registrationTime, deriver, narSize, ultimate) VALUES ('", path.full(),
        "', 'sha256:", digest->hash.ToHex(), "', ", ++time_, ", '", deriver, "', ",
        row == Row::kComplete ? std::to_string(digest->size) : "NULL", ", ", kind == Kind::kBuilt ? "1" : "NULL",
        ")");
    EXPECT_TRUE(db->Execute(insert, "insert path").ok());
    for (const std::string& reference : references) {
      EXPECT_TRUE(db->Execute(consensus::Cat("INSERT INTO Refs(referrer, reference) SELECT a.id, b.id FROM "
                                             "ValidPaths a, ValidPaths b WHERE a.path = '",
                                             path.full(), "' AND b.path = '", reference, "'"),
                              "insert reference")
                      .ok());
    }
    return path.full();
  }

  // Forgets a path (as `nix-store --delete` / garbage collection does).
  void Delete(const std::string& path) {
    auto db = Open();
    EXPECT_TRUE(db->Execute(consensus::Cat("DELETE FROM Refs WHERE referrer IN (SELECT id FROM ValidPaths WHERE "
                                           "path = '",
                                           path, "')"),
                            "delete refs")
                    .ok());
    EXPECT_TRUE(db->Execute(consensus::Cat("DELETE FROM ValidPaths WHERE path = '", path, "'"), "delete").ok());
    std::filesystem::remove(root_ + path);
  }

  const std::string& root() const { return root_; }
  std::string db_path() const { return root_ + "/nix/var/nix/db/db.sqlite"; }

 private:
  std::unique_ptr<storage::sqlite::Connection> Open() {
    auto db = storage::sqlite::Connection::Open(db_path(), storage::sqlite::OpenMode::kReadWrite, absl::Seconds(5));
    EXPECT_TRUE(db.ok()) << db.status();
    return *std::move(db);
  }

  std::string root_;
  int64_t time_ = 1700000000;
};

class FakePushNode final {
 public:
  enum class Mode {
    kUp,
    kDown,      // Submit fails UNAVAILABLE at once (connection refused)
    kHanging,   // Submit takes the whole deadline, then fails DEADLINE_EXCEEDED
    kObserving, // stores, but answers OBSERVED (the key is not in its policy)
  };
  explicit FakePushNode(consensus::PublicKey builder) : builder_(std::move(builder)) {}

  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request, absl::Duration timeout) {
    ++calls;
    batch_sizes.push_back(request.attestations_size());
    if (mode == Mode::kDown) return absl::UnavailableError("failed to connect to all addresses; connection refused");
    if (mode == Mode::kHanging) {
      if (advance_clock) advance_clock(timeout);
      return absl::DeadlineExceededError("Deadline Exceeded");
    }
    if (!fail_rpc_with.ok()) return fail_rpc_with;
    v1::SubmitResponse response;
    for (const v1::Attestation& message : request.attestations()) {
      v1::SubmitResult* result = response.add_results();
      auto attestation = proto::FromProto(message);
      if (!attestation.ok()) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
        result->set_message(std::string(attestation.status().message()));
        continue;
      }
      const std::string& path = message.path_info().store_path();
      if (const auto refusal = refuse.find(path); refusal != refuse.end()) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(static_cast<int>(refusal->second.code()));
        result->set_message(std::string(refusal->second.message()));
        continue;
      }
      if (!consensus::VerifyAttestation(*attestation, builder_).ok()) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(static_cast<int>(absl::StatusCode::kUnauthenticated));
        result->set_message("key " + attestation->key_name() + " is not a builder key in the policy");
        continue;
      }
      const bool present = stored.contains(path);
      stored.insert_or_assign(path, *attestation);
      result->set_outcome(mode == Mode::kObserving ? v1::SubmitResult::OBSERVED
                          : present                ? v1::SubmitResult::ALREADY_PRESENT
                                                   : v1::SubmitResult::ACCEPTED);
    }
    // Realisations: checked and stored like attestations (results after the attestations', in order).
    for (const v1::RealisationAttestation& message : request.realisations()) {
      v1::SubmitResult* result = response.add_results();
      auto claim = consensus::Realisation::ParseFingerprint(message.fingerprint());
      auto signature = consensus::Signature::Parse(message.signature());
      auto metadata = proto::FromProto(message.metadata());
      if (!claim.ok() || !signature.ok() || !metadata.ok()) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
        result->set_message("malformed realisation");
        continue;
      }
      consensus::RealisationAttestation attestation{*claim, *signature, *metadata};
      if (!consensus::VerifyRealisation(attestation, builder_).ok()) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(static_cast<int>(absl::StatusCode::kUnauthenticated));
        result->set_message("key " + attestation.key_name() + " is not a builder key in the policy");
        continue;
      }
      const std::string key = claim->key.ToString();
      const bool present = stored_realisations.contains(key);
      stored_realisations.insert_or_assign(key, attestation);
      result->set_outcome(present ? v1::SubmitResult::ALREADY_PRESENT : v1::SubmitResult::ACCEPTED);
    }
    if (answer_too_few && response.results_size() > 0) response.mutable_results()->RemoveLast();
    return response;
  }

  absl::StatusOr<v1::MissingDerivationsResponse> MissingDerivations(const v1::MissingDerivationsRequest& request) {
    missing_requests.push_back(request);
    if (!takes_derivations) return absl::UnimplementedError("unknown service attest.v1.Rebuilds");
    if (!fail_derivations_with.ok()) return fail_derivations_with;
    v1::MissingDerivationsResponse response;
    for (const std::string& path : request.store_paths()) {
      if (!derivations.contains(path)) response.add_missing(path);
    }
    return response;
  }

  absl::StatusOr<v1::SubmitDerivationsResponse> SubmitDerivations(const v1::SubmitDerivationsRequest& request) {
    derivation_requests.push_back(request);
    if (!takes_derivations) return absl::UnimplementedError("unknown service attest.v1.Rebuilds");
    if (!fail_derivations_with.ok()) return fail_derivations_with;
    std::set<std::string> in_request;
    for (const v1::DerivationFile& file : request.derivations()) in_request.insert(file.store_path());
    v1::SubmitDerivationsResponse response;
    for (const v1::DerivationFile& file : request.derivations()) {
      v1::DerivationResult* result = response.add_results();
      auto reject = [&](absl::StatusCode code, const std::string& message) {
        result->set_outcome(v1::DerivationResult::REJECTED);
        result->set_code(static_cast<int>(code));
        result->set_message(message);
      };
      if (const auto refusal = refuse_derivations.find(file.store_path()); refusal != refuse_derivations.end()) {
        reject(refusal->second.code(), std::string(refusal->second.message()));
        continue;
      }
      auto parsed = consensus::ParseDerivation(file.contents(), file.store_path());
      if (!parsed.ok()) {
        reject(absl::StatusCode::kInvalidArgument, std::string(parsed.status().message()));
        continue;
      }
      std::string lacking;
      for (const consensus::DerivationInput& input : parsed->input_derivations) {
        if (!derivations.contains(input.drv_path.full()) && !in_request.contains(input.drv_path.full())) {
          lacking = input.drv_path.full();
        }
      }
      if (!lacking.empty()) {
        reject(absl::StatusCode::kFailedPrecondition, "input derivation " + lacking + " is neither stored nor sent");
        continue;
      }
      const bool present = derivations.contains(file.store_path());
      derivations.insert_or_assign(file.store_path(), file.contents());
      result->set_outcome(present ? v1::DerivationResult::ALREADY_PRESENT : v1::DerivationResult::STORED);
    }
    return response;
  }

  Mode mode = Mode::kUp;
  absl::Status fail_rpc_with;                      // a whole-request failure, when not OK
  std::map<std::string, absl::Status> refuse;      // path -> per-item rejection
  bool answer_too_few = false;                     // a buggy node: one result missing
  std::function<void(absl::Duration)> advance_clock;  // kHanging: the test's clock
  std::map<std::string, consensus::Attestation> stored;  // by store path
  std::map<std::string, consensus::RealisationAttestation> stored_realisations;  // by key (canonical text)
  std::map<std::string, v1::PathStatus> statuses;  // Status answers by path or key
  int calls = 0;
  std::vector<int> batch_sizes;
  // Derivations: answered only when `takes_derivations` (else UNIMPLEMENTED, as an older node).
  bool takes_derivations = false;
  absl::Status fail_derivations_with;                        // both RPCs fail so, when not OK
  std::map<std::string, absl::Status> refuse_derivations;   // .drv path -> per-file rejection
  std::map<std::string, std::string> derivations;           // stored: .drv path -> contents
  std::vector<v1::MissingDerivationsRequest> missing_requests;
  std::vector<v1::SubmitDerivationsRequest> derivation_requests;

 private:
  consensus::PublicKey builder_;
};

// A NodeConnector over FakePushNodes by address; unknown addresses are unreachable nodes.
class FakePushNodes final {
 public:
  FakePushNode& Add(const std::string& address, const consensus::PublicKey& builder) {
    return *nodes_.emplace(address, std::make_unique<FakePushNode>(builder)).first->second;
  }
  FakePushNode& at(const std::string& address) { return *nodes_.at(address); }

  client::NodeConnector Connector() {
    return [this](const client::NodeOptions& options) -> absl::StatusOr<std::unique_ptr<client::NodeApi>> {
      connects.push_back(options);
      const auto it = nodes_.find(options.address);
      return std::unique_ptr<client::NodeApi>(
          new Api(it == nodes_.end() ? nullptr : it->second.get(), options.timeout));
    };
  }
  std::vector<client::NodeOptions> connects;

 private:
  class Api final : public client::NodeApi {
   public:
    Api(FakePushNode* node, absl::Duration timeout) : node_(node), timeout_(timeout) {}
    absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request) override {
      if (node_ == nullptr) return absl::UnavailableError("DNS resolution failed");
      return node_->Submit(request, timeout_);
    }
    // Answers from FakePushNode::statuses (UNKNOWN for anything else).
    absl::StatusOr<v1::StatusResponse> Status(const v1::StatusRequest& request) override {
      if (node_ == nullptr) return absl::UnavailableError("DNS resolution failed");
      v1::StatusResponse response;
      for (const std::string& path : request.store_paths()) {
        const auto it = node_->statuses.find(path);
        v1::PathStatus* status = response.add_statuses();
        if (it != node_->statuses.end()) {
          *status = it->second;
        } else {
          status->set_store_path(path);
          status->set_verdict(v1::UNKNOWN);
        }
      }
      return response;
    }
    absl::StatusOr<v1::ListDisputesResponse> ListDisputes(const v1::ListDisputesRequest&) override {
      return absl::UnimplementedError("not in this fake");
    }
    absl::StatusOr<v1::Dispute> GetDispute(const v1::GetDisputeRequest&) override {
      return absl::UnimplementedError("not in this fake");
    }
    absl::StatusOr<v1::PolicyInfo> GetPolicy(const v1::GetPolicyRequest&) override {
      return absl::UnimplementedError("not in this fake");
    }
    absl::StatusOr<v1::MissingDerivationsResponse> MissingDerivations(
        const v1::MissingDerivationsRequest& request) override {
      if (node_ == nullptr) return absl::UnavailableError("DNS resolution failed");
      return node_->MissingDerivations(request);
    }
    absl::StatusOr<v1::SubmitDerivationsResponse> SubmitDerivations(
        const v1::SubmitDerivationsRequest& request) override {
      if (node_ == nullptr) return absl::UnavailableError("DNS resolution failed");
      return node_->SubmitDerivations(request);
    }

   private:
    FakePushNode* node_;
    absl::Duration timeout_;
  };
  std::map<std::string, std::unique_ptr<FakePushNode>> nodes_;
};

class RealNix final {
 public:
  // Writes <dir>/etc/nix.conf and creates the cache, home and temp dirs Nix is pointed at.
  explicit RealNix(std::string dir) : dir_(std::move(dir)) {
    for (const char* sub : {"etc", "xdg-cache", "home", "tmp"}) std::filesystem::create_directories(dir_ + "/" + sub);
    WriteFileOrDie(dir_ + "/etc/nix.conf",
                   "experimental-features = nix-command\n"
                   "substituters =\n"
                   "build-users-group =\n"
                   "sandbox = true\n"
                   "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
  }

  // Runs a Nix program (argv[0]: nix-build, nix-instantiate, ...) with the isolated environment.
  RunResult Nix(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"env"};
    for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR"}) {
      argv.insert(argv.end(), {"-u", var});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv, "", std::chrono::seconds(300),
               {{"NIX_CONF_DIR", dir_ + "/etc"},
                {"XDG_CACHE_HOME", dir_ + "/xdg-cache"},
                {"HOME", dir_ + "/home"},
                {"TMPDIR", dir_ + "/tmp"}});
  }

  // The first line Nix printed on success; "" with a test failure otherwise.
  std::string Line(const std::vector<std::string>& args) const {
    RunResult result = Nix(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    if (result.exit_code != 0) return "";
    const std::string out(absl::StripTrailingAsciiWhitespace(result.out));
    return out.substr(0, out.find('\n'));
  }

 private:
  std::string dir_;
};

}  // namespace attest::testing

#endif  // ATTEST_TESTS_CLIENT_PUSH_TEST_UTIL_H_
