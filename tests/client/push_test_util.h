// Fakes for in-process tests of `attest push` (pusher_test, push_command_test):
//   FakeNixStore  a Nix chroot store made without Nix: files under <root>/nix/store and a database at
//                 <root>/nix/var/nix/db/db.sqlite with the tables NixStoreDb reads, as Nix 2.8 creates
//                 them. Tests against real Nix live in tests/storage and tests/e2e.
//   FakePushNode  a node that verifies and stores attestations, and can be down, hang, reject, observe;
//                 FakePushNodes hands them out as a NodeConnector.
#ifndef ATTEST_TESTS_CLIENT_PUSH_TEST_UTIL_H_
#define ATTEST_TESTS_CLIENT_PUSH_TEST_UTIL_H_

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "client/nar.h"
#include "client/node_client.h"
#include "consensus/attestation.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "gtest/gtest.h"
#include "proto/convert.h"
#include "storage/sqlite.h"
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
    if (answer_too_few && response.results_size() > 0) response.mutable_results()->RemoveLast();
    return response;
  }

  Mode mode = Mode::kUp;
  absl::Status fail_rpc_with;                      // a whole-request failure, when not OK
  std::map<std::string, absl::Status> refuse;      // path -> per-item rejection
  bool answer_too_few = false;                     // a buggy node: one result missing
  std::function<void(absl::Duration)> advance_clock;  // kHanging: the test's clock
  std::map<std::string, consensus::Attestation> stored;  // by store path
  int calls = 0;
  std::vector<int> batch_sizes;

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
    absl::StatusOr<v1::StatusResponse> Status(const v1::StatusRequest&) override {
      return absl::UnimplementedError("not in this fake");
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

   private:
    FakePushNode* node_;
    absl::Duration timeout_;
  };
  std::map<std::string, std::unique_ptr<FakePushNode>> nodes_;
};

}  // namespace attest::testing

#endif  // ATTEST_TESTS_CLIENT_PUSH_TEST_UTIL_H_
