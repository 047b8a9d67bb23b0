#include "server/node_main.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "consensus/text.h"
#include "server/log.h"
#include "server/node_config.h"
#include "server/restore.h"

#ifndef ATTEST_VERSION
#define ATTEST_VERSION "unknown"
#endif

namespace attest::server {
namespace {

constexpr std::string_view kUsage =
    "usage: attestd --config FILE [--check-database]\n"
    "       attestd restore --from-peers --config FILE\n"
    "\n"
    "Runs an attest node: accepts attestations (Nix signatures of store path fingerprints) over gRPC,\n"
    "counts independent operators against the federation's policy, records disputes, and keeps a\n"
    "transparency log of what was submitted to it, with signed checkpoints.\n"
    "\n"
    "  --config FILE   the node's TOML config ([node] grpc, http, database, key, policy, ...)\n"
    "  --check-database  check the node's stored data once (path records, the index, the log and its\n"
    "                  tiles, SQLite's quick_check) and exit: 0 when it checks out, 1 otherwise\n"
    "  restore --from-peers  the node lost its database (or it was rolled back): rebuild its log from\n"
    "                  the copies its [[peer]]s keep, verified against the newest checkpoint of this\n"
    "                  node a peer cosigned; the old database is moved aside. Run it while the node is\n"
    "                  stopped\n"
    "  --help          this text\n"
    "  --version       the version\n"
    "\n"
    "example:\n"
    "  attestd --config /etc/attest/node.toml\n"
    "\n"
    "SIGTERM or SIGINT drains calls in flight and exits within 10 seconds.\n";

// Time given to calls in flight after a shutdown signal; the rest of the 10 s budget covers the wait
// for their handlers and closing the database.
constexpr absl::Duration kDrainDeadline = absl::Seconds(7);

int UsageError(std::string_view message) {
  std::fprintf(stderr, "attestd: %.*s\n%.*s", static_cast<int>(message.size()), message.data(),
               static_cast<int>(kUsage.size()), kUsage.data());
  return 2;
}

int Fail(std::string_view message) {
  std::fprintf(stderr, "attestd: %.*s\n", static_cast<int>(message.size()), message.data());
  return 1;
}

// attestd --check-database: one whole scrub pass, offline. Exit 0 when everything checks out, 1 when a
// problem was found (each printed on its own line) or the check could not run.
int RunCheckDatabase(Node& node, const std::string& database) {
  absl::StatusOr<ScrubReport> report = node.CheckDatabase();
  if (!report.ok()) return Fail(consensus::Cat("checking ", database, ": ", report.status().message()));
  for (const std::string& problem : report->problems) std::printf("problem: %s\n", problem.c_str());
  std::printf("attestd: %s: %lld path rows, %lld log entries, %lld log tiles checked: %s\n", database.c_str(),
              static_cast<long long>(report->path_rows), static_cast<long long>(report->log_entries),
              static_cast<long long>(report->log_tiles),
              report->problems.empty() ? "ok" : consensus::Cat(report->problems.size(), " problems").c_str());
  return report->problems.empty() ? 0 : 1;
}

// attestd restore --from-peers: exit 0 once the log is back, 1 when it could not be restored (nothing
// was changed then).
int RunRestore(const NodeConfig& config) {
  absl::StatusOr<PolicyAndKey> loaded = LoadPolicyAndKey(config);
  if (!loaded.ok()) return Fail(consensus::StdView(loaded.status().message()));
  RestoreOptions options;
  options.progress = [](std::string_view line) {
    std::printf("attestd: %.*s\n", static_cast<int>(line.size()), line.data());
    std::fflush(stdout);
  };
  absl::StatusOr<RestoreReport> report = RestoreFromPeers(config, PolicyBook(loaded->policy), loaded->key, options);
  if (!report.ok()) {
    return Fail(consensus::Cat("restore from peers: ", report.status().message(), " (nothing was changed)"));
  }
  std::printf("attestd: restored %llu log entries of %s into %s (checkpoint cosigned by %s, entries from %s)\n",
              static_cast<unsigned long long>(report->entries), loaded->key.name().c_str(),
              config.database_path.c_str(), report->checkpoint_from.c_str(), report->entries_from.c_str());
  if (!report->moved_aside.empty()) std::printf("attestd: the old database is now %s\n", report->moved_aside.c_str());
  std::printf("attestd: start the node as usual; it follows its peers again from the start\n");
  return 0;
}

}  // namespace

int RunAttestd(int argc, char** argv, NodeOptions options) {
  std::string config_path;
  bool check_database = false;
  bool restore = false;
  bool from_peers = false;
  int first = 1;
  if (argc > 1 && std::string_view(argv[1]) == "restore") {
    restore = true;
    first = 2;
  }
  for (int i = first; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("attestd %s\n", ATTEST_VERSION);
      return 0;
    }
    if (arg == "--config") {
      if (i + 1 >= argc) return UsageError("--config needs a file");
      config_path = argv[++i];
    } else if (arg == "--check-database") {
      check_database = true;
    } else if (restore && arg == "--from-peers") {
      from_peers = true;
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = std::string(arg.substr(std::strlen("--config=")));
    } else {
      return UsageError(consensus::Cat("unknown argument '", arg, "'"));
    }
  }
  if (config_path.empty()) return UsageError("--config FILE is required");
  if (restore && !from_peers) return UsageError("restore needs a source: --from-peers");
  if (restore) {
    // Before the signal mask below: Ctrl-C ends a restore at once (it changes nothing until its end).
    absl::StatusOr<NodeConfig> config = LoadNodeConfig(config_path);
    if (!config.ok()) return Fail(consensus::StdView(config.status().message()));
    return RunRestore(*config);
  }

  // Shutdown signals are taken by sigwait below; blocking them before any thread exists makes every
  // thread inherit the mask, so no other thread is interrupted by them.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGTERM);
  sigaddset(&shutdown_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<NodeConfig> config = LoadNodeConfig(config_path);
  if (!config.ok()) return Fail(consensus::StdView(config.status().message()));
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(*config, std::move(options));
  if (!node.ok()) return Fail(consensus::StdView(node.status().message()));
  if (check_database) return RunCheckDatabase(**node, config->database_path);
  if (absl::Status s = (*node)->Start(); !s.ok()) return Fail(consensus::StdView(s.message()));

  std::printf("attestd: grpc listening on %s\n", (*node)->grpc_address().c_str());
  if (!(*node)->http_address().empty()) {
    std::printf("attestd: http listening on %s\n", (*node)->http_address().c_str());
  }
  std::fflush(stdout);

  int signal_number = 0;
  while (sigwait(&shutdown_signals, &signal_number) != 0) {
  }
  LogInfo(consensus::Cat("received ", strsignal(signal_number), "; draining"));
  // Every acknowledged attestation is already committed, so if draining ever hangs (a handler stuck on
  // a locked database), ending the process hard loses nothing; the 10 s promise is kept regardless.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(9500));
    LogError("shutdown did not finish within 9.5 s; exiting without waiting further");
    std::_Exit(1);
  }).detach();
  (*node)->Shutdown(absl::Now() + kDrainDeadline);
  node->reset();
  return 0;
}

}  // namespace attest::server
