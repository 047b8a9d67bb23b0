#include "server/web/dispute_pages.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "consensus/path_info.h"
#include "consensus/resolution.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "server/log.h"
#include "server/web/json.h"

namespace attest::server::web {
namespace {

using consensus::Cat;
using consensus::QuoteForError;
using consensus::StdView;
using nlohmann::json;

constexpr consensus::DisputeState kStates[] = {consensus::DisputeState::kOpen,
                                               consensus::DisputeState::kNondeterministic,
                                               consensus::DisputeState::kMalicious,
                                               consensus::DisputeState::kResolved};

std::string StateBadge(consensus::DisputeState state) {
  const std::string name(consensus::DisputeStateName(state));
  return Cat("<span class=\"state state-", name, "\">", name, "</span>");
}

std::string DisputeUrl(std::string_view id, Format format) {
  return Cat("/disputes/", id, format == Format::kJson ? ".json" : "");
}

// ---- the list -------------------------------------------------------------------------------------

struct ListFilters final {
  std::optional<consensus::DisputeState> state;
  std::string name;
  std::string operator_name;
  std::string after;
  int limit = kDefaultDisputePageSize;

  // The query of a link to another page with the same filters.
  std::vector<std::pair<std::string, std::string>> Arguments(std::string_view after_key) const {
    return {{"state", state ? std::string(consensus::DisputeStateName(*state)) : ""},
            {"name", name},
            {"operator", operator_name},
            {"after", std::string(after_key)},
            {"limit", limit == kDefaultDisputePageSize ? "" : std::to_string(limit)}};
  }
};

absl::StatusOr<ListFilters> ParseFilters(const std::vector<std::pair<std::string, std::string>>& query,
                                         const consensus::Policy& policy) {
  ListFilters filters;
  for (const auto& [name, value] : query) {
    if (name == "state") {
      if (value.empty() || value == "all") continue;
      absl::StatusOr<consensus::DisputeState> state = consensus::ParseDisputeState(value);
      if (!state.ok()) {
        return absl::InvalidArgumentError(Cat("state ", QuoteForError(value),
                                              " is not a dispute state: use open, nondeterministic, malicious, "
                                              "resolved, or all"));
      }
      filters.state = *state;
    } else if (name == "name") {
      filters.name = value;
    } else if (name == "operator") {
      if (value.empty()) continue;
      const auto& operators = policy.operators();
      const std::string& wanted = value;  // clang before 16 cannot capture a structured binding
      if (std::none_of(operators.begin(), operators.end(), [&](const auto& op) { return op.name == wanted; })) {
        std::string known;
        for (const auto& op : operators) known += Cat(known.empty() ? "" : ", ", op.name);
        return absl::InvalidArgumentError(
            Cat("operator ", QuoteForError(value), " is not an operator of the policy; the operators are ", known));
      }
      filters.operator_name = value;
    } else if (name == "after") {
      if (value.empty()) continue;
      if (!IsDisputeCursor(value)) {
        return absl::InvalidArgumentError(Cat("after ", QuoteForError(value),
                                              " is not a page cursor; follow the page's \"next\" link, or leave "
                                              "it out for the first page"));
      }
      filters.after = value;
    } else if (name == "limit") {
      if (value.empty()) continue;
      int limit = 0;
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), limit);
      if (error != std::errc() || end != value.data() + value.size() || limit < 1 || limit > kMaxDisputePageSize) {
        return absl::InvalidArgumentError(
            Cat("limit ", QuoteForError(value), " is not a number from 1 to ", kMaxDisputePageSize));
      }
      filters.limit = limit;
    } else {
      return absl::InvalidArgumentError(Cat("unknown argument ", QuoteForError(name),
                                            "; /disputes takes state, name, operator, after and limit"));
    }
  }
  return filters;
}

std::string FilterForm(const ListFilters& filters, const consensus::Policy& policy) {
  std::string states = Cat("<option value=\"all\"", filters.state ? "" : " selected", ">all</option>");
  for (consensus::DisputeState state : kStates) {
    const std::string_view name = consensus::DisputeStateName(state);
    states += Cat("<option value=\"", name, "\"", filters.state == state ? " selected" : "", ">", name, "</option>");
  }
  std::string operators = Cat("<option value=\"\"", filters.operator_name.empty() ? " selected" : "", ">any</option>");
  for (const consensus::Operator& op : policy.operators()) {
    operators += Cat("<option value=\"", Escape(op.name), "\"", op.name == filters.operator_name ? " selected" : "",
                     ">", Escape(op.name), "</option>");
  }
  return Cat("<form method=\"get\" action=\"/disputes\" class=\"filters\" id=\"filters\">"
             "<label>State<br><select name=\"state\" id=\"filter-state\">", states, "</select></label>"
             "<label>Package name contains<br><input type=\"text\" name=\"name\" id=\"filter-name\" value=\"",
             Escape(filters.name), "\"></label>"
             "<label>Operator<br><select name=\"operator\" id=\"filter-operator\">", operators, "</select></label>"
             "<button type=\"submit\" id=\"filter-submit\">Filter</button></form>\n");
}

// ---- one dispute ----------------------------------------------------------------------------------

using DisputeDetail = server::DisputeDetail;
using Side = DisputeDetail::Side;
using Signer = DisputeDetail::Signer;

std::string ShowNarHash(const consensus::PathInfo& claim) { return claim.nar_hash.ToNix32(); }

std::string SideName(size_t index) {
  return index < 26 ? std::string(1, static_cast<char>('A' + index)) : Cat("#", index + 1);
}

// What this node holds beside a signer's signature: the build metadata, receipt time and origin of the
// stored attestation (of a path, or a realisation attestation); metadata is null when it holds none.
struct HeldMetadata final {
  const consensus::BuildMetadata* metadata = nullptr;
  int64_t received_unix = 0;
  const std::string* origin = nullptr;
};

HeldMetadata HeldOf(const Signer& signer) {
  if (signer.stored) {
    return {&signer.stored->attestation.metadata, signer.stored->received_unix, &signer.stored->origin};
  }
  if (signer.stored_realisation) {
    return {&signer.stored_realisation->attestation.metadata, signer.stored_realisation->received_unix,
            &signer.stored_realisation->origin};
  }
  return {};
}

bool IsFlagged(const DisputeDetail& detail, std::string_view builder) {
  return std::find(detail.record.flagged_builders.begin(), detail.record.flagged_builders.end(), builder) !=
         detail.record.flagged_builders.end();
}

// ---- what differs in the bytes ---------------------------------------------------------------------

std::string DiffUrl(std::string_view id, std::string_view report) { return Cat("/disputes/", id, "/diff.", report); }

// The side (index into detail.sides) a compared fingerprint is, or -1 when the dispute no longer has it.
int SideOf(const DisputeDetail& detail, std::string_view fingerprint) {
  for (size_t s = 0; s < detail.sides.size(); ++s) {
    if (detail.sides[s].fingerprint == fingerprint) return static_cast<int>(s);
  }
  return -1;
}

bool Outdated(const DisputeDetail& detail, const DisputeDiff& diff) {
  return std::any_of(diff.fingerprints.begin(), diff.fingerprints.end(),
                     [&](const std::string& f) { return SideOf(detail, f) < 0; });
}

std::string ShowFile(std::string_view file) {
  return file.empty() ? std::string("(the store path itself)") : Cat("<code>", Escape(file), "</code>");
}

std::string DiffHtmlSection(const DisputeDetail& detail, const DisputeDiffer* differ) {
  const std::string& id = detail.stored.id;
  std::string body = "<h2>What differs</h2>\n<section id=\"what-differs\">";
  const std::optional<DisputeDiff> diff = differ == nullptr ? std::nullopt : differ->Result(id);
  if (detail.record.subject.is_realisation()) {
    // The sides name different output paths, each a store path of its own: their bytes are compared in
    // those paths' disputes, if builders disagree about them too.
    body += "<p id=\"diff-status\">Builders disagree about which output path this derivation output produced; "
            "each output path's contents are attested (and compared) as a store path of its own. Search for "
            "an output path above to see its attestations.</p>";
  } else if (differ == nullptr) {
    body += "<p id=\"diff-status\">This node does not compare the bytes of disputes.</p>";
  } else if (!diff) {
    body += detail.stored.state == consensus::DisputeState::kOpen
                ? "<p id=\"diff-status\">Not compared yet: the node fetches the NARs of the two leading sides "
                  "from their operators' caches and runs diffoscope on them in the background. Reload later.</p>"
                : "<p id=\"diff-status\">Not compared: the node compares the bytes while a dispute is open.</p>";
  } else if (diff->state == DisputeDiff::State::kUnavailable) {
    body += Cat("<p id=\"diff-status\">Not compared: ", Escape(diff->reason), ".",
                diff->reason == kNoCacheKnown ? "" : " The node tries again later.", "</p>");
  } else {
    std::string compared;
    for (size_t i = 0; i < diff->fingerprints.size(); ++i) {
      const int side = SideOf(detail, diff->fingerprints[i]);
      compared += Cat(i == 0 ? "" : " with ", side < 0 ? std::string("an earlier side") : Cat("side ", SideName(side)),
                      i < diff->sources.size() ? Cat(" (from <code>", Escape(diff->sources[i]), "</code>)") : "");
    }
    body += Cat("<p id=\"diff-status\">diffoscope compared ", compared, " on ", ShowTime(diff->time_unix), ".",
                Outdated(detail, *diff) ? " The dispute has changed since; a new comparison is pending." : "",
                "</p>");
    if (diff->same) {
      body += "<p id=\"diff-same\">diffoscope finds no difference between the two unpacked NARs.</p>";
    } else {
      if (diff->differing_files.empty()) {
        body += "<p id=\"differing-files\">No single file is named as differing (see the report).</p>";
      } else {
        body += Cat("<p>Differing files (", diff->differing_files.size(), "):</p><ul id=\"differing-files\">");
        for (const std::string& file : diff->differing_files) {
          body += Cat("<li class=\"differing-file\">", ShowFile(file), "</li>");
        }
        body += "</ul>";
      }
      body += Cat("<details open><summary>diffoscope's text report", diff->truncated ? " (cut at its size limit)" : "",
                  "</summary><pre id=\"diff-text\">", Escape(diff->text), "</pre></details>",
                  "<p><a href=\"", DiffUrl(id, "txt"), "\">The text report</a>",
                  diff->has_html ? Cat(" · <a href=\"", DiffUrl(id, "html"), "\">the HTML report</a>") : "", "</p>");
      if (diff->has_html) {
        body += Cat("<iframe id=\"diff-frame\" sandbox src=\"", DiffUrl(id, "html"),
                    "\" title=\"diffoscope's HTML report\" style=\"width:100%;height:40em;border:1px solid #ccc\">"
                    "</iframe>");
      }
    }
  }
  body += "</section>\n";
  return body;
}

json DiffJson(const DisputeDetail& detail, const DisputeDiffer* differ) {
  const std::string& id = detail.stored.id;
  if (differ == nullptr) return {{"state", "off"}};
  const std::optional<DisputeDiff> diff = differ->Result(id);
  if (!diff) return {{"state", "pending"}};
  json out = {{"state", DisputeDiffStateName(diff->state)}, {"time_unix", diff->time_unix}};
  if (diff->state == DisputeDiff::State::kUnavailable) {
    out["reason"] = diff->reason;
    return out;
  }
  json sides = json::array();
  for (const std::string& f : diff->fingerprints) {
    const int side = SideOf(detail, f);
    sides.push_back(side < 0 ? json(nullptr) : json(side));
  }
  out["fingerprints"] = diff->fingerprints;
  out["sides"] = std::move(sides);
  out["outdated"] = Outdated(detail, *diff);
  out["sources"] = diff->sources;
  out["same"] = diff->same;
  out["differing_files"] = diff->differing_files;
  out["truncated"] = diff->truncated;
  if (!diff->same) out["text_url"] = DiffUrl(id, "txt");
  if (diff->has_html) out["html_url"] = DiffUrl(id, "html");
  return out;
}

std::string DetailHtml(const DisputeDetail& detail, const consensus::Policy& policy, const DisputeDiffer* differ) {
  const storage::StoredDispute& d = detail.stored;
  std::string body = Cat(
      "<p>", StateBadge(d.state), " <span id=\"dispute-id\"><code>", Escape(d.id), "</code></span></p>\n"
      "<table><tr><th>", d.subject.is_realisation() ? "Derivation output" : "Store path", "</th><td><code id=\"",
      d.subject.is_realisation() ? "realisation-key" : "store-path", "\">", Escape(d.subject.ToString()), "</code> ",
      "<a href=\"/search", Escape(QueryString({{"path", d.subject.ToString()}})), "\">verdict</a></td></tr>"
      "<tr><th>State</th><td id=\"state\">", Escape(consensus::DisputeStateName(d.state)), "</td></tr>"
      "<tr><th>Opened</th><td>", ShowTime(d.opened_unix), "</td></tr>"
      "<tr><th>Last updated</th><td>", ShowTime(d.updated_unix), "</td></tr>"
      "<tr><th>Policy</th><td><code>", Escape(detail.record.policy_hash), "</code></td></tr></table>\n");

  // The fingerprints side by side.
  const size_t n = detail.sides.size();
  body += "<h2>Competing fingerprints</h2>\n<table id=\"sides\"><tr><th></th>";
  for (size_t s = 0; s < n; ++s) body += Cat("<th>Side ", SideName(s), "</th>");
  body += "</tr>\n";
  auto row = [&](std::string_view label, std::string_view id, bool differs, auto cell) {
    body += Cat("<tr id=\"", id, "\"", differs ? " class=\"diff\"" : "", "><th>", label,
                differs ? " (differs)" : "", "</th>");
    for (size_t s = 0; s < n; ++s) body += Cat("<td>", cell(detail.sides[s]), "</td>");
    body += "</tr>\n";
  };
  if (d.subject.is_realisation()) {
    // A derivation output's sides differ in the output path (and, in the 2.8 format, possibly only in
    // the dependent realisations): show both.
    bool out_path_differs = false;
    bool dependent_differs = false;
    for (size_t s = 1; s < n; ++s) {
      const auto& first = detail.sides[0].realisation;
      const auto& other = detail.sides[s].realisation;
      if (!first || !other) continue;
      out_path_differs |= first->out_path != other->out_path;
      dependent_differs |= first->dependent != other->dependent;
    }
    row("Output path", "out-path", out_path_differs, [](const Side& side) {
      return side.realisation
                 ? Cat("<code class=\"out-path\">", Escape(side.realisation->out_path.full()), "</code>")
                 : std::string("<span class=\"absent\">unreadable fingerprint</span>");
    });
    row("Dependent realisations", "dependent", dependent_differs, [](const Side& side) {
      std::string cell;
      if (!side.realisation) return cell;
      for (const auto& [key, path] : side.realisation->dependent) {
        cell += Cat(cell.empty() ? "" : "<br>", "<code>", Escape(key), "</code> &rarr; <code>", Escape(path.full()),
                    "</code>");
      }
      return cell.empty() ? std::string("none") : cell;
    });
  } else {
    row("NAR hash", "nar-hash", detail.nar_hash_differs, [](const Side& side) {
      return side.claim ? Cat("<code class=\"nar-hash\">", Escape(ShowNarHash(*side.claim)), "</code>")
                        : std::string("<span class=\"absent\">unreadable fingerprint</span>");
    });
    row("NAR size", "nar-size", detail.nar_size_differs, [](const Side& side) {
      return side.claim ? Cat(ShowCount(static_cast<int64_t>(side.claim->nar_size)), " bytes") : std::string();
    });
    body += Cat("<tr><th colspan=\"", n + 1, "\">References (", detail.references.size(), ")</th></tr>\n");
    for (const auto& [reference, present] : detail.references) {
      const bool everywhere = std::all_of(present.begin(), present.end(), [](bool p) { return p; });
      body += Cat("<tr class=\"reference", everywhere ? "" : " diff ref-differs", "\"><th><code>", Escape(reference),
                  "</code></th>");
      for (size_t s = 0; s < n; ++s) {
        body += present[s] ? (everywhere ? "<td>yes</td>" : "<td><mark>only on this side</mark></td>")
                           : "<td class=\"absent\">missing</td>";
      }
      body += "</tr>\n";
    }
  }
  body += "<tr><th>Signed by</th>";
  for (const Side& side : detail.sides) {
    body += "<td><ul class=\"signers\">";
    for (const Signer& signer : side.signers) {
      body += Cat("<li class=\"signer\"><b>", Escape(signer.operator_name), "</b> / <code",
                  IsFlagged(detail, signer.builder) ? " class=\"flagged\" title=\"flagged builder\"" : "", ">",
                  Escape(signer.builder), "</code>");
      if (const HeldMetadata held = HeldOf(signer); held.metadata != nullptr) {
        const consensus::BuildMetadata& m = *held.metadata;
        body += Cat("<br>received ", ShowTime(held.received_unix),
                    held.origin->empty() ? "" : Cat(" via ", Escape(*held.origin)),
                    "<br>build kind: ", Escape(consensus::BuildKindName(m.build_kind)),
                    m.system.empty() ? "" : Cat(", ", Escape(m.system)),
                    m.output_name.empty() ? "" : Cat(", output ", Escape(m.output_name)),
                    "<br>deriver: ", m.deriver.empty() ? "unknown" : Cat("<code>", Escape(m.deriver), "</code>"));
      } else {
        body += "<br><span class=\"muted\">attestation not held by this node</span>";
      }
      body += "</li>";
    }
    body += "</ul></td>";
  }
  body += "</tr>\n<tr><th>Fingerprint</th>";
  for (const Side& side : detail.sides) body += Cat("<td><code>", Escape(side.fingerprint), "</code></td>");
  body += "</tr></table>\n";

  body += "<h2>Flagged builders</h2>\n";
  if (detail.record.flagged_builders.empty()) {
    body += "<p id=\"flagged\">None: no builder signed two fingerprints.</p>\n";
  } else {
    body += "<p>These builder keys signed more than one fingerprint of this path:</p><ul id=\"flagged\">";
    for (const std::string& builder : detail.record.flagged_builders) {
      const std::string* op = policy.OperatorOf(builder);
      body += Cat("<li class=\"flagged\"><code>", Escape(builder), "</code>",
                  op == nullptr ? std::string(" (not in the policy)") : Cat(" of operator ", Escape(*op)), "</li>");
    }
    body += "</ul>\n";
  }

  body += "<h2>Resolution history</h2>\n";
  if (detail.resolutions.empty()) {
    body += "<p id=\"resolutions\">No maintainer has resolved this dispute yet.</p>\n";
  } else {
    body += "<table id=\"resolutions\"><tr><th>Time</th><th>Maintainer key</th><th>Outcome</th>"
            "<th>Builders at fault</th><th>Note</th><th>Received</th></tr>\n";
    for (const DisputeDetail::Statement& r : detail.resolutions) {
      std::string builders;
      if (r.statement.ok()) {
        for (const std::string& b : r.statement->builders) {
          builders += Cat(builders.empty() ? "" : ", ", "<code>", Escape(b), "</code>");
        }
      }
      body += Cat("<tr class=\"resolution\"><td>", ShowTime(r.stored.time_unix), "</td><td><code>",
                  Escape(r.stored.maintainer), "</code></td><td class=\"outcome\">",
                  Escape(consensus::OutcomeName(r.stored.outcome)), "</td><td>", builders,
                  "</td><td class=\"note\">",
                  r.statement.ok() ? Escape(r.statement->note) : std::string("<span class=\"absent\">unreadable</span>"),
                  "</td><td>", ShowTime(r.stored.received_unix),
                  r.stored.origin.empty() ? "" : Cat(" via ", Escape(r.stored.origin)), "</td></tr>\n");
    }
    body += "</table>\n<details><summary>Signed statements</summary>";
    for (const DisputeDetail::Statement& r : detail.resolutions) {
      body += Cat("<pre class=\"signed-resolution\">", Escape(r.stored.signed_note), "</pre>");
    }
    body += "</details>\n";
  }

  body += DiffHtmlSection(detail, differ);

  body += Cat("<h2>Signed record</h2>\n<p>The node's signed dispute record (a signed note); verify it with the "
              "node's public key.</p>\n<pre id=\"signed-record\">", Escape(d.signed_record), "</pre>\n",
              "<p><a href=\"", DisputeUrl(d.id, Format::kJson), "\">This page as JSON</a></p>\n");
  return body;
}

json DetailJson(const DisputeDetail& detail, const DisputeDiffer* differ) {
  const storage::StoredDispute& d = detail.stored;
  json sides = json::array();
  for (const Side& side : detail.sides) {
    json signers = json::array();
    for (const Signer& signer : side.signers) {
      json s = {{"operator", signer.operator_name},
                {"builder", signer.builder},
                {"signature", signer.signature},
                {"flagged", IsFlagged(detail, signer.builder)},
                {"held", HeldOf(signer).metadata != nullptr}};
      if (const HeldMetadata held = HeldOf(signer); held.metadata != nullptr) {
        const consensus::BuildMetadata& m = *held.metadata;
        s["received_unix"] = held.received_unix;
        s["origin"] = *held.origin;
        s["deriver"] = m.deriver;
        s["build_kind"] = consensus::BuildKindName(m.build_kind);
        s["system"] = m.system;
        s["output_name"] = m.output_name;
        s["build_time_unix"] = m.build_time_unix;
      }
      signers.push_back(std::move(s));
    }
    json out = {{"fingerprint", side.fingerprint}, {"signers", std::move(signers)}};
    if (side.realisation) {
      out["out_path"] = side.realisation->out_path.full();
      json dependent = json::object();
      for (const auto& [key, path] : side.realisation->dependent) dependent[key] = path.full();
      out["dependent_realisations"] = std::move(dependent);
    }
    if (side.claim) {
      out["nar_hash"] = ShowNarHash(*side.claim);
      out["nar_size"] = side.claim->nar_size;
      json references = json::array();
      for (const auto& r : side.claim->references) references.push_back(r.full());
      out["references"] = std::move(references);
    }
    sides.push_back(std::move(out));
  }
  json only = json::object();
  for (const auto& [reference, present] : detail.references) {
    if (std::all_of(present.begin(), present.end(), [](bool p) { return p; })) continue;
    json on = json::array();
    for (size_t s = 0; s < present.size(); ++s) {
      if (present[s]) on.push_back(s);
    }
    only[reference] = std::move(on);
  }
  json resolutions = json::array();
  for (const DisputeDetail::Statement& r : detail.resolutions) {
    json out = {{"maintainer", r.stored.maintainer},
                {"outcome", consensus::OutcomeName(r.stored.outcome)},
                {"time_unix", r.stored.time_unix},
                {"received_unix", r.stored.received_unix},
                {"origin", r.stored.origin},
                {"signed_note", r.stored.signed_note}};
    if (r.statement.ok()) {
      out["note"] = r.statement->note;
      out["builders"] = r.statement->builders;
      out["fingerprints"] = r.statement->fingerprints;
    }
    resolutions.push_back(std::move(out));
  }
  return {{"id", d.id},
          {"url", DisputeUrl(d.id, Format::kHtml)},
          {"store_path", d.subject.is_realisation() ? std::string() : d.subject.ToString()},
          {"realisation_key", d.subject.is_realisation() ? d.subject.ToString() : std::string()},
          {"state", consensus::DisputeStateName(d.state)},
          {"opened_unix", d.opened_unix},
          {"updated_unix", d.updated_unix},
          {"policy_hash", detail.record.policy_hash},
          {"record_time_unix", detail.record.time_unix},
          {"sides", std::move(sides)},
          {"differences",
           {{"nar_hash", detail.nar_hash_differs},
            {"nar_size", detail.nar_size_differs},
            {"references_on_some_sides", std::move(only)}}},
          {"flagged_builders", detail.record.flagged_builders},
          {"resolutions", std::move(resolutions)},
          {"diff", DiffJson(detail, differ)},
          {"signed_record", d.signed_record}};
}

}  // namespace

DisputePages::DisputePages(const DisputeView* view, const DisputeDiffer* differ)
    : view_(view), differ_(differ), policy_(view->policy()) {}

HttpResponse DisputePages::List(const std::vector<std::pair<std::string, std::string>>& query,
                                Format format) const {
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  absl::StatusOr<ListFilters> filters = ParseFilters(query, *policy);
  if (!filters.ok()) return ErrorResponse(format, 400, StdView(filters.status().message()));
  absl::StatusOr<DisputePage> page = view_->List(DisputePageRequest{
      .filter = {.state = filters->state, .name_contains = filters->name, .operator_name = filters->operator_name},
      .after = filters->after,
      .size = filters->limit});
  if (!page.ok()) return ErrorResponse(format, HttpStatusOf(page.status()), StdView(page.status().message()));
  const std::vector<storage::StoredDispute>& disputes = page->disputes;
  const int64_t total = page->total;
  const size_t shown = disputes.size();
  const bool more = !page->next_cursor.empty();
  const std::string& next_key = page->next_cursor;

  if (format == Format::kJson) {
    json list = json::array();
    for (size_t i = 0; i < shown; ++i) {
      const storage::StoredDispute& d = disputes[i];
      list.push_back({{"id", d.id},
                      {"url", DisputeUrl(d.id, Format::kHtml)},
                      {"json_url", DisputeUrl(d.id, Format::kJson)},
                      {"store_path", d.subject.is_realisation() ? std::string() : d.subject.ToString()},
                      {"realisation_key", d.subject.is_realisation() ? d.subject.ToString() : std::string()},
                      {"state", consensus::DisputeStateName(d.state)},
                      {"fingerprint_count", d.fingerprint_count},
                      {"operators", d.operators},
                      {"opened_unix", d.opened_unix},
                      {"updated_unix", d.updated_unix}});
    }
    json out = {{"disputes", std::move(list)},
                {"total", total},
                {"filters",
                 {{"state", filters->state ? std::string(consensus::DisputeStateName(*filters->state)) : "all"},
                  {"name", filters->name},
                  {"operator", filters->operator_name}}}};
    out["next"] = more ? json(Cat("/disputes.json", QueryString(filters->Arguments(next_key)))) : json(nullptr);
    return JsonResponse(200, DumpJson(out));
  }

  std::string body = FilterForm(*filters, *policy);
  body += Cat("<p id=\"total\">", ShowCount(total), total == 1 ? " dispute matches" : " disputes match",
              filters->after.empty() ? "" : " (a later page)", ". Open disputes are listed first.</p>\n");
  if (shown == 0) {
    body += "<p id=\"no-disputes\">No dispute matches.</p>\n";
  } else {
    body += "<table id=\"disputes\"><tr><th>Dispute</th><th>Package</th><th>State</th><th>Fingerprints</th>"
            "<th>Operators</th><th>Opened</th><th>Updated</th></tr>\n";
    for (size_t i = 0; i < shown; ++i) {
      const storage::StoredDispute& d = disputes[i];
      std::string operators;
      for (const std::string& op : d.operators) {
        operators += Cat(operators.empty() ? "" : ", ", "<a href=\"/disputes", Escape(QueryString({{"operator", op}})), "\">",
                         Escape(op), "</a>");
      }
      body += Cat("<tr class=\"dispute\"><td><a class=\"dispute-link\" href=\"", DisputeUrl(d.id, Format::kHtml),
                  "\"><code>", Escape(d.id), "</code></a></td><td title=\"", Escape(d.subject.ToString()), "\">",
                  Escape(d.subject.Name()), "</td><td>", StateBadge(d.state), "</td><td>", d.fingerprint_count,
                  "</td><td>", operators, "</td><td>", ShowTime(d.opened_unix), "</td><td>",
                  ShowTime(d.updated_unix), "</td></tr>\n");
    }
    body += "</table>\n";
  }
  body += "<p>";
  if (!filters->after.empty()) {
    body += Cat("<a id=\"first-page\" href=\"/disputes", Escape(QueryString(filters->Arguments(""))),
                "\">First page</a> ");
  }
  if (more) {
    body += Cat("<a id=\"next-page\" href=\"/disputes", Escape(QueryString(filters->Arguments(next_key))),
                "\">Next page</a> ");
  }
  body += Cat("<a href=\"/disputes.json", Escape(QueryString(filters->Arguments(filters->after))),
              "\">This page as JSON</a></p>\n");
  return HtmlResponse(200, Frame("Disputes", body));
}

HttpResponse DisputePages::One(std::string_view id, Format format) const {
  if (!IsDisputeId(id)) {
    return ErrorResponse(format, 400,
                         Cat("dispute id ", QuoteForError(id),
                             " is malformed: a dispute id is d- and 32 hex characters (find it on /disputes)"));
  }
  absl::StatusOr<DisputeDetail> detail = view_->Get(id);
  if (!detail.ok()) {
    if (detail.status().code() == absl::StatusCode::kDataLoss) {
      LogError(Cat("dispute page: ", StdView(detail.status().message())));
    }
    return ErrorResponse(format, HttpStatusOf(detail.status()), StdView(detail.status().message()));
  }
  if (format == Format::kJson) return JsonResponse(200, DumpJson(DetailJson(*detail, differ_)));
  HttpResponse response =
      HtmlResponse(200, Frame(Cat("Dispute about ", detail->stored.subject.Name()), DetailHtml(*detail, *policy_.current(), differ_)));
  // The page frames diffoscope's report (served by DiffHtml, sandboxed): its own origin only.
  for (auto& [name, value] : response.headers) {
    if (name == "Content-Security-Policy") value += "; frame-src 'self'";
  }
  return response;
}

namespace {

absl::Status CheckDiffId(std::string_view id) {
  if (IsDisputeId(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(Cat("dispute id ", QuoteForError(id),
                                        " is malformed: a dispute id is d- and 32 hex characters (find it on "
                                        "/disputes)"));
}

}  // namespace

HttpResponse DisputePages::DiffHtml(std::string_view id) const {
  if (absl::Status status = CheckDiffId(id); !status.ok()) {
    return ErrorResponse(Format::kHtml, 400, StdView(status.message()));
  }
  absl::StatusOr<std::string> html = differ_ == nullptr
                                         ? absl::NotFoundError("this node does not compare the bytes of disputes")
                                         : differ_->Html(id);
  if (!html.ok()) return ErrorResponse(Format::kHtml, HttpStatusOf(html.status()), StdView(html.status().message()));
  HttpResponse response;
  response.content_type = "text/html; charset=utf-8";
  response.headers.emplace_back("Cache-Control", "no-cache");  // (nosniff: the HTTP server adds it to every reply)
  // diffoscope's report shows bytes from the builds under dispute: nothing in it may run or fetch.
  response.headers.emplace_back("Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox");
  response.body = *std::move(html);
  return response;
}

HttpResponse DisputePages::DiffText(std::string_view id) const {
  if (absl::Status status = CheckDiffId(id); !status.ok()) return HttpResponse::Text(400, std::string(status.message()));
  const std::optional<DisputeDiff> diff = differ_ == nullptr ? std::nullopt : differ_->Result(id);
  if (!diff || diff->state != DisputeDiff::State::kDone || diff->same) {
    return HttpResponse::Text(404, Cat("no diffoscope report for dispute ", id, " on this node"));
  }
  HttpResponse response;
  response.headers.emplace_back("Cache-Control", "no-cache");
  response.body = diff->text;
  return response;
}

}  // namespace attest::server::web
