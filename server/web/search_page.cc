#include "server/web/search_page.h"

#include <span>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "consensus/attestation.h"
#include "consensus/path_info.h"
#include "consensus/realisation.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "proto/convert.h"
#include "server/web/json.h"

namespace attest::server::web {
namespace {

using consensus::Cat;
using consensus::StdView;
using nlohmann::json;

// "/nix/store/<hash>-<name>/sub/path" -> "/nix/store/<hash>-<name>".
std::string_view StoreObjectOf(std::string_view path) {
  const std::string prefix = Cat(consensus::kStoreDir, "/");
  if (path.substr(0, prefix.size()) != prefix) return path;
  const size_t slash = path.find('/', prefix.size());
  return slash == std::string_view::npos ? path : path.substr(0, slash);
}

constexpr std::string_view kExplanation =
    "<p>Give a store path (<code>/nix/store/&lt;hash&gt;-&lt;name&gt;</code>) in the box above to see what this "
    "node knows about it: its verdict (UNKNOWN, PENDING, CONFIRMED or DISPUTED), the fingerprints builders "
    "signed, and its dispute if it has one. A derivation output of a content-addressed derivation "
    "(<code>/nix/store/&lt;hash&gt;-&lt;name&gt;.drv^out</code> or <code>sha256:&lt;hex&gt;!out</code>) shows "
    "the output paths builders realised it as.</p>\n";

}  // namespace

SearchPage::SearchPage(const StatusQuery* status_query) : status_query_(status_query) {}

HttpResponse SearchPage::Render(std::string_view asked, Format format) const {
  const std::string trimmed(absl::StripAsciiWhitespace(consensus::AbslView(asked)));
  if (trimmed.empty()) {
    if (format == Format::kJson) {
      return ErrorResponse(format, 400, "path is missing: ask /search.json?path=/nix/store/<hash>-<name>");
    }
    return HtmlResponse(200, Frame("Look up a store path", kExplanation));
  }
  if (consensus::RealisationKey::LooksLikeKey(trimmed)) return RenderRealisation(trimmed, format);
  const std::string_view object = StoreObjectOf(trimmed);
  absl::StatusOr<consensus::StorePath> path = consensus::StorePath::Parse(object);
  if (!path.ok()) {
    const std::string message =
        Cat("not a store path: ", StdView(path.status().message()), " (give /nix/store/<hash>-<name>)");
    if (format == Format::kJson) return ErrorResponse(format, 400, message);
    return HtmlResponse(400, Frame("Look up a store path",
                                   Cat("<p class=\"error\" id=\"error\">", Escape(message), "</p>\n", kExplanation),
                                   trimmed));
  }

  absl::StatusOr<std::vector<PathStatus>> answer = status_query_->Answer(std::span<const consensus::StorePath>(&*path, 1));
  if (!answer.ok() || answer->size() != 1) {
    const absl::Status failure = answer.ok() ? absl::InternalError("the status query gave no answer") : answer.status();
    return ErrorResponse(format, HttpStatusOf(failure), StdView(failure.message()));
  }
  const PathStatus& status = answer->front();
  const std::string store_path = status.path.full();
  const std::string verdict(consensus::VerdictName(status.result.verdict));
  const std::vector<consensus::FingerprintTally>& tallies = status.result.fingerprints;
  // The counted attestations, in the order of the fingerprints they count for.
  auto counted_for = [&status](const consensus::FingerprintTally& f) {
    std::vector<const storage::StoredAttestation*> counted;
    for (size_t input : f.attestations) counted.push_back(&status.stored[status.stored_index[input]]);
    return counted;
  };

  if (format == Format::kJson) {
    json fingerprints = json::array();
    json attestations = json::array();
    for (size_t i = 0; i < tallies.size(); ++i) {
      const consensus::FingerprintTally& f = tallies[i];
      fingerprints.push_back({{"fingerprint", f.fingerprint}, {"operators", f.operators}, {"builders", f.builders}});
      for (const storage::StoredAttestation* a : counted_for(f)) {
        const consensus::BuildMetadata& m = a->attestation.metadata;
        attestations.push_back({{"signature", a->attestation.signature.ToString()},
                                {"fingerprint_index", static_cast<int32_t>(i)},
                                {"received_unix", a->received_unix},
                                {"deriver", m.deriver},
                                {"build_kind", consensus::BuildKindName(m.build_kind)},
                                {"system", m.system}});
      }
    }
    json out = {{"store_path", store_path},
                {"verdict", verdict},
                {"quorum", status.quorum},
                {"policy_hash", status.policy_hash},
                {"policy_version", status.policy_version},
                {"rule", status.rule},
                {"quorum_text", status.quorum_text},
                {"quorum_explanation", status.quorum_explanation},
                {"fingerprints", std::move(fingerprints)},
                {"flagged_builders", status.result.flagged_builders},
                {"attestations", std::move(attestations)}};
    out["dispute_id"] = status.dispute_id.empty() ? json(nullptr) : json(status.dispute_id);
    out["dispute_url"] = status.dispute_id.empty() ? json(nullptr) : json(Cat("/disputes/", status.dispute_id));
    return JsonResponse(200, DumpJson(out));
  }

  std::string body = Cat("<p><code id=\"searched-path\">", Escape(store_path), "</code></p>\n",
                         "<p>Verdict: <span class=\"verdict\" id=\"verdict\">", Escape(verdict), "</span></p>\n",
                         "<p id=\"rule\">Rule <code>", Escape(status.rule), "</code>: needs <span id=\"quorum-text\">",
                         Escape(status.quorum_text), "</span> (policy version ", status.policy_version,
                         ", <code title=\"", Escape(status.policy_hash), "\">",
                         Escape(status.policy_hash.substr(0, 7 + 12)), "</code>)</p>\n");
  if (!status.quorum_explanation.empty()) {
    body += Cat("<p>Quorum: <span id=\"quorum-explanation\">", Escape(status.quorum_explanation), "</span></p>\n");
  }
  if (!status.dispute_id.empty()) {
    body += Cat("<p>Builders disagree about this path: <a id=\"dispute-link\" href=\"/disputes/",
                Escape(status.dispute_id), "\">dispute <code>", Escape(status.dispute_id), "</code></a></p>\n");
  }
  if (tallies.empty()) {
    body += "<p>No builder of the policy has attested this path on this node.</p>\n";
  } else {
    body += "<h2>Fingerprints</h2>\n<table id=\"fingerprints\"><tr><th>NAR hash</th><th>NAR size</th>"
            "<th>Operators</th><th>Builders</th><th>Attestations</th></tr>\n";
    for (const consensus::FingerprintTally& f : tallies) {
      absl::StatusOr<consensus::PathInfo> claim = consensus::PathInfo::ParseFingerprint(f.fingerprint);
      std::string operators;
      for (const std::string& op : f.operators) operators += Cat(operators.empty() ? "" : ", ", Escape(op));
      std::string builders;
      for (const std::string& b : f.builders) builders += Cat(builders.empty() ? "" : ", ", "<code>", Escape(b), "</code>");
      std::string signed_here;
      for (const storage::StoredAttestation* a : counted_for(f)) {
        const consensus::BuildMetadata& m = a->attestation.metadata;
        signed_here += Cat("<li><code>", Escape(a->attestation.key_name()), "</code>, received ",
                           ShowTime(a->received_unix), ", ", Escape(consensus::BuildKindName(m.build_kind)),
                           m.deriver.empty() ? "" : Cat(", <code>", Escape(m.deriver), "</code>"), "</li>");
      }
      body += Cat("<tr class=\"fingerprint\"><td><code>",
                  claim.ok() ? Escape(claim->nar_hash.ToNix32()) : Escape(f.fingerprint),
                  "</code></td><td>", claim.ok() ? ShowCount(static_cast<int64_t>(claim->nar_size)) : "",
                  "</td><td class=\"operators\">", operators, "</td><td>", builders, "</td><td><ul>", signed_here,
                  "</ul></td></tr>\n");
    }
    body += "</table>\n";
  }
  if (!status.result.flagged_builders.empty()) {
    body += "<p class=\"flagged\">Flagged builders (signed more than one fingerprint):";
    for (const std::string& b : status.result.flagged_builders) body += Cat(" <code>", Escape(b), "</code>");
    body += "</p>\n";
  }
  body += Cat("<p><a href=\"/search.json", Escape(QueryString({{"path", store_path}})),
              "\">This answer as JSON</a></p>\n");
  return HtmlResponse(200, Frame("Store path", body, store_path));
}

HttpResponse SearchPage::RenderRealisation(const std::string& key_text, Format format) const {
  absl::StatusOr<consensus::RealisationKey> key = consensus::RealisationKey::Parse(key_text);
  if (!key.ok()) {
    const std::string message = Cat("not a realisation key: ", StdView(key.status().message()));
    if (format == Format::kJson) return ErrorResponse(format, 400, message);
    return HtmlResponse(400, Frame("Look up a store path",
                                   Cat("<p class=\"error\" id=\"error\">", Escape(message), "</p>\n", kExplanation),
                                   key_text));
  }
  v1::StatusRequest request;
  request.add_store_paths(key->ToString());
  absl::StatusOr<v1::StatusResponse> answer = status_query_->Run(request);
  if (!answer.ok() || answer->statuses_size() != 1) {
    const absl::Status failure = answer.ok() ? absl::InternalError("the status query gave no answer") : answer.status();
    return ErrorResponse(format, HttpStatusOf(failure), StdView(failure.message()));
  }
  const v1::PathStatus& status = answer->statuses(0);
  const std::string canonical = key->ToString();
  absl::StatusOr<consensus::Verdict> verdict_value = proto::FromProto(status.verdict());
  const std::string verdict(verdict_value.ok() ? consensus::VerdictName(*verdict_value) : "UNKNOWN");
  // The output path each fingerprint claims ("" when a fingerprint does not parse, which a node that
  // stored it would not send).
  std::vector<std::string> out_paths;
  for (const v1::FingerprintTally& f : status.fingerprints()) {
    absl::StatusOr<consensus::Realisation> claim = consensus::Realisation::ParseFingerprint(f.fingerprint());
    out_paths.push_back(claim.ok() ? claim->out_path.full() : std::string());
  }

  if (format == Format::kJson) {
    json fingerprints = json::array();
    for (int i = 0; i < status.fingerprints_size(); ++i) {
      const v1::FingerprintTally& f = status.fingerprints(i);
      fingerprints.push_back({{"fingerprint", f.fingerprint()},
                              {"out_path", out_paths[static_cast<size_t>(i)]},
                              {"operators", std::vector<std::string>(f.operators().begin(), f.operators().end())},
                              {"builders", std::vector<std::string>(f.builders().begin(), f.builders().end())}});
    }
    json attestations = json::array();
    for (const v1::CountedAttestation& a : status.attestations()) {
      attestations.push_back({{"signature", a.signature()},
                              {"fingerprint_index", a.fingerprint_index()},
                              {"received_unix", a.received_unix()},
                              {"deriver", a.metadata().deriver()},
                              {"system", a.metadata().system()}});
    }
    json out = {{"realisation_key", canonical},
                {"verdict", verdict},
                {"quorum", status.quorum()},
                {"policy_hash", status.policy_hash()},
                {"policy_version", status.policy_version()},
                {"rule", status.rule()},
                {"quorum_text", status.quorum_text()},
                {"quorum_explanation", status.quorum_explanation()},
                {"fingerprints", std::move(fingerprints)},
                {"flagged_builders", std::vector<std::string>(status.flagged_builders().begin(),
                                                              status.flagged_builders().end())},
                {"attestations", std::move(attestations)}};
    out["out_path"] = verdict == "CONFIRMED" && !out_paths.empty() ? json(out_paths.front()) : json(nullptr);
    out["dispute_id"] = status.dispute_id().empty() ? json(nullptr) : json(status.dispute_id());
    out["dispute_url"] = status.dispute_id().empty() ? json(nullptr) : json(Cat("/disputes/", status.dispute_id()));
    return JsonResponse(200, DumpJson(out));
  }

  std::string body = Cat("<p>Derivation output <code id=\"searched-path\">", Escape(canonical), "</code></p>\n",
                         "<p>Verdict: <span class=\"verdict\" id=\"verdict\">", Escape(verdict), "</span></p>\n",
                         "<p id=\"rule\">Rule <code>", Escape(status.rule()), "</code>: needs <span id=\"quorum-text\">",
                         Escape(status.quorum_text()), "</span> (policy version ", status.policy_version(), ")</p>\n");
  if (!status.quorum_explanation().empty()) {
    body += Cat("<p>Quorum: <span id=\"quorum-explanation\">", Escape(status.quorum_explanation()), "</span></p>\n");
  }
  if (!status.dispute_id().empty()) {
    body += Cat("<p>Builders realised this output as different paths: <a id=\"dispute-link\" href=\"/disputes/",
                Escape(status.dispute_id()), "\">dispute <code>", Escape(status.dispute_id()), "</code></a></p>\n");
  }
  if (status.fingerprints().empty()) {
    body += "<p>No builder of the policy has attested this derivation output on this node.</p>\n";
  } else {
    body += "<h2>Output paths</h2>\n<table id=\"fingerprints\"><tr><th>Output path</th><th>Operators</th>"
            "<th>Builders</th><th>Attestations</th></tr>\n";
    for (int i = 0; i < status.fingerprints_size(); ++i) {
      const v1::FingerprintTally& f = status.fingerprints(i);
      std::string operators;
      for (const std::string& op : f.operators()) operators += Cat(operators.empty() ? "" : ", ", Escape(op));
      std::string builders;
      for (const std::string& b : f.builders()) builders += Cat(builders.empty() ? "" : ", ", "<code>", Escape(b), "</code>");
      std::string signed_here;
      for (const v1::CountedAttestation& a : status.attestations()) {
        if (a.fingerprint_index() != i) continue;
        signed_here += Cat("<li><code>", Escape(a.signature().substr(0, a.signature().find(':'))), "</code>, received ",
                           ShowTime(a.received_unix()), "</li>");
      }
      const std::string& out_path = out_paths[static_cast<size_t>(i)];
      body += Cat("<tr class=\"fingerprint\"><td><code class=\"out-path\">",
                  Escape(out_path.empty() ? f.fingerprint() : out_path), "</code></td><td class=\"operators\">",
                  operators, "</td><td>", builders, "</td><td><ul>", signed_here, "</ul></td></tr>\n");
    }
    body += "</table>\n";
  }
  body += Cat("<p><a href=\"/search.json", Escape(QueryString({{"path", canonical}})),
              "\">This answer as JSON</a></p>\n");
  return HtmlResponse(200, Frame("Derivation output", body, canonical));
}

}  // namespace attest::server::web
