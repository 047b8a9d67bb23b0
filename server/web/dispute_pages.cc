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

bool IsFlagged(const DisputeDetail& detail, std::string_view builder) {
  return std::find(detail.record.flagged_builders.begin(), detail.record.flagged_builders.end(), builder) !=
         detail.record.flagged_builders.end();
}

std::string DetailHtml(const DisputeDetail& detail, const consensus::Policy& policy) {
  const storage::StoredDispute& d = detail.stored;
  std::string body = Cat(
      "<p>", StateBadge(d.state), " <span id=\"dispute-id\"><code>", Escape(d.id), "</code></span></p>\n"
      "<table><tr><th>Store path</th><td><code id=\"store-path\">", Escape(d.path.full()), "</code> ",
      "<a href=\"/search", Escape(QueryString({{"path", d.path.full()}})), "\">verdict</a></td></tr>"
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
  body += "<tr><th>Signed by</th>";
  for (const Side& side : detail.sides) {
    body += "<td><ul class=\"signers\">";
    for (const Signer& signer : side.signers) {
      body += Cat("<li class=\"signer\"><b>", Escape(signer.operator_name), "</b> / <code",
                  IsFlagged(detail, signer.builder) ? " class=\"flagged\" title=\"flagged builder\"" : "", ">",
                  Escape(signer.builder), "</code>");
      if (signer.stored) {
        const consensus::BuildMetadata& m = signer.stored->attestation.metadata;
        body += Cat("<br>received ", ShowTime(signer.stored->received_unix),
                    signer.stored->origin.empty() ? "" : Cat(" via ", Escape(signer.stored->origin)),
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

  body += Cat("<h2>Signed record</h2>\n<p>The node's signed dispute record (a signed note); verify it with the "
              "node's public key.</p>\n<pre id=\"signed-record\">", Escape(d.signed_record), "</pre>\n",
              "<p><a href=\"", DisputeUrl(d.id, Format::kJson), "\">This page as JSON</a></p>\n");
  return body;
}

json DetailJson(const DisputeDetail& detail) {
  const storage::StoredDispute& d = detail.stored;
  json sides = json::array();
  for (const Side& side : detail.sides) {
    json signers = json::array();
    for (const Signer& signer : side.signers) {
      json s = {{"operator", signer.operator_name},
                {"builder", signer.builder},
                {"signature", signer.signature},
                {"flagged", IsFlagged(detail, signer.builder)},
                {"held", signer.stored.has_value()}};
      if (signer.stored) {
        const consensus::BuildMetadata& m = signer.stored->attestation.metadata;
        s["received_unix"] = signer.stored->received_unix;
        s["origin"] = signer.stored->origin;
        s["deriver"] = m.deriver;
        s["build_kind"] = consensus::BuildKindName(m.build_kind);
        s["system"] = m.system;
        s["output_name"] = m.output_name;
        s["build_time_unix"] = m.build_time_unix;
      }
      signers.push_back(std::move(s));
    }
    json out = {{"fingerprint", side.fingerprint}, {"signers", std::move(signers)}};
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
          {"store_path", d.path.full()},
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
          {"signed_record", d.signed_record}};
}

}  // namespace

DisputePages::DisputePages(const DisputeView* view) : view_(view), policy_(view->policy()) {}

HttpResponse DisputePages::List(const std::vector<std::pair<std::string, std::string>>& query,
                                Format format) const {
  absl::StatusOr<ListFilters> filters = ParseFilters(query, policy_);
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
                      {"store_path", d.path.full()},
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

  std::string body = FilterForm(*filters, policy_);
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
                  "\"><code>", Escape(d.id), "</code></a></td><td title=\"", Escape(d.path.full()), "\">",
                  Escape(d.path.name()), "</td><td>", StateBadge(d.state), "</td><td>", d.fingerprint_count,
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
  if (format == Format::kJson) return JsonResponse(200, DumpJson(DetailJson(*detail)));
  return HtmlResponse(200, Frame(Cat("Dispute about ", detail->stored.path.name()), DetailHtml(*detail, policy_)));
}

}  // namespace attest::server::web
