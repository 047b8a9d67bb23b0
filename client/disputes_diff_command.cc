// attest disputes diff: what differs between the two sides of a dispute, from the bytes, on the
// maintainer's own machine.
//
// The dispute (GetDispute) names the competing fingerprints and the operators behind each; the policy
// (GetPolicy, its canonical text) names each operator's binary caches. Each of the two leading sides is
// fetched from its own operators' caches, then from the caches given with --cache, verified against its
// claim, unpacked and compared with diffoscope (storage/nar_diff.h) in a temporary directory that is
// removed afterwards. A cache can only ever deliver bytes that match the side's claim exactly, so any
// cache may be tried for either side.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/terminal_text.h"
#include "consensus/cache_url.h"
#include "consensus/encoding.h"
#include "consensus/path_info.h"
#include "consensus/sha256.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"
#include "storage/nar_diff.h"

namespace attest::client {
namespace {

using consensus::Cat;

constexpr uint64_t kDefaultMaxNarMib = 256;
constexpr uint64_t kMaxNarMibLimit = uint64_t{1} << 20;  // 1 TiB: beyond it the option is a typo

// Operator name -> its caches in the policy's order, from the canonical policy text (consensus/policy.h:
// an "operator <name>" line, then that operator's "builder" and "cache <url>" lines).
absl::flat_hash_map<std::string, std::vector<std::string>> OperatorCaches(std::string_view canonical_text) {
  absl::flat_hash_map<std::string, std::vector<std::string>> caches;
  std::string current;
  while (!canonical_text.empty()) {
    const size_t end = canonical_text.find('\n');
    const std::string_view line = canonical_text.substr(0, end);
    canonical_text.remove_prefix(end == std::string_view::npos ? canonical_text.size() : end + 1);
    if (line.starts_with("operator ")) {
      current = std::string(line.substr(9));
      caches[current];
    } else if (line.starts_with("cache ") && !current.empty()) {
      caches[current].push_back(std::string(line.substr(6)));
    } else if (line.starts_with("maintainer ") || line.starts_with("quorum ")) {
      current.clear();
    }
  }
  return caches;
}

// A fresh directory "attest-diff-XXXXXX" under `parent`.
absl::StatusOr<std::string> MakeTempDir(const std::string& parent) {
  std::string pattern = Cat(parent, "/attest-diff-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::FailedPreconditionError(
        Cat("cannot make a work directory in ", parent, ": ", std::strerror(errno), " (pass --work-dir DIR)"));
  }
  return pattern;
}

// Whether `program` (a name looked up in PATH, as RunDiffoscope starts it) can be run: checked before
// any NAR is fetched, so a missing tool costs no download. PATH unset or empty: not found.
bool ProgramInPath(std::string_view program, const std::optional<std::string>& path) {
  if (!path) return false;
  std::string_view dirs = *path;
  while (true) {
    const size_t end = dirs.find(':');
    std::string dir(dirs.substr(0, end));
    if (dir.empty()) dir = ".";
    if (::access(Cat(dir, "/", program).c_str(), X_OK) == 0) return true;
    if (end == std::string_view::npos) return false;
    dirs.remove_prefix(end + 1);
  }
}


struct Side final {
  consensus::PathInfo claim;
  std::vector<std::string> operators;
  std::vector<std::string> caches;
};

int RunDiff(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (args.positionals().size() != 1) return UsageError(spec, env, "give exactly one dispute id or store path");

  storage::NarDiffOptions options;
  uint64_t max_nar_mib = kDefaultMaxNarMib;
  if (auto text = args.Value("max-nar-mib")) {
    auto parsed = consensus::ParseStrictDecimal(*text);
    if (!parsed || *parsed == 0 || *parsed > kMaxNarMibLimit) {
      return UsageError(spec, env, Cat("--max-nar-mib must be a whole number of MiB from 1 to ", kMaxNarMibLimit));
    }
    max_nar_mib = *parsed;
  }
  options.max_nar_bytes = max_nar_mib << 20;
  if (auto text = args.Value("diff-timeout")) {
    auto parsed = ParseTimeout(*text);
    if (!parsed.ok()) return UsageError(spec, env, Cat("--diff-timeout: ", parsed.status().message()));
    options.diffoscope.time_limit = *parsed;
  }
  std::vector<std::string> extra_caches;
  for (const std::string& url : args.Values("cache")) {
    auto normalised = consensus::ValidateCacheUrl(url);
    if (!normalised.ok()) return UsageError(spec, env, Cat("--cache ", url, ": ", normalised.status().message()));
    extra_caches.push_back(*std::move(normalised));
  }
  std::string work_parent = args.Value("work-dir").value_or("");
  if (work_parent.empty() && env.env_var) work_parent = env.env_var("TMPDIR").value_or("");
  if (work_parent.empty()) work_parent = "/tmp";
  if (auto html = args.Value("html")) {
    if (html->empty()) return UsageError(spec, env, "--html needs a file name");
    options.diffoscope.html_path = *html;
  }

  auto node = env.connect_node(*node_options);
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
  v1::GetDisputeRequest request;
  request.set_id(args.positionals()[0]);
  auto dispute = (*node)->GetDispute(request);
  if (!dispute.ok()) {
    std::string message(dispute.status().message());
    if (absl::IsNotFound(dispute.status())) {
      message += " (only a DISPUTED path has two sides to compare; `attest status` shows a path's verdict)";
    }
    return Failure(spec, env, message);
  }
  if (!dispute->realisation_key().empty()) {
    return Failure(spec, env,
                   Cat("dispute ", dispute->id(), " is about the derivation output ", Printable(dispute->realisation_key()),
                       ": its sides are different output paths, not two NARs of one path; compare them with "
                       "`attest disputes diff` on an output path's own dispute, or fetch both with nix copy"));
  }
  if (dispute->fingerprints_size() < 2) {
    return Failure(spec, env, Cat("dispute ", dispute->id(), " lists ", dispute->fingerprints_size(),
                                  " fingerprint(s): there are not two sides to compare"));
  }
  auto policy = (*node)->GetPolicy(v1::GetPolicyRequest());
  if (!policy.ok()) return Failure(spec, env, std::string(policy.status().message()));
  // The caches come from the canonical text: it must be the text the node's policy hash names.
  if (Cat("sha256:", consensus::HexEncode(consensus::Sha256(policy->canonical_text()))) != policy->hash()) {
    return Failure(spec, env,
                   Cat("the node's policy text does not hash to its policy hash ", Printable(policy->hash()),
                       ": its caches cannot be trusted to be the federation's"));
  }
  const auto operator_caches = OperatorCaches(policy->canonical_text());

  std::vector<Side> sides;
  for (int i = 0; i < 2; ++i) {
    const v1::FingerprintTally& tally = dispute->fingerprints(i);
    auto claim = consensus::PathInfo::ParseFingerprint(tally.fingerprint());
    if (!claim.ok()) {
      return Failure(spec, env, Cat("the node answered a fingerprint that does not parse: ", claim.status().message()));
    }
    Side side{.claim = *std::move(claim),
              .operators = {tally.operators().begin(), tally.operators().end()},
              .caches = {}};
    auto add = [&side](const std::string& url) {
      if (std::find(side.caches.begin(), side.caches.end(), url) == side.caches.end()) side.caches.push_back(url);
    };
    for (const std::string& op : side.operators) {
      auto found = operator_caches.find(op);
      if (found == operator_caches.end()) continue;
      for (const std::string& url : found->second) add(url);
    }
    for (const std::string& url : extra_caches) add(url);
    sides.push_back(std::move(side));
  }

  std::ostream& out = env.out;
  // What the node sends is printed with control bytes replaced (Printable), as the report is.
  out << "dispute  " << Printable(dispute->id()) << "\n"
      << "path     " << Printable(dispute->store_path()) << "\n";
  if (dispute->fingerprints_size() > 2) {
    out << "note     " << dispute->fingerprints_size() << " competing fingerprints; comparing the first two\n";
  }
  const char* names[] = {"A", "B"};
  for (size_t i = 0; i < 2; ++i) {
    const Side& side = sides[i];
    out << "side " << names[i] << "   NarHash " << side.claim.nar_hash.ToSri() << " (" << side.claim.nar_size
        << " bytes) from " << (side.operators.empty() ? "-" : Printable(absl::StrJoin(side.operators, ", ")))
        << "\n"
        << "         caches: " << (side.caches.empty() ? "none" : Printable(absl::StrJoin(side.caches, " "))) << "\n";
  }
  out.flush();
  for (size_t i = 0; i < 2; ++i) {
    if (sides[i].caches.empty()) {
      return Failure(spec, env,
                     Cat("side ", names[i], " (", absl::StrJoin(sides[i].operators, ", "),
                         "): the policy lists no cache for its operators; pass --cache URL of a cache that holds "
                         "its NAR"));
    }
  }

  if (!ProgramInPath(options.diffoscope.program, env.env_var ? env.env_var("PATH") : std::nullopt)) {
    return Failure(spec, env, Cat("cannot compare the two sides: ", options.diffoscope.program,
                                  " is not in PATH (install the Debian package diffoscope)"));
  }
  auto temp = MakeTempDir(work_parent);
  if (!temp.ok()) return Failure(spec, env, std::string(temp.status().message()));
  const storage::DiffSide a{.claim = sides[0].claim, .cache_urls = sides[0].caches};
  const storage::DiffSide b{.claim = sides[1].claim, .cache_urls = sides[1].caches};
  const std::string work_dir = Cat(*temp, "/work");
  absl::StatusOr<storage::NarDiffResult> result = storage::DiffNars(a, b, work_dir, options);
  ::rmdir(temp->c_str());  // DiffNars removed what it made inside
  if (!result.ok()) {
    const absl::Status& status = result.status();
    std::string message(status.message());
    if (absl::IsNotFound(status) || (absl::IsUnavailable(status) && message.starts_with("no cache"))) {
      std::string which = "a side";
      for (size_t i = 0; i < 2; ++i) {
        if (message.find(sides[i].claim.nar_hash.ToNix32()) != std::string::npos) {
          which = Cat("side ", names[i], " (", absl::StrJoin(sides[i].operators, ", "), ")");
        }
      }
      message = Cat("the bytes of ", which, " are not available: ", message,
                    " (pass --cache URL of a binary cache that holds it)");
    } else if (absl::IsFailedPrecondition(status) && message.find("compared at most") != std::string::npos) {
      message += " (raise --max-nar-mib to compare it)";
    } else if (absl::IsDeadlineExceeded(status)) {
      message += " (raise --diff-timeout)";
    }
    return Failure(spec, env, Cat("cannot compare the two sides: ", message));
  }
  out << "side A   fetched from " << result->a_source << "\n"
      << "side B   fetched from " << result->b_source << "\n";
  if (result->diff.verdict == storage::DiffoscopeVerdict::kSame) {
    out << "\nthe two NARs unpack to trees diffoscope finds identical (their differences are in what it does "
           "not compare, such as file metadata)\n";
    return kExitOk;
  }
  out << "\ndiffering files:\n";
  if (result->differing_files.empty()) out << "  (none named: see the report, e.g. files present on one side only)\n";
  for (const std::string& file : result->differing_files) {
    out << "  " << Printable(file.empty() ? std::string(".") : file) << "\n";
  }
  // diffoscope ran on a/<name> and b/<name> inside the work directory: the report shows no local path.
  out << "\ndiffoscope report (side A is a/, side B is b/):\n" << Printable(result->diff.text, Lines::kMany);
  if (!result->diff.text.empty() && result->diff.text.back() != '\n') out << "\n";
  if (result->diff.text_truncated) out << "[report cut at " << options.diffoscope.max_text_bytes << " bytes]\n";
  if (!options.diffoscope.html_path.empty()) {
    if (result->diff.html_path.empty()) {
      env.err << "attest disputes diff: diffoscope wrote no HTML report\n";
    } else {
      out << "\nHTML report: " << result->diff.html_path << "\n";
    }
  }
  return kExitOk;
}

}  // namespace

CommandSpec DisputesDiffCommand() {
  CommandSpec spec{
      .name = "disputes diff",
      .synopsis = "attest disputes diff --node ADDR ID | STORE_PATH [--cache URL]... [--work-dir DIR] "
                  "[--max-nar-mib N] [--diff-timeout DURATION] [--html FILE]",
      .summary = "Fetch the two sides of a dispute and show what differs (diffoscope).",
      .description =
          "Asks the node for the dispute (ID is a dispute id d-... or the disputed store path) and its\n"
          "policy, takes the first two competing fingerprints, and fetches each side's NAR from the binary\n"
          "caches the policy lists for that side's operators, then from each --cache URL (file://, http://,\n"
          "https://; one may hold either side). A NAR is used only when its narinfo describes exactly that\n"
          "side's claim and its bytes verify against the claimed NarHash and NarSize. Both are unpacked in a\n"
          "temporary directory under --work-dir (default $TMPDIR, else /tmp), removed afterwards, and\n"
          "compared with diffoscope (the Debian package diffoscope; looked up in PATH).\n"
          "Prints the two sides (NarHash, operators, caches, where each NAR came from), the differing files\n"
          "and diffoscope's text report. --html FILE also writes diffoscope's HTML report to FILE.\n"
          "--max-nar-mib bounds each NAR (default 256); --diff-timeout bounds diffoscope's run (default 5m);\n"
          "--timeout is the deadline of each request to the node.\n"
          "\n"
          "Exit status: 0 when the two sides were compared (whether they differ or diffoscope finds them\n"
          "identical); 1 when they cannot be: no such dispute on the node, a side whose NAR no cache delivers\n"
          "(the message says, per cache, why), a NAR larger than --max-nar-mib, diffoscope not installed or\n"
          "failing or too slow, the node unreachable; 2 on usage errors.",
      .options = NodeOptionSpecs(),
      .examples = "  attest disputes diff --node 127.0.0.1:7700 /nix/store/cp8ic4pc...-nondet\n"
                  "  attest disputes diff --node 127.0.0.1:7700 d-0123... --cache https://cache.example.org \\\n"
                  "      --html nondet-diff.html\n",
      .run = RunDiff,
  };
  spec.options.push_back({.name = "cache", .kind = OptionKind::kValue, .repeat = OptionRepeat::kMany,
                          .value_name = "URL",
                          .help = "one more binary cache to try for either side, after the policy's"});
  spec.options.push_back({.name = "work-dir", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "DIR",
                          .help = "where the temporary unpack directory is made (default $TMPDIR)"});
  spec.options.push_back({.name = "max-nar-mib", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "N", .help = "largest NAR compared, in MiB (default 256)"});
  spec.options.push_back({.name = "diff-timeout", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "DURATION",
                          .help = "time limit of diffoscope: seconds or e.g. 90s, 10m (default 5m)"});
  spec.options.push_back({.name = "html", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "FILE", .help = "also write diffoscope's HTML report to FILE"});
  return spec;
}

}  // namespace attest::client
