#include "server/web/search_page.h"

#include <string>

#include "absl/strings/ascii.h"
#include "consensus/attestation.h"
#include "consensus/encoding.h"
#include "consensus/path_info.h"
#include "consensus/store_path.h"
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

std::string BuildKindOf(const v1::BuildMetadata& metadata) {
  absl::StatusOr<consensus::BuildMetadata> m = proto::FromProto(metadata);
  return std::string(consensus::BuildKindName(m.ok() ? m->build_kind : consensus::BuildKind::kUnspecified));
}

constexpr std::string_view kExplanation =
    "<p>Give a store path (<code>/nix/store/&lt;hash&gt;-&lt;name&gt;</code>) in the box above to see what this "
    "node knows about it: its verdict (UNKNOWN, PENDING, CONFIRMED or DISPUTED), the fingerprints builders "
    "signed, and its dispute if it has one.</p>\n";

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

  v1::StatusRequest request;
  request.add_store_paths(path->full());
  absl::StatusOr<v1::StatusResponse> answer = status_query_->Run(request);
  if (!answer.ok() || answer->statuses_size() != 1) {
    const absl::Status failure = answer.ok() ? absl::InternalError("the status query gave no answer") : answer.status();
    return ErrorResponse(format, HttpStatusOf(failure), StdView(failure.message()));
  }
  const v1::PathStatus& status = answer->statuses(0);
  const std::string verdict = v1::Verdict_Name(status.verdict());

  if (format == Format::kJson) {
    json fingerprints = json::array();
    for (const v1::FingerprintTally& f : status.fingerprints()) {
      fingerprints.push_back({{"fingerprint", f.fingerprint()},
                              {"operators", std::vector<std::string>(f.operators().begin(), f.operators().end())},
                              {"builders", std::vector<std::string>(f.builders().begin(), f.builders().end())}});
    }
    json attestations = json::array();
    for (const v1::CountedAttestation& a : status.attestations()) {
      attestations.push_back({{"signature", a.signature()},
                              {"fingerprint_index", a.fingerprint_index()},
                              {"received_unix", a.received_unix()},
                              {"deriver", a.metadata().deriver()},
                              {"build_kind", BuildKindOf(a.metadata())},
                              {"system", a.metadata().system()}});
    }
    json out = {{"store_path", status.store_path()},
                {"verdict", verdict},
                {"quorum", status.quorum()},
                {"policy_hash", status.policy_hash()},
                {"fingerprints", std::move(fingerprints)},
                {"flagged_builders",
                 std::vector<std::string>(status.flagged_builders().begin(), status.flagged_builders().end())},
                {"attestations", std::move(attestations)}};
    out["dispute_id"] = status.dispute_id().empty() ? json(nullptr) : json(status.dispute_id());
    out["dispute_url"] = status.dispute_id().empty() ? json(nullptr) : json(Cat("/disputes/", status.dispute_id()));
    return JsonResponse(200, DumpJson(out));
  }

  std::string body = Cat("<p><code id=\"searched-path\">", Escape(status.store_path()), "</code></p>\n",
                         "<p>Verdict: <span class=\"verdict\" id=\"verdict\">", Escape(verdict), "</span> (quorum ",
                         status.quorum(), " operators)</p>\n");
  if (!status.dispute_id().empty()) {
    body += Cat("<p>Builders disagree about this path: <a id=\"dispute-link\" href=\"/disputes/",
                Escape(status.dispute_id()), "\">dispute <code>", Escape(status.dispute_id()), "</code></a></p>\n");
  }
  if (status.fingerprints_size() == 0) {
    body += "<p>No builder of the policy has attested this path on this node.</p>\n";
  } else {
    body += "<h2>Fingerprints</h2>\n<table id=\"fingerprints\"><tr><th>NAR hash</th><th>NAR size</th>"
            "<th>Operators</th><th>Builders</th><th>Attestations</th></tr>\n";
    for (int i = 0; i < status.fingerprints_size(); ++i) {
      const v1::FingerprintTally& f = status.fingerprints(i);
      absl::StatusOr<consensus::PathInfo> claim = consensus::PathInfo::ParseFingerprint(f.fingerprint());
      std::string operators;
      for (const std::string& op : f.operators()) operators += Cat(operators.empty() ? "" : ", ", Escape(op));
      std::string builders;
      for (const std::string& b : f.builders()) builders += Cat(builders.empty() ? "" : ", ", "<code>", Escape(b), "</code>");
      std::string signed_here;
      for (const v1::CountedAttestation& a : status.attestations()) {
        if (a.fingerprint_index() != i) continue;
        const std::string key = a.signature().substr(0, a.signature().find(':'));
        signed_here += Cat("<li><code>", Escape(key), "</code>, received ", ShowTime(a.received_unix()), ", ",
                           Escape(BuildKindOf(a.metadata())),
                           a.metadata().deriver().empty() ? "" : Cat(", <code>", Escape(a.metadata().deriver()), "</code>"),
                           "</li>");
      }
      body += Cat("<tr class=\"fingerprint\"><td><code>",
                  claim.ok() ? Escape(claim->nar_hash.ToNix32()) : Escape(f.fingerprint()),
                  "</code></td><td>", claim.ok() ? ShowCount(static_cast<int64_t>(claim->nar_size)) : "",
                  "</td><td class=\"operators\">", operators, "</td><td>", builders, "</td><td><ul>", signed_here,
                  "</ul></td></tr>\n");
    }
    body += "</table>\n";
  }
  if (status.flagged_builders_size() > 0) {
    body += "<p class=\"flagged\">Flagged builders (signed more than one fingerprint):";
    for (const std::string& b : status.flagged_builders()) body += Cat(" <code>", Escape(b), "</code>");
    body += "</p>\n";
  }
  body += Cat("<p><a href=\"/search.json", Escape(QueryString({{"path", status.store_path()}})),
              "\">This answer as JSON</a></p>\n");
  return HtmlResponse(200, Frame("Store path", body, status.store_path()));
}

}  // namespace attest::server::web
