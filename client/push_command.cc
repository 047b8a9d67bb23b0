// attest push: ship the builder's spool to the nodes (client/pusher.h), once or continuously.
#include <atomic>
#include <algorithm>
#include <csignal>
#include <map>
#include <ostream>
#include <set>
#include <utility>

#include "client/builder_config.h"
#include "client/commands.h"
#include "client/pusher.h"
#include "client/spool.h"
#include "client/stop_signals.h"
#include "client/status_json.h"
#include "consensus/keys.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;

// The real clock, with sleeps cut into short slices so a stop request is noticed at once.
PushClock InterruptibleClock() {
  return PushClock{.now = [] { return absl::Now(); },
                   .sleep = [](absl::Duration d) {
                     const absl::Time until = absl::Now() + d;
                     while (!StopRequested() && absl::Now() < until) {
                       absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
                     }
                   }};
}

json OutcomeJson(const PushOutcome& o) {
  return {{"path", o.path},
          {"record", o.record_id},
          {"node", o.node},
          {"outcome", std::string(OutcomeName(o.kind))},
          {"code", o.code},
          {"message", o.message}};
}

json ReportJson(const PushReport& report, const std::optional<ScanReport>& scan, bool with_remaining) {
  json outcomes = json::array();
  for (const PushOutcome& o : report.outcomes) outcomes.push_back(OutcomeJson(o));
  json document = {{"outcomes", outcomes},
                   {"delivered", report.delivered},
                   {"spoolErrors", report.spool_errors},
                   {"gaveUp", report.gave_up},
                   {"derivationsSent", report.derivations_sent},
                   {"derivationsStored", report.derivations_stored},
                   {"derivationErrors", report.derivation_errors},
                   {"realisationNotes", report.realisation_notes}};
  if (with_remaining) document["remaining"] = report.remaining;
  if (scan.has_value()) {
    document["scan"] = {{"built", scan->built},
                        {"alreadyAttested", scan->already_attested},
                        {"alreadySpooled", scan->already_spooled},
                        {"added", scan->added}};
  }
  return document;
}

void PrintText(std::ostream& out, const PushReport& report) {
  for (const PushOutcome& o : report.outcomes) {
    std::string word(OutcomeName(o.kind));
    for (char& c : word) {
      if (c == '_') c = ' ';
    }
    out << word << std::string(word.size() < 16 ? 16 - word.size() : 1, ' ') << o.path;
    if (!o.node.empty()) out << " -> " << o.node;
    if (!o.message.empty() && o.kind != OutcomeKind::kAccepted && o.kind != OutcomeKind::kAlreadyPresent) {
      std::string_view message = o.message;
      // The node client names the node in its errors; the line already does.
      if (const std::string prefix = "node " + o.node + ": "; !o.node.empty() && message.starts_with(prefix)) {
        message.remove_prefix(prefix.size());
      }
      out << ": " << message;
    }
    out << "\n";
  }
  for (const std::string& path : report.delivered) out << "delivered       " << path << "\n";
}

// Derivations are best effort: what went wrong with them is a warning, never the push's failure.
void PrintDerivationWarnings(std::ostream& err, const PushReport& report) {
  for (const std::string& e : report.derivation_errors) err << "attest push: warning: " << e << "\n";
  for (const std::string& e : report.realisation_notes) err << "attest push: note: " << e << "\n";
}

// "; 12 derivations sent (3 new)", or nothing when none were.
std::string DerivationSummary(const PushReport& report) {
  if (report.derivations_sent == 0) return "";
  return Cat("; ", report.derivations_sent, report.derivations_sent == 1 ? " derivation" : " derivations",
             " sent (", report.derivations_stored, " new)");
}

int RunPush(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  if (!args.positionals().empty()) return UsageError(spec, env, "push takes no arguments");
  const bool watch = args.Has("watch");
  const bool scan = args.Has("scan");
  const bool json_output = args.Has("json");
  if (args.Has("store-root") && !scan) return UsageError(spec, env, "--store-root only goes with --scan");
  std::string store_root = args.Value("store-root").value_or("/");
  if (store_root.empty() || store_root.front() != '/') {
    return UsageError(spec, env, "--store-root must be an absolute directory (\"/\" for the system store)");
  }
  absl::Duration give_up_after = absl::Seconds(30);
  if (auto text = args.Value("timeout")) {
    absl::StatusOr<absl::Duration> parsed = ParseTimeout(*text);
    if (!parsed.ok()) return UsageError(spec, env, Cat("--timeout: ", parsed.status().message()));
    give_up_after = *parsed;
  }

  std::optional<std::string> env_config = env.env_var ? env.env_var("ATTEST_BUILDER_CONFIG") : std::nullopt;
  absl::StatusOr<std::string> config_path = BuilderConfigPath(args.Value("config").value_or(""), env_config.value_or(""));
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
  // Every node is reached with the same CA (--tls-ca, else tls_ca of the config).
  NodeConnector connect = [base = env.connect_node, tls_ca](const NodeOptions& node_options) {
    NodeOptions with_ca = node_options;
    with_ca.tls_ca_file = tls_ca;
    return base(with_ca);
  };

  absl::StatusOr<std::string> key_text = ReadInput(config->key_file, env);
  if (!key_text.ok()) return Failure(spec, env, Cat(key_text.status().message(), " (`key` in ", config->source, ")"));
  absl::StatusOr<consensus::SecretKey> key = consensus::SecretKey::Parse(*key_text);
  if (!key.ok()) return Failure(spec, env, Cat(config->key_file, ": ", key.status().message()));
  absl::StatusOr<Spool> spool = Spool::Open(config->spool_dir);
  if (!spool.ok()) return Failure(spec, env, std::string(spool.status().message()));

  bool scan_failed = false;
  std::optional<ScanReport> scanned;
  if (scan) {
    absl::StatusOr<ScanReport> report = ScanForUnattested(*spool, store_root, absl::Now());
    if (report.ok()) {
      env.err << "attest push: scan of the store at " << store_root << ": " << report->built << " built here, "
              << report->already_attested << " already attested, " << report->already_spooled
              << " already spooled, " << report->added.size() << " spooled now\n";
      scanned = *std::move(report);
    } else {
      env.err << "attest push: --scan: " << report.status().message() << "\n";
      scan_failed = true;
    }
  }

  PushOptions options;
  options.nodes = nodes;
  options.give_up_after = give_up_after;
  options.rpc_timeout = std::min(options.rpc_timeout, give_up_after);
  if (auto system = args.Value("system")) options.system = *system;
  auto log = [&env](std::string_view line) { env.err << "attest push: " << line << "\n"; };

  if (watch) {
    StopSignals signals;
    Pusher pusher(*spool, *std::move(key), options, connect, InterruptibleClock(), log);
    // A node that stays down fails every retry the same way: print an outcome only when it changes.
    struct Shown {
      std::string path;
      OutcomeKind kind;
      int code;
    };
    std::map<std::pair<std::string, std::string>, Shown> shown;  // (record, node) -> last printed
    std::set<std::string> shown_errors;
    auto on_pass = [&](const PushReport& pass) {
      PushReport news = pass;
      news.outcomes.clear();
      for (const PushOutcome& o : pass.outcomes) {
        auto [it, fresh] = shown.try_emplace({Cat(o.record_id, " ", o.path), o.node}, Shown{o.path, o.kind, o.code});
        if (!fresh && it->second.kind == o.kind && it->second.code == o.code) continue;
        it->second = Shown{o.path, o.kind, o.code};
        news.outcomes.push_back(o);
      }
      // A delivered record is gone; if the path is spooled again, its outcomes are news again.
      const std::set<std::string> delivered(pass.delivered.begin(), pass.delivered.end());
      std::erase_if(shown, [&](const auto& entry) { return delivered.contains(entry.second.path); });
      news.spool_errors.clear();
      for (const std::string& e : pass.spool_errors) {
        if (shown_errors.insert(e).second) news.spool_errors.push_back(e);
      }
      PrintDerivationWarnings(env.err, pass);
      if (news.outcomes.empty() && news.delivered.empty() && news.spool_errors.empty()) return;
      if (json_output) {
        env.out << ReportJson(news, std::nullopt, false).dump() << "\n";
      } else {
        PrintText(env.out, news);
      }
      for (const std::string& e : news.spool_errors) {
        env.err << "attest push: spool file " << e << " (left in place: fix or delete it)\n";
      }
      env.out.flush();
    };
    absl::Status status = pusher.Watch([] { return StopRequested(); }, on_pass);
    if (!status.ok()) return Failure(spec, env, std::string(status.message()));
    env.err << "attest push: stopped\n";
    return scan_failed ? kExitFailure : kExitOk;
  }

  Pusher pusher(*spool, *std::move(key), options, connect, PushClock::Real(), log);
  PushReport report = pusher.PushOnce();
  if (json_output) {
    env.out << DumpJson(ReportJson(report, scanned, true)) << "\n";
  } else {
    PrintText(env.out, report);
  }
  for (const std::string& e : report.spool_errors) {
    env.err << "attest push: spool file " << e << " (left in place: fix or delete it)\n";
  }
  PrintDerivationWarnings(env.err, report);
  if (!report.fatal.ok()) return Failure(spec, env, std::string(report.fatal.message()));
  env.err << "attest push: " << report.delivered.size() << " delivered to every node, " << report.remaining
          << " left in the spool " << spool->dir() << DerivationSummary(report);
  if (report.gave_up) env.err << " (nodes did not answer in time: run `attest push` again later)";
  env.err << "\n";
  return report.remaining == 0 && !scan_failed ? kExitOk : kExitFailure;
}

}  // namespace

CommandSpec PushCommand() {
  return CommandSpec{
      .name = "push",
      .synopsis = "attest push [--config FILE] [--node ADDR]... [--watch] [--scan [--store-root DIR]] [--json]",
      .summary = "Ship the builder's spool of built paths to the nodes.",
      .description =
          "Reads each record `attest hook` left in the spool, takes the path's NAR hash, size and references\n"
          "from the Nix database of the store it was built in, signs its Nix fingerprint with the builder key\n"
          "and submits it to every node (from the config, or each --node). A record is removed only after\n"
          "every node acknowledged it (accepted or already present). Paths Nix does not mark as built here\n"
          "(`ultimate`) are refused, except records of `nix-store --realise --check` rebuilds (build kind\n"
          "check), and records the nodes reject stay, with the reason, until fixed.\n"
          "Unreachable nodes are retried with backoff; a one-shot push gives up after --timeout (30 s).\n"
          "\n"
          "Each node that acknowledged records is also offered their derivations: the .drv that built each\n"
          "path and every .drv it needs, read from the store, so that rebuilders without the Nix expressions\n"
          "can build them (`attest wanted`). The node is sent only those it lacks. This is best effort: a\n"
          "problem with derivations is a warning on stderr and never keeps a record or fails the push.\n"
          "\n"
          "--scan first spools the paths built in the store at --store-root (default /) that were never\n"
          "attested (for example built before the hook was set up, or while it failed): everything Nix marks\n"
          "`ultimate` that is neither in the spool nor in its ledger of delivered records (<spool>/.attested).\n"
          "--watch keeps running, sending new records as they appear, until SIGTERM or SIGINT.\n"
          "\n"
          "The config (--config, else $ATTEST_BUILDER_CONFIG) is the one `attest hook` uses: `key`, `spool`,\n"
          "`nodes` (and `tls_ca` for nodes with TLS). Prints one line per record and node (--json: one object;\n"
          "with --watch one per line).\n"
          "\n"
          "Exit status: 0 when the spool is empty afterwards (--watch: when stopped by a signal), 1 while\n"
          "records remain or on errors, 2 on usage errors.",
      .options =
          {
              {"config", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
               "builder config (default: $ATTEST_BUILDER_CONFIG)"},
              {"node", OptionKind::kValue, OptionRepeat::kMany, "ADDR",
               "a node's gRPC address, host:port or https://host:port (TLS); repeat for several (default: "
               "`nodes` of the config)"},
              {"tls-ca", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
               "PEM CA certificate(s) of the nodes' TLS certificates (default: `tls_ca` of the config, else the "
               "system's CAs)"},
              {"watch", OptionKind::kFlag, OptionRepeat::kOnce, "", "keep running and push new records as they come"},
              {"scan", OptionKind::kFlag, OptionRepeat::kOnce, "",
               "first spool the store's locally built paths that were never attested"},
              {"store-root", OptionKind::kValue, OptionRepeat::kOnce, "DIR",
               "with --scan: the store to scan, / or a chroot store's directory (default /)"},
              {"timeout", OptionKind::kValue, OptionRepeat::kOnce, "DURATION",
               "give up after this long when nodes do not answer: seconds or e.g. 500ms, 2m (default 30)"},
              {"system", OptionKind::kValue, OptionRepeat::kOnce, "SYSTEM",
               "the build platform to record in each attestation, e.g. x86_64-linux"},
              JsonOptionSpec(),
          },
      .examples =
          "  attest push --config /etc/nix/attest-builder.toml\n"
          "  attest push --scan --node 127.0.0.1:7700 --node node2.example:7700\n"
          "  ATTEST_BUILDER_CONFIG=/etc/nix/attest-builder.toml attest push --watch   # as a service\n",
      .run = RunPush,
  };
}

}  // namespace attest::client
