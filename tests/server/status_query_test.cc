// server/status_query and server/dispute_view without a server, on MemoryAttestationStore.
#include "consensus/text.h"
#include "server/status_query.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/dispute.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/convert.h"
#include "server/dispute_messages.h"
#include "server/dispute_view.h"
#include "server/ingest.h"
#include "server/policy_book.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::FixedNow;
using ::attest::testing::Signed;
using ::attest::testing::TestClaim;
using ::attest::testing::TestStorePath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

class StatusQueryTest : public ::testing::Test {
 protected:
  StatusQueryTest()
      : policy_(federation_.MakePolicy()),
        ingestor_(book_, &store_, &store_, federation_.node_key, FixedNow, {}),
        query_(book_, &store_, StatusQueryOptions{.max_paths = 50}),
        disputes_(book_, &store_) {}

  void Submit(const consensus::PathInfo& claim, const consensus::SecretKey& key) {
    google::protobuf::RepeatedPtrField<v1::Attestation> batch;
    *batch.Add() = Signed(claim, key);
    auto results = ingestor_.Submit(batch);
    ASSERT_TRUE(results.ok()) << results.status();
    ASSERT_TRUE((*results)[0].status.ok()) << (*results)[0].status;
  }

  v1::StatusResponse Query(const std::vector<std::string>& paths) {
    v1::StatusRequest request;
    for (const auto& p : paths) request.add_store_paths(p);
    auto response = query_.Run(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::StatusResponse{};
  }

  Federation federation_;
  consensus::Policy policy_;
  PolicyBook book_{policy_};  // what the components ask for the current policy
  storage::MemoryAttestationStore store_;
  Ingestor ingestor_;
  StatusQuery query_;
  DisputeView disputes_;
};

TEST_F(StatusQueryTest, LargeRequestsSplitIntoChunksAnswerLikeOneReader) {
  // 900 paths with a mix of verdicts: the chunked answer must equal the single-reader answer, in order.
  std::vector<std::string> paths;
  for (int i = 0; i < 300; ++i) {
    const auto claim = TestClaim(absl::StrCat("bulk-", i));
    Submit(claim, federation_.alice);
    if (i % 3 != 0) Submit(claim, federation_.bob);
    if (i % 5 == 0) Submit(TestClaim(absl::StrCat("bulk-", i), "other bytes"), federation_.carol);
    paths.push_back(claim.path.full());
    paths.push_back(TestStorePath(absl::StrCat("never-", i)).full());
    paths.push_back(claim.path.full());
  }
  v1::StatusRequest request;
  for (const auto& p : paths) request.add_store_paths(p);
  StatusQuery one_reader(book_, &store_, StatusQueryOptions{.max_paths = 1000, .read_threads = 1});
  StatusQuery chunked(book_, &store_, StatusQueryOptions{.max_paths = 1000, .read_threads = 4});
  auto expected = one_reader.Run(request);
  auto actual = chunked.Run(request);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(actual.ok()) << actual.status();
  ASSERT_EQ(actual->statuses_size(), 900);
  EXPECT_EQ(actual->SerializeAsString(), expected->SerializeAsString());
  EXPECT_EQ(actual->statuses(0).verdict(), v1::DISPUTED);
  EXPECT_EQ(actual->statuses(1).verdict(), v1::UNKNOWN);
  EXPECT_EQ(actual->statuses(3).verdict(), v1::CONFIRMED);
  EXPECT_EQ(actual->statuses(9).verdict(), v1::PENDING);

  // Requests at once share the query's helper threads; each still gets its whole answer.
  const std::string want = expected->SerializeAsString();
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int r = 0; r < 5; ++r) {
        auto answer = chunked.Run(request);
        if (!answer.ok() || answer->SerializeAsString() != want) ++wrong;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(StatusQueryTest, AnswersEveryVerdictInRequestOrder) {
  const auto pending = TestClaim("pending");
  const auto confirmed = TestClaim("confirmed");
  const auto disputed_a = TestClaim("disputed", "A");
  const auto disputed_b = TestClaim("disputed", "B");
  Submit(pending, federation_.alice);
  Submit(confirmed, federation_.alice);
  Submit(confirmed, federation_.carol);
  Submit(disputed_a, federation_.alice);
  Submit(disputed_b, federation_.bob);

  auto response = Query({TestStorePath("unknown").full(), pending.path.full(), confirmed.path.full(),
                         disputed_a.path.full(), pending.path.full()});
  ASSERT_EQ(response.statuses_size(), 5);
  const auto& unknown = response.statuses(0);
  EXPECT_EQ(unknown.verdict(), v1::UNKNOWN);
  EXPECT_EQ(unknown.attestations_size(), 0);
  EXPECT_EQ(unknown.quorum(), 2);
  EXPECT_EQ(unknown.policy_hash(), policy_.Hash());

  const auto& p = response.statuses(1);
  EXPECT_EQ(p.store_path(), pending.path.full());
  EXPECT_EQ(p.verdict(), v1::PENDING);
  ASSERT_EQ(p.fingerprints_size(), 1);
  EXPECT_EQ(p.fingerprints(0).fingerprint(), pending.Fingerprint());
  ASSERT_EQ(p.attestations_size(), 1);
  EXPECT_EQ(p.attestations(0).received_unix(), testing::kTestNow);

  const auto& c = response.statuses(2);
  EXPECT_EQ(c.verdict(), v1::CONFIRMED);
  ASSERT_EQ(c.fingerprints_size(), 1);
  EXPECT_EQ(c.fingerprints(0).fingerprint(), confirmed.Fingerprint());
  EXPECT_THAT(c.fingerprints(0).operators(), ElementsAre("alice-ci", "carol-home"));
  EXPECT_THAT(c.fingerprints(0).builders(), ElementsAre("alice-builder-1", "carol-builder-1"));
  ASSERT_EQ(c.attestations_size(), 2);
  // The answer carries real signatures: each verifies over the fingerprint it names with its policy key.
  for (const auto& a : c.attestations()) {
    ASSERT_EQ(a.fingerprint_index(), 0);
    auto claim = consensus::PathInfo::ParseFingerprint(c.fingerprints(0).fingerprint());
    ASSERT_TRUE(claim.ok()) << claim.status();
    auto signature = consensus::Signature::Parse(a.signature());
    ASSERT_TRUE(signature.ok()) << signature.status();
    const consensus::Attestation attestation{.claim = *claim, .signature = *signature, .metadata = {}};
    EXPECT_TRUE(consensus::VerifyAttestation(attestation, *policy_.FindBuilder(attestation.key_name())).ok());
    EXPECT_EQ(a.received_unix(), testing::kTestNow);
  }

  const auto& d = response.statuses(3);
  EXPECT_EQ(d.verdict(), v1::DISPUTED);
  EXPECT_EQ(d.fingerprints_size(), 2);
  EXPECT_EQ(d.dispute_id(), consensus::DisputeId(disputed_a.path));
  ASSERT_EQ(d.attestations_size(), 2);
  // One attestation per side, each naming its own fingerprint.
  EXPECT_NE(d.attestations(0).fingerprint_index(), d.attestations(1).fingerprint_index());

  // The repeated path is answered by reference to its first position, not a second time.
  EXPECT_FALSE(p.has_repeat_of());
  const auto& repeat = response.statuses(4);
  EXPECT_EQ(repeat.store_path(), pending.path.full());
  EXPECT_EQ(repeat.verdict(), v1::PENDING);
  ASSERT_TRUE(repeat.has_repeat_of());
  EXPECT_EQ(repeat.repeat_of(), 1);
  EXPECT_EQ(repeat.fingerprints_size(), 0);
  EXPECT_EQ(repeat.attestations_size(), 0);
}

// A claim about `name` with `references` references (a long fingerprint), its NAR hash from `content`.
consensus::PathInfo HeavyClaim(std::string_view name, std::string_view content, int references) {
  std::vector<consensus::StorePath> refs;
  for (int r = 0; r < references; ++r) refs.push_back(TestStorePath(absl::StrCat("dependency-", r)));
  auto claim = consensus::PathInfo::Create(TestStorePath(name), consensus::NarHash::FromDigest(consensus::Sha256(content)),
                                           1000, refs);
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *claim;
}

TEST_F(StatusQueryTest, RepeatedPathsAreAnsweredOnceSoTheAnswerCannotAmplifyTheRequest) {
  // A path with many counted attestations: three builders, each signing 20 different fingerprints.
  for (int variant = 0; variant < 20; ++variant) {
    for (const consensus::SecretKey* key : {&federation_.alice, &federation_.bob, &federation_.carol}) {
      Submit(HeavyClaim("heavy", absl::StrCat("variant-", variant), 20), *key);
    }
  }
  const std::string heavy = TestStorePath("heavy").full();
  const v1::StatusResponse once = Query({heavy});
  ASSERT_EQ(once.statuses_size(), 1);
  ASSERT_EQ(once.statuses(0).attestations_size(), 60);
  const size_t one_answer = once.ByteSizeLong();
  ASSERT_GT(one_answer, 30000u);

  // The same path 50 times (the most this query takes): one full answer and 49 references.
  v1::StatusRequest request;
  for (int i = 0; i < 50; ++i) request.add_store_paths(heavy);
  auto response = query_.Run(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->statuses_size(), 50);
  EXPECT_EQ(response->statuses(0).SerializeAsString(), once.statuses(0).SerializeAsString());
  for (int i = 1; i < 50; ++i) {
    EXPECT_EQ(response->statuses(i).repeat_of(), 0) << i;
    EXPECT_EQ(response->statuses(i).verdict(), v1::DISPUTED) << i;
    EXPECT_EQ(response->statuses(i).attestations_size(), 0) << i;
  }
  // Each repeat costs the answer about what it cost the request (before: 50 full answers).
  EXPECT_LE(response->ByteSizeLong(), one_answer + 2 * request.ByteSizeLong());
}

TEST_F(StatusQueryTest, AnAnswerOverTheByteLimitIsRefusedWholeWithAHintToSplit) {
  std::vector<std::string> paths;
  for (int i = 0; i < 40; ++i) {
    const auto claim = HeavyClaim(absl::StrCat("sized-", i), "bytes", 10);
    Submit(claim, federation_.alice);
    Submit(claim, federation_.bob);
    paths.push_back(claim.path.full());
  }
  paths.push_back(paths[0]);  // a repeat: its reference counts too
  v1::StatusRequest request;
  for (const auto& p : paths) request.add_store_paths(p);
  auto Run = [&](int64_t limit, int read_threads) {
    return StatusQuery(book_, &store_,
                       StatusQueryOptions{.max_paths = 50, .max_answer_bytes = limit, .read_threads = read_threads})
        .Run(request);
  };
  auto whole = Run(int64_t{1} << 30, 1);
  ASSERT_TRUE(whole.ok()) << whole.status();
  const int64_t size = static_cast<int64_t>(whole->ByteSizeLong());

  // Exactly at the limit: answered. One byte less: refused, naming the exact size.
  auto at_limit = Run(size, 1);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  EXPECT_EQ(at_limit->SerializeAsString(), whole->SerializeAsString());
  auto over = Run(size - 1, 1);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Message(over.status()),
              HasSubstr(absl::StrCat("the answer for these 41 store paths would be ", size,
                                     " bytes, more than the node's limit of ", size - 1)));
  EXPECT_THAT(Message(over.status()), HasSubstr("ask for fewer paths at a time"));

  // Far over: reading stops early, and the message says how far it got.
  for (int threads : {1, 2}) {
    auto far_over = Run(2048, threads);
    ASSERT_FALSE(far_over.ok());
    EXPECT_EQ(far_over.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(Message(far_over.status()), HasSubstr("would be more than the node's limit of 2048 bytes"));
    EXPECT_THAT(Message(far_over.status()), HasSubstr("of them took"));
    EXPECT_THAT(Message(far_over.status()), HasSubstr("ask for fewer paths at a time"));
  }

  // One path that alone is over the limit cannot be split: the message says who can help.
  v1::StatusRequest single;
  single.add_store_paths(paths[0]);
  auto alone = StatusQuery(book_, &store_, StatusQueryOptions{.max_answer_bytes = 100}).Run(single);
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Message(alone.status()), HasSubstr("the answer for " + paths[0] + " would be "));
  EXPECT_THAT(Message(alone.status()), HasSubstr("max_status_answer_bytes"));
}

TEST_F(StatusQueryTest, ChunkedRequestsKeepTheByteLimit) {
  std::vector<std::string> paths;
  for (int i = 0; i < 300; ++i) {
    const auto claim = TestClaim(absl::StrCat("chunk-", i));
    Submit(claim, federation_.alice);
    paths.push_back(claim.path.full());
    paths.push_back(TestStorePath(absl::StrCat("absent-", i)).full());
  }
  v1::StatusRequest request;
  for (const auto& p : paths) request.add_store_paths(p);
  auto Run = [&](int64_t limit) {
    return StatusQuery(book_, &store_,
                       StatusQueryOptions{.max_paths = 1000, .max_answer_bytes = limit, .read_threads = 4})
        .Run(request);
  };
  auto whole = Run(int64_t{1} << 30);
  ASSERT_TRUE(whole.ok()) << whole.status();
  const int64_t size = static_cast<int64_t>(whole->ByteSizeLong());
  auto at_limit = Run(size);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  EXPECT_EQ(at_limit->SerializeAsString(), whole->SerializeAsString());
  for (int64_t limit : {size - 1, size / 2, int64_t{1024}}) {
    auto over = Run(limit);
    ASSERT_FALSE(over.ok()) << limit;
    EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted) << limit;
  }
}

TEST_F(StatusQueryTest, ObservedAttestationsAreNotCounted) {
  Ingestor observing(book_, &store_, &store_, federation_.node_key, FixedNow,
                     IngestOptions{.observe_unknown_keys = true});
  google::protobuf::RepeatedPtrField<v1::Attestation> batch;
  v1::Attestation item = Signed(TestClaim("watched"), federation_.outsider);
  item.set_public_key(federation_.outsider.public_key().ToString());
  *batch.Add() = item;
  auto results = observing.Submit(batch);
  ASSERT_TRUE(results.ok());
  ASSERT_EQ((*results)[0].outcome, IngestOutcome::kObserved);
  auto response = Query({TestStorePath("watched").full()});
  EXPECT_EQ(response.statuses(0).verdict(), v1::UNKNOWN);
  EXPECT_EQ(response.statuses(0).attestations_size(), 0);
}

TEST_F(StatusQueryTest, MalformedPathIsInvalidArgumentNamingIt) {
  v1::StatusRequest request;
  request.add_store_paths(TestStorePath("fine").full());
  request.add_store_paths("/nix/store/not-a-hash");
  auto response = query_.Run(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(response.status()), HasSubstr("store_paths[1]: "));
  EXPECT_THAT(Message(response.status()), HasSubstr("/nix/store/not-a-hash"));
}

TEST_F(StatusQueryTest, TooManyPathsIsResourceExhausted) {
  v1::StatusRequest request;
  for (int i = 0; i < 51; ++i) request.add_store_paths(TestStorePath(absl::StrCat("p", i)).full());
  auto response = query_.Run(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Message(response.status()), HasSubstr("51 store paths exceeds the limit of 50"));
  request.mutable_store_paths()->RemoveLast();
  EXPECT_TRUE(query_.Run(request).ok());
}

TEST_F(StatusQueryTest, EmptyRequestHasEmptyAnswer) {
  auto response = query_.Run(v1::StatusRequest{});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->statuses_size(), 0);
}

TEST_F(StatusQueryTest, DisputesAreListedAndFetchedByIdOrPath) {
  for (int i = 0; i < 5; ++i) {
    Submit(TestClaim(absl::StrCat("d", i), "A"), federation_.alice);
    Submit(TestClaim(absl::StrCat("d", i), "B"), federation_.bob);
  }
  v1::ListDisputesRequest list;
  list.set_page_size(2);
  std::vector<std::string> ids;
  for (int page = 0; page < 10; ++page) {
    auto response = ListDisputes(disputes_, list);
    ASSERT_TRUE(response.ok()) << response.status();
    for (const auto& d : response->disputes()) {
      ids.push_back(d.id());
      EXPECT_EQ(d.state(), "open");
      EXPECT_EQ(d.fingerprints_size(), 2);
      EXPECT_EQ(d.attestations_size(), 0) << "only GetDispute fills attestations";
    }
    if (response->next_page_token().empty()) break;
    list.set_page_token(response->next_page_token());
  }
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));

  v1::GetDisputeRequest get;
  get.set_id(TestStorePath("d3").full());
  auto by_path = GetDispute(disputes_, get);
  ASSERT_TRUE(by_path.ok()) << by_path.status();
  EXPECT_EQ(by_path->id(), consensus::DisputeId(TestStorePath("d3")));
  EXPECT_EQ(by_path->attestations_size(), 2);
  EXPECT_THAT(by_path->signed_record(), HasSubstr("attest/dispute/v1\n"));
  get.set_id(by_path->id());
  auto by_id = GetDispute(disputes_, get);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->SerializeAsString(), by_path->SerializeAsString());
}

TEST_F(StatusQueryTest, DisputeLookupErrors) {
  v1::GetDisputeRequest get;
  get.set_id("d-00000000000000000000000000000000");
  EXPECT_EQ(GetDispute(disputes_, get).status().code(), absl::StatusCode::kNotFound);
  get.set_id(TestStorePath("never-disputed").full());
  EXPECT_EQ(GetDispute(disputes_, get).status().code(), absl::StatusCode::kNotFound);
  get.set_id("");
  EXPECT_EQ(GetDispute(disputes_, get).status().code(), absl::StatusCode::kInvalidArgument);
  get.set_id("dispute-7");
  EXPECT_EQ(GetDispute(disputes_, get).status().code(), absl::StatusCode::kInvalidArgument);
  get.set_id("/nix/store/bad");
  EXPECT_EQ(GetDispute(disputes_, get).status().code(), absl::StatusCode::kInvalidArgument);

  v1::ListDisputesRequest list;
  list.set_page_size(-1);
  EXPECT_EQ(ListDisputes(disputes_, list).status().code(), absl::StatusCode::kInvalidArgument);
  list.set_page_size(0);
  list.set_page_token("garbage");
  EXPECT_EQ(ListDisputes(disputes_, list).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StatusQueryTest, AnswerGivesRunsVerdictsAsDomainValues) {
  const auto disputed = TestClaim("answer-disputed");
  Submit(disputed, federation_.alice);
  Submit(TestClaim("answer-disputed", "B"), federation_.bob);
  const auto pending = TestClaim("answer-pending");
  Submit(pending, federation_.alice);
  const std::vector<consensus::StorePath> paths = {disputed.path, pending.path, TestStorePath("answer-never"),
                                                   pending.path};
  auto answer = query_.Answer(paths);
  ASSERT_TRUE(answer.ok()) << answer.status();
  std::vector<std::string> texts;
  for (const auto& p : paths) texts.push_back(p.full());
  const v1::StatusResponse wire = Query(texts);
  ASSERT_EQ(answer->size(), 4u);
  ASSERT_EQ(wire.statuses_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(proto::ToProto((*answer)[i].result.verdict), wire.statuses(i).verdict()) << i;
    EXPECT_EQ((*answer)[i].path.full(), wire.statuses(i).store_path()) << i;
  }
  EXPECT_EQ((*answer)[0].result.verdict, consensus::Verdict::kDisputed);
  EXPECT_EQ((*answer)[0].dispute_id, wire.statuses(0).dispute_id());
  ASSERT_EQ((*answer)[0].result.fingerprints.size(), 2u);
  EXPECT_EQ((*answer)[0].result.fingerprints[0].fingerprint, wire.statuses(0).fingerprints(0).fingerprint());
  EXPECT_EQ((*answer)[1].result.verdict, consensus::Verdict::kPending);
  EXPECT_EQ((*answer)[3].result.verdict, consensus::Verdict::kPending) << "a repeat is answered again";
  EXPECT_EQ((*answer)[2].result.verdict, consensus::Verdict::kUnknown);
  EXPECT_EQ((*answer)[1].quorum, policy_.quorum());
  EXPECT_EQ((*answer)[1].policy_hash, policy_.Hash());

  std::vector<consensus::StorePath> too_many(51, pending.path);
  EXPECT_EQ(query_.Answer(too_many).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(StatusQueryTest, DisputeLimitsAreTheSameForEveryCaller) {
  Submit(TestClaim("limits", "A"), federation_.alice);
  Submit(TestClaim("limits", "B"), federation_.bob);
  DisputePageRequest page;
  page.size = kMaxDisputePageSize + 1;
  EXPECT_EQ(disputes_.List(page).status().code(), absl::StatusCode::kInvalidArgument);
  page.size = 0;
  EXPECT_EQ(disputes_.List(page).status().code(), absl::StatusCode::kInvalidArgument);
  page.size = kMaxDisputePageSize;
  page.filter.name_contains = std::string(kMaxDisputeNameFilterBytes + 1, 'x');
  EXPECT_THAT(Message(disputes_.List(page).status()), HasSubstr("give at most 200"));
  page.filter.name_contains = "limits";
  auto listed = disputes_.List(page);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->total, 1);
  ASSERT_EQ(listed->disputes.size(), 1u);
  EXPECT_EQ(listed->next_cursor, "");

  // The wire edge serves a larger page_size as the maximum, and keeps the name limit.
  v1::ListDisputesRequest request;
  request.set_page_size(kMaxDisputePageSize * 10);
  auto wire = ListDisputes(disputes_, request);
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(wire->disputes_size(), 1);
  request.set_name(std::string(kMaxDisputeNameFilterBytes + 1, 'x'));
  EXPECT_EQ(ListDisputes(disputes_, request).status().code(), absl::StatusCode::kInvalidArgument);

  auto detail = disputes_.Get(listed->disputes[0].id);
  ASSERT_TRUE(detail.ok()) << detail.status();
  EXPECT_EQ(detail->sides.size(), 2u);
  EXPECT_EQ(detail->counted.size(), 2u);
  EXPECT_TRUE(detail->nar_hash_differs);
  EXPECT_EQ(disputes_.Get("not-an-id").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace attest::server
