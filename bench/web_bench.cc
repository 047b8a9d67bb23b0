// Render time of the maintainers' web pages on a database with many disputes.
//
// Starts a real node in this process (SQLite file, gRPC, HTTP on loopback) and fills it through its
// Submit RPC: for each of --disputes paths, builders of two operators sign different NAR hashes (the
// node makes and signs a dispute record for each), plus --agreeing paths two operators agree on.
// Then requests, over HTTP on one keep-alive connection, --renders times each: a random dispute's page,
// its JSON twin, the first page of /disputes, a filtered /disputes, and a few /operators (which reads
// every dispute record). Prints median, p90 and p99 per page.
//
//   web_bench [--disputes 10000] [--agreeing 2000] [--renders 200] [--dir DIR] 2>/dev/null
//
// --dir keeps the database between runs (reused when it already holds the disputes).
#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "consensus/sha256.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "server/node.h"

namespace attest::bench {
namespace {

struct Args {
  int disputes = 10000;
  int agreeing = 2000;
  int renders = 200;
  std::string dir;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--disputes") args.disputes = std::atoi(value.c_str());
    else if (flag == "--agreeing") args.agreeing = std::atoi(value.c_str());
    else if (flag == "--renders") args.renders = std::atoi(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s\nusage: web_bench [--disputes N] [--agreeing N] [--renders N] [--dir DIR]\n",
                   flag.c_str());
      std::exit(2);
    }
  }
  if (args.disputes < 1 || args.renders < 1) {
    std::fprintf(stderr, "--disputes and --renders must be at least 1\n");
    std::exit(2);
  }
  return args;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

consensus::PathInfo MakeClaim(const consensus::StorePath& path, const std::string& content,
                              const std::vector<consensus::StorePath>& references) {
  const auto digest = consensus::Sha256(content);
  auto hash = consensus::NarHash::FromDigest(digest);
  auto claim = consensus::PathInfo::Create(path, hash, 4096 + content.size(), references);
  if (!claim.ok()) {
    std::fprintf(stderr, "claim: %s\n", std::string(claim.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(claim);
}

consensus::BuildMetadata Metadata(const consensus::StorePath& path) {
  return consensus::BuildMetadata{.deriver = BenchStorePath("web-bench-drv", 0, absl::StrCat("-", std::string(path.name()), ".drv")).full(),
                                  .output_name = "out",
                                  .system = "x86_64-linux",
                                  .build_kind = consensus::BuildKind::kRebuild,
                                  .build_time_unix = 1700000000};
}

void Submit(v1::Attestations::Stub& stub, const std::vector<consensus::Attestation>& batch) {
  v1::SubmitRequest request;
  for (const auto& a : batch) *request.add_attestations() = proto::ToProto(a);
  v1::SubmitResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  const grpc::Status status = stub.Submit(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "Submit: %s\n", status.error_message().c_str());
    std::exit(1);
  }
}

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct Timing final {
  std::string page;
  std::vector<double> ms;
  size_t bytes = 0;
};

// Requests `targets` in turn on one keep-alive connection; every answer must be 200.
Timing Measure(CURL* curl, int port, const std::string& page, const std::vector<std::string>& targets) {
  Timing timing{.page = page, .ms = {}, .bytes = 0};
  for (const std::string& target : targets) {
    std::string body;
    const std::string url = absl::StrCat("http://127.0.0.1:", port, target);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    const auto start = std::chrono::steady_clock::now();
    const CURLcode rc = curl_easy_perform(curl);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
      std::fprintf(stderr, "%s: %s (HTTP %ld): %s\n", target.c_str(), curl_easy_strerror(rc), status,
                   body.substr(0, 300).c_str());
      std::exit(1);
    }
    timing.ms.push_back(ms);
    timing.bytes = body.size();
  }
  return timing;
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  return values[index];
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::unique_ptr<std::filesystem::path> temp;
  std::string dir = args.dir;
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() / absl::StrCat("web-bench-", ::getpid())).string();
    temp = std::make_unique<std::filesystem::path>(dir);
  }
  std::filesystem::create_directories(dir);

  const consensus::SecretKey alice = BenchKey("web-bench-alice");
  const consensus::SecretKey bob = BenchKey("web-bench-bob");
  const consensus::SecretKey carol = BenchKey("web-bench-carol");
  WriteFile(dir + "/policy.toml",
            absl::StrCat("quorum = 2\n[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", alice.public_key().ToString(),
                         "\"]\n[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", bob.public_key().ToString(),
                         "\"]\n[[operator]]\nname = \"carol-home\"\nbuilders = [\"", carol.public_key().ToString(),
                         "\"]\n"));
  WriteFile(dir + "/node.sec", BenchKey("web-bench-node").ExportText() + "\n");
  std::filesystem::permissions(dir + "/node.sec",
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  server::NodeConfig config;
  config.grpc_address = "127.0.0.1:0";
  config.http_address = "127.0.0.1:0";
  config.database_path = dir + "/attest.db";
  config.key_path = dir + "/node.sec";
  config.policy_path = dir + "/policy.toml";
  auto node = server::Node::Open(config);
  if (!node.ok() || !(*node)->Start().ok()) {
    std::fprintf(stderr, "cannot start the node: %s\n", std::string(node.status().message()).c_str());
    return 1;
  }
  auto stats = (*node)->store()->Stats();
  if (!stats.ok()) return 1;

  std::vector<std::string> ids;
  std::vector<consensus::StorePath> disputed;
  for (int i = 0; i < args.disputes; ++i) {
    disputed.push_back(BenchStorePath("web-bench-disputed", i, absl::StrCat("-pkg", i % 997, "-1.", i % 13)));
    ids.push_back(consensus::DisputeId(disputed.back()));
  }
  if (stats->disputes < args.disputes) {
    const auto start = std::chrono::steady_clock::now();
    auto stub = v1::Attestations::NewStub((*node)->InProcessChannel());
    std::vector<consensus::Attestation> batch;
    const consensus::StorePath common = BenchStorePath("web-bench-lib", 0, "-glibc-2.38");
    for (int i = 0; i < args.disputes; ++i) {
      const consensus::StorePath& path = disputed[i];
      const consensus::StorePath dep_a = BenchStorePath("web-bench-dep", i, "-a");
      const consensus::StorePath dep_b = BenchStorePath("web-bench-dep", i, "-b");
      batch.push_back(consensus::SignAttestation(MakeClaim(path, absl::StrCat("a", i), {common, dep_a}), alice,
                                                 Metadata(path)));
      batch.push_back(consensus::SignAttestation(MakeClaim(path, absl::StrCat("b", i), {common, dep_b}), bob,
                                                 Metadata(path)));
      if (batch.size() >= 1000) {
        Submit(*stub, batch);
        batch.clear();
      }
    }
    for (int i = 0; i < args.agreeing; ++i) {
      const consensus::StorePath path = BenchStorePath("web-bench-agreeing", i, "-ok");
      const consensus::PathInfo claim = MakeClaim(path, absl::StrCat("ok", i), {common});
      batch.push_back(consensus::SignAttestation(claim, alice, Metadata(path)));
      batch.push_back(consensus::SignAttestation(claim, carol, Metadata(path)));
      if (batch.size() >= 1000) {
        Submit(*stub, batch);
        batch.clear();
      }
    }
    if (!batch.empty()) Submit(*stub, batch);
    std::printf("filled: %d disputes, %d agreeing paths through Submit in %.1f s\n", args.disputes, args.agreeing,
                SecondsSince(start));
  }
  stats = (*node)->store()->Stats();
  if (!stats.ok()) return 1;
  std::printf("database: %lld attestations, %lld disputes (%lld open), %lld bytes\n",
              static_cast<long long>(stats->attestations), static_cast<long long>(stats->disputes),
              static_cast<long long>(stats->open_disputes),
              static_cast<long long>(std::filesystem::file_size(config.database_path)));

  std::mt19937_64 rng(7);
  std::vector<std::string> one, one_json, list, filtered;
  for (int i = 0; i < args.renders; ++i) {
    const std::string& id = ids[rng() % ids.size()];
    one.push_back(absl::StrCat("/disputes/", id));
    one_json.push_back(absl::StrCat("/disputes/", id, ".json"));
    list.push_back("/disputes");
    filtered.push_back(absl::StrCat("/disputes?state=open&operator=bob-labs&name=pkg", rng() % 997));
  }
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
  const int port = (*node)->http_port();
  Measure(curl, port, "warm-up", std::vector<std::string>(20, "/disputes"));
  std::vector<Timing> timings = {
      Measure(curl, port, "/disputes/<id>", one),
      Measure(curl, port, "/disputes/<id>.json", one_json),
      Measure(curl, port, "/disputes (first page, 50)", list),
      Measure(curl, port, "/disputes?state&operator&name", filtered),
      Measure(curl, port, "/operators", std::vector<std::string>(std::max(3, args.renders / 20), "/operators")),
  };
  curl_easy_cleanup(curl);

  std::printf("%-34s %8s %8s %8s %8s %10s\n", "page", "renders", "median", "p90", "p99", "bytes");
  for (const Timing& t : timings) {
    std::printf("%-34s %8zu %6.2fms %6.2fms %6.2fms %10zu\n", t.page.c_str(), t.ms.size(), Percentile(t.ms, 0.5),
                Percentile(t.ms, 0.9), Percentile(t.ms, 0.99), t.bytes);
  }
  (*node)->Shutdown(absl::Now() + absl::Seconds(5));
  node->reset();
  if (temp) std::filesystem::remove_all(*temp);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
