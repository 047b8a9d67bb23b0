// attest rebuild: build what the federation is missing and attest it (client/rebuilder.h).
#include <atomic>
#include <csignal>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "client/builder_config.h"
#include "client/commands.h"
#include "client/nix_store_location.h"
#include "client/pusher.h"
#include "client/rebuilder.h"
#include "client/stop_signals.h"
#include "client/spool.h"
#include "consensus/keys.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;

absl::StatusOr<size_t> PositiveCount(const ParsedArgs& args, std::string_view name, size_t fallback) {
  std::optional<std::string> text = args.Value(name);
  if (!text) return fallback;
  size_t value = 0;
  if (!absl::SimpleAtoi(*text, &value) || value == 0 || value > 10000) {
    return absl::InvalidArgumentError(
        Cat("--", name, " must be a whole number from 1 to 10000, not ", consensus::QuoteForError(*text)));
  }
  return value;
}

int RunRebuild(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  if (!args.positionals().empty()) return UsageError(spec, env, "rebuild takes no arguments");
  const bool watch = args.Has("watch");
  if (watch == args.Has("once")) return UsageError(spec, env, "give exactly one of --once and --watch");
  if (args.Has("interval") && !watch) return UsageError(spec, env, "--interval only goes with --watch");
  absl::StatusOr<size_t> max = PositiveCount(args, "max", 10);
  if (!max.ok()) return UsageError(spec, env, std::string(max.status().message()));
  absl::StatusOr<size_t> jobs = PositiveCount(args, "jobs", 1);
  if (!jobs.ok()) return UsageError(spec, env, std::string(jobs.status().message()));
  if (*jobs > 64) return UsageError(spec, env, "--jobs must be at most 64");
  absl::Duration interval = absl::Seconds(60);
  if (auto text = args.Value("interval")) {
    absl::StatusOr<absl::Duration> parsed = ParseTimeout(*text);
    if (!parsed.ok()) return UsageError(spec, env, Cat("--interval: ", parsed.status().message()));
    interval = *parsed;
  }
  absl::Duration build_timeout = absl::Hours(3);
  if (auto text = args.Value("timeout")) {
    absl::StatusOr<absl::Duration> parsed = ParseTimeout(*text);
    if (!parsed.ok()) return UsageError(spec, env, Cat("--timeout: ", parsed.status().message()));
    build_timeout = *parsed;
  }

  std::optional<std::string> env_config = env.env_var ? env.env_var("ATTEST_BUILDER_CONFIG") : std::nullopt;
  absl::StatusOr<std::string> config_path =
      BuilderConfigPath(args.Value("config").value_or(""), env_config.value_or(""));
  if (!config_path.ok()) return UsageError(spec, env, std::string(config_path.status().message()));
  absl::StatusOr<BuilderConfig> config = LoadBuilderConfig(*config_path);
  if (!config.ok()) return Failure(spec, env, std::string(config.status().message()));
  std::vector<std::string> nodes = args.Values("node");
  if (nodes.empty()) nodes = config->nodes;
  const std::string tls_ca = args.Value("tls-ca").value_or(config->tls_ca_file);
  for (const std::string& node : nodes) {
    if (absl::StatusOr<NodeTarget> target = ParseNodeAddress(node, tls_ca); !target.ok()) {
      return UsageError(spec, env, std::string(target.status().message()));
    }
  }

  RebuildOptions options;
  options.store = args.Value("store").value_or("");
  std::error_code ec;
  const std::filesystem::path working_dir = std::filesystem::current_path(ec);
  absl::StatusOr<std::string> root = StoreRootForUri(options.store, ec ? "/" : working_dir.string());
  if (!root.ok()) return UsageError(spec, env, Cat("--store: ", root.status().message()));
  options.store_root = *root;
  // nix-store resolves a relative --store against its own working directory, which is ours.
  options.max = *max;
  options.jobs = static_cast<int>(*jobs);
  options.present = args.Has("check") ? PresentPaths::kCheck : PresentPaths::kSkip;
  options.build_timeout = build_timeout;

  absl::StatusOr<std::string> key_text = ReadInput(config->key_file, env);
  if (!key_text.ok()) return Failure(spec, env, Cat(key_text.status().message(), " (`key` in ", config->source, ")"));
  absl::StatusOr<consensus::SecretKey> key = consensus::SecretKey::Parse(*key_text);
  if (!key.ok()) return Failure(spec, env, Cat(config->key_file, ": ", key.status().message()));
  absl::StatusOr<Spool> spool = Spool::Open(config->spool_dir);
  if (!spool.ok()) return Failure(spec, env, std::string(spool.status().message()));

  // The queue comes from the first node; the attestations go to every node, as `attest push` sends them.
  absl::StatusOr<std::unique_ptr<RebuildNode>> node =
      ConnectRebuildNode(NodeOptions{.address = nodes.front(), .tls_ca_file = tls_ca});
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
  NodeConnector connect = [base = env.connect_node, tls_ca](const NodeOptions& node_options) {
    NodeOptions with_ca = node_options;
    with_ca.tls_ca_file = tls_ca;
    return base(with_ca);
  };
  PushOptions push_options;
  push_options.nodes = nodes;
  auto push = [&]() {
    absl::StatusOr<consensus::SecretKey> signing = consensus::SecretKey::Parse(*key_text);
    Pusher pusher(*spool, *std::move(signing), push_options, connect, PushClock::Real(),
                  [&env](std::string_view line) { env.err << "attest rebuild: push: " << line << "\n"; });
    return pusher.PushOnce();
  };
  auto on_event = [&env](const RebuildEvent& event) {
    env.out << RebuildEventLine(event) << "\n";
    env.out.flush();
  };

  // Both modes: a stop request ends running builds cleanly (Nix stops its builders) and is reported.
  StopSignals signals;
  Rebuilder rebuilder(std::shared_ptr<RebuildNode>(*std::move(node)), *std::move(key), *spool, options, push, on_event,
                      [] { return StopRequested(); });
  absl::StatusOr<std::string> op = rebuilder.FindOperator();
  if (!op.ok()) return Failure(spec, env, std::string(op.status().message()));
  env.err << "attest rebuild: rebuilding for operator " << *op << " from " << nodes.front() << "\n";

  RoundReport total;
  bool round_failed = false;
  while (true) {
    absl::StatusOr<RoundReport> round = rebuilder.RunRound();
    if (round.ok()) {
      total.wanted += round->wanted;
      total.built += round->built;
      total.skipped += round->skipped;
      total.failed += round->failed;
      total.refused += round->refused;
    } else {
      round_failed = true;
      env.err << "attest rebuild: " << round.status().message() << "\n";
    }
    if (!watch) break;
    const absl::Time until = absl::Now() + interval;
    while (!StopRequested() && absl::Now() < until) {
      absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
    }
    if (StopRequested()) break;
  }
  env.out << "attest rebuild: " << total.built << " built, " << total.failed << " failed, " << total.refused
          << " refused, " << total.skipped << " skipped\n";
  // A service stopped on purpose has done its job: the failures were reported line by line (and to
  // the node), and a failing exit would make systemd count a clean stop as a failed unit.
  if (watch) return kExitOk;
  return total.ok() && !round_failed ? kExitOk : kExitFailure;
}

}  // namespace

CommandSpec RebuildCommand() {
  return CommandSpec{
      .name = "rebuild",
      .synopsis =
          "attest rebuild --config FILE [--node ADDR] [--store STORE] [--max N] (--once | --watch "
          "[--interval D]) [--jobs N] [--check] [--timeout D]",
      .summary = "Build the paths the federation is missing and attest them.",
      .description =
          "Asks the node (the first of `nodes` in the builder config, or --node) which store paths are wanted\n"
          "and not yet attested by this builder's operator, takes a lease on each (so two rebuilders of one\n"
          "operator do not build the same path), fetches the derivation and its input derivations from the\n"
          "node and checks them before anything is imported: each .drv must be the file its store path names\n"
          "(text-addressed), its output paths must follow from it, and the derivation must build the wanted\n"
          "path. Then it imports what the local store lacks, realises the inputs (substituters as Nix is\n"
          "configured) and builds the wanted derivation with substitution off, so the path is built here.\n"
          "The outputs are spooled once, with build kind `rebuild`, whether or not the post-build-hook is\n"
          "set, pushed to the nodes at once, and the result is reported to the node.\n"
          "\n"
          "A wanted path already in the local store is skipped; with --check it is built again\n"
          "(`nix-store --realise --check`, build kind `check`). The builder key must belong to an operator of\n"
          "the node's policy, else its rebuilds would not count and nothing is done.\n"
          "\n"
          "Prints one line per path (leased, skipped, built, failed, refused) and a summary. --watch repeats\n"
          "every --interval (60 s) until SIGTERM or SIGINT; a signal also stops builds under way (their leases\n"
          "are released). Nix runs as `nix-store` from PATH with this environment.\n"
          "\n"
          "Exit status: with --once, 0 when nothing failed or was refused, 1 otherwise; --watch exits 0 when\n"
          "stopped; 2 on usage errors.",
      .options =
          {
              {"config", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
               "builder config: key, spool, nodes (default: $ATTEST_BUILDER_CONFIG)"},
              {"node", OptionKind::kValue, OptionRepeat::kMany, "ADDR",
               "a node's gRPC address instead of the config's nodes; the first one gives the queue"},
              {"tls-ca", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
               "PEM CA certificate(s) of the nodes' TLS certificates (default: `tls_ca` of the config)"},
              {"store", OptionKind::kValue, OptionRepeat::kOnce, "STORE",
               "the Nix store to build in: a directory (chroot store) or local?root=DIR (default: Nix's)"},
              {"max", OptionKind::kValue, OptionRepeat::kOnce, "N", "wanted paths taken per round (default 10)"},
              {"once", OptionKind::kFlag, OptionRepeat::kOnce, "", "one round, then exit"},
              {"watch", OptionKind::kFlag, OptionRepeat::kOnce, "", "a round every --interval until stopped"},
              {"interval", OptionKind::kValue, OptionRepeat::kOnce, "DURATION",
               "with --watch: time between rounds, seconds or e.g. 5m (default 60)"},
              {"jobs", OptionKind::kValue, OptionRepeat::kOnce, "N", "paths built at once (default 1)"},
              {"check", OptionKind::kFlag, OptionRepeat::kOnce, "",
               "build wanted paths already in the local store again and compare (build kind check)"},
              {"timeout", OptionKind::kValue, OptionRepeat::kOnce, "DURATION",
               "give up on one nix-store run after this long (default 3h)"},
          },
      .examples =
          "  attest rebuild --config /etc/nix/attest-builder.toml --once --max 5\n"
          "  attest rebuild --config /etc/nix/attest-builder.toml --watch --interval 5m --jobs 2   # as a service\n",
      .run = RunRebuild,
  };
}

}  // namespace attest::client
