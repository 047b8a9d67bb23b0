#include "server/web/operator_page.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "consensus/dispute.h"
#include "consensus/quorum.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "server/grpc_status.h"
#include "server/web/json.h"

namespace attest::server::web {
namespace {

using consensus::Cat;
using consensus::StdView;
using nlohmann::json;

constexpr int kScanPage = 1000;

struct BuilderFigures final {
  int64_t attestations = 0;
  int64_t on_dispute_sides = 0;  // entries of dispute records signed by the key
  int64_t disputes = 0;          // dispute records the key signed on any side
  int64_t flagged = 0;           // disputes in which the key signed two fingerprints
};

struct Figures final {
  std::map<std::string, BuilderFigures> builders;  // by key name
  std::map<std::string, int64_t> operator_disputes;
};

absl::StatusOr<Figures> Collect(storage::Ledger* store) {
  Figures figures;
  auto counts = store->AttestationsPerKey();
  if (!counts.ok()) return StorageFailure("counting attestations per key", counts.status());
  for (const storage::KeyAttestationCount& count : *counts) figures.builders[count.key_name].attestations = count.attestations;

  storage::DisputeQuery query;
  query.limit = kScanPage;
  while (true) {
    auto page = store->ListDisputes(query);
    if (!page.ok()) return StorageFailure("listing disputes", page.status());
    for (const storage::StoredDispute& dispute : *page) {
      absl::StatusOr<consensus::DisputeRecord> record = consensus::DisputeRecord::FromSignedNote(dispute.signed_record);
      if (!record.ok()) continue;
      std::set<std::string> builders;
      std::set<std::string> operators;
      for (const consensus::DisputeSide& side : record->sides) {
        for (const consensus::DisputeSide::Entry& entry : side.entries) {
          ++figures.builders[entry.signature.key_name].on_dispute_sides;
          builders.insert(entry.signature.key_name);
          operators.insert(entry.operator_name);
        }
      }
      for (const std::string& b : builders) ++figures.builders[b].disputes;
      for (const std::string& b : record->flagged_builders) ++figures.builders[b].flagged;
      for (const std::string& o : operators) ++figures.operator_disputes[o];
    }
    if (page->size() < static_cast<size_t>(kScanPage)) break;
    query.after_key = storage::DisputeSortKey(page->back());
  }
  return figures;
}

double AgreementRate(const BuilderFigures& f) {
  if (f.attestations == 0) return 1.0;
  return 1.0 - static_cast<double>(std::min(f.on_dispute_sides, f.attestations)) / static_cast<double>(f.attestations);
}

std::string ShowRate(const BuilderFigures& f) {
  if (f.attestations == 0) return "no attestations";
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f%%", 100.0 * AgreementRate(f));
  return text;
}

std::string DisputesLink(const std::string& op, int64_t count) {
  return Cat("<a class=\"operator-disputes\" href=\"/disputes", Escape(QueryString({{"operator", op}})), "\">",
             ShowCount(count), count == 1 ? " dispute" : " disputes", "</a>");
}

// One row of the Sources section: a source and what the node saw of it (null: the node has no status
// for it, so it does not use it).
struct SourceRow final {
  NarSourceSpec spec;
  std::optional<NarSourceStatus> status;
};

// The policy's operators' caches in policy order (with their status when the node has one), then every
// other source the node reports (its mirrors and upstream; an operator cache the policy does not list,
// which a node never has, is kept rather than hidden) in the node's order.
std::vector<SourceRow> SourceRows(const consensus::Policy& policy, std::vector<NarSourceStatus> statuses) {
  std::vector<SourceRow> rows;
  std::vector<bool> shown(statuses.size(), false);
  for (const consensus::Operator& op : policy.operators()) {
    for (const std::string& url : op.caches) {
      SourceRow row{.spec = {.url = url, .kind = NarSourceKind::kOperator, .operator_name = op.name, .priority = 0},
                    .status = std::nullopt};
      for (size_t i = 0; i < statuses.size(); ++i) {
        const NarSourceSpec& spec = statuses[i].spec;
        if (!shown[i] && spec.kind == NarSourceKind::kOperator && spec.operator_name == op.name && spec.url == url) {
          row.status = std::move(statuses[i]);
          shown[i] = true;
          break;
        }
      }
      rows.push_back(std::move(row));
    }
  }
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (!shown[i]) rows.push_back(SourceRow{.spec = statuses[i].spec, .status = std::move(statuses[i])});
  }
  return rows;
}

json SourceJson(const SourceRow& row) {
  json out = {{"kind", NarSourceKindName(row.spec.kind)}, {"url", row.spec.url}, {"used", row.status.has_value()}};
  if (row.spec.kind == NarSourceKind::kOperator) out["operator"] = row.spec.operator_name;
  if (row.spec.kind == NarSourceKind::kMirror) out["priority"] = row.spec.priority;
  const NarSourceStatus none;
  const NarSourceStatus& s = row.status ? *row.status : none;
  out["reachable"] = row.status ? json(s.reachable) : json(nullptr);
  out["last_error"] = s.last_error;
  out["last_error_unix"] = s.last_error_unix;
  out["narinfos_found"] = s.narinfos_found;
  out["paths_served"] = s.paths_served;
  out["bytes_served"] = s.bytes_served;
  out["mismatches"] = s.mismatches;
  out["last_mismatch"] = s.last_mismatch;
  out["last_mismatch_unix"] = s.last_mismatch_unix;
  return out;
}

std::string ShowUnsigned(uint64_t value) {
  return ShowCount(static_cast<int64_t>(std::min<uint64_t>(value, INT64_MAX)));
}

std::string SourceRowHtml(const SourceRow& row) {
  std::string who;
  switch (row.spec.kind) {
    case NarSourceKind::kOperator:
      who = Cat("<b>", Escape(row.spec.operator_name), "</b>");
      break;
    case NarSourceKind::kMirror:
      who = Cat("mirror (priority ", row.spec.priority, ")");
      break;
    case NarSourceKind::kUpstream:
      who = "upstream";
      break;
  }
  const std::string url = Cat("<code>", Escape(row.spec.url), "</code>");
  if (!row.status) {
    return Cat("<tr class=\"source unused\"><td>", who, "</td><td>", url,
               "</td><td colspan=\"5\" class=\"muted\">not used by this node (it relays no NARs: no [gateway])"
               "</td></tr>\n");
  }
  const NarSourceStatus& s = *row.status;
  std::string classes = "source";
  if (!s.reachable) classes += " unreachable";
  if (s.mismatches > 0) classes += " bad";
  std::string reachable = "yes";
  if (!s.reachable) {
    reachable = Cat("<span class=\"flagged\">unreachable</span> (the last contact failed, ",
                    ShowTime(s.last_error_unix), "): <code class=\"last-error\">", Escape(s.last_error), "</code>");
  } else if (!s.last_error.empty()) {
    reachable = Cat("yes <span class=\"muted\">(a contact failed before, ", ShowTime(s.last_error_unix),
                    ": <code class=\"last-error\">", Escape(s.last_error), "</code>)</span>");
  }
  std::string mismatches = "0";
  if (s.mismatches > 0) {
    mismatches = Cat("<span class=\"flagged\">", ShowUnsigned(s.mismatches),
                     "</span><div class=\"diff evidence\">last, ", ShowTime(s.last_mismatch_unix),
                     ": <code class=\"last-mismatch\">", Escape(s.last_mismatch), "</code></div>");
  }
  return Cat("<tr class=\"", classes, "\"><td>", who, "</td><td>", url, "</td><td class=\"reachable\">", reachable,
             "</td><td>", ShowUnsigned(s.narinfos_found), "</td><td>", ShowUnsigned(s.paths_served), "</td><td>",
             ShowUnsigned(s.bytes_served), "</td><td class=\"mismatches\">", mismatches, "</td></tr>\n");
}

constexpr char kSourcesDefinition[] =
    "Where the gateway takes the NAR bytes of CONFIRMED paths from: the caches the policy lists for the operators "
    "on the confirmed side, then this node's mirrors, then its upstream. Every NAR is checked against the "
    "confirmed NarHash and NarSize before a byte of it is served, so a bad or dead source costs a client time, "
    "never a bad substitution. A mismatch is evidence of a bad source: its narinfo or NAR file contradicted the "
    "contents the quorum confirmed (a changed or corrupted NAR file, another build's output); the node skipped "
    "it for that path and tried the next source. Unreachable: the last contact failed (refused, timed out, an "
    "error status); the node fails over to the next source. Counts are since the node started.";

std::string SourcesHtml(const std::vector<SourceRow>& rows) {
  std::string html = Cat("<h2 id=\"sources-heading\">Sources</h2>\n<p id=\"sources-definition\">",
                         Escape(kSourcesDefinition), "</p>\n");
  if (rows.empty()) {
    return Cat(html, "<p id=\"no-sources\">No sources: the policy lists no operator caches and this node has no "
                     "mirrors or upstream.</p>\n");
  }
  html += "<table id=\"sources\"><tr><th>Operator</th><th>Cache</th><th>Reachable</th><th>Narinfos found</th>"
          "<th>Paths served</th><th>Bytes served</th><th>Mismatches</th></tr>\n";
  for (const SourceRow& row : rows) html += SourceRowHtml(row);
  return Cat(html, "</table>\n");
}

// "sha256:0123456789ab…": enough to tell policies apart on a page; the full hash is in the title
// attribute and the JSON twin.
std::string ShortHash(const std::string& hash) {
  constexpr size_t kShown = 7 + 12;  // "sha256:" and 12 hex digits
  return hash.size() <= kShown ? hash : Cat(hash.substr(0, kShown), "\u2026");
}

std::string HashHtml(const std::string& hash, std::string_view id) {
  return Cat("<code id=\"", id, "\" title=\"", Escape(hash), "\">", Escape(ShortHash(hash)), "</code>");
}

// A key's lifecycle as the page marks it after the key's name ("" for an active key).
std::string LifecycleHtml(const consensus::KeyLifecycle& life) {
  switch (life.state) {
    case consensus::KeyState::kActive:
      return "";
    case consensus::KeyState::kRetired:
      return Cat(" <span class=\"muted key-retired\">retired ", Escape(ShowTime(life.retired_unix)),
                 ": what the federation received before counts, nothing after</span>");
    case consensus::KeyState::kRevoked:
      return Cat(" <span class=\"flagged key-revoked\">revoked (", Escape(life.revoked_reason),
                 "): none of its attestations count</span>");
  }
  return "";
}

// The lifecycle fields of a key in the JSON twin.
void AddLifecycleJson(json& out, const consensus::KeyLifecycle& life) {
  out["state"] = std::string(consensus::KeyStateName(life.state));
  out["retired_unix"] = life.state == consensus::KeyState::kRetired ? json(life.retired_unix) : json(nullptr);
  out["retired_utc"] = life.state == consensus::KeyState::kRetired ? json(ShowTime(life.retired_unix)) : json(nullptr);
  out["revoked_reason"] = life.state == consensus::KeyState::kRevoked ? json(life.revoked_reason) : json(nullptr);
}

std::string GroupText(const consensus::Policy& policy, const consensus::Group& group) {
  return consensus::DescribeQuorum(policy, consensus::Quorum{.any = 0, .of = group.threshold});
}

json PolicyJson(const consensus::Policy& policy) {
  json groups = json::array();
  for (const consensus::Group& group : policy.groups()) {
    groups.push_back({{"name", group.name},
                      {"threshold", group.threshold.threshold},
                      {"members", group.threshold.members},
                      {"quorum_text", GroupText(policy, group)}});
  }
  json rules = json::array();
  for (const consensus::Rule& rule : policy.rules()) {
    rules.push_back({{"names", rule.names}, {"quorum_text", consensus::DescribeQuorum(policy, rule.quorum)}});
  }
  json maintainers = json::array();
  for (const consensus::PublicKey& key : policy.maintainers()) {
    json entry = {{"key", key.name()}, {"public_key", key.ToString()}};
    AddLifecycleJson(entry, policy.Lifecycle(key.name()));
    maintainers.push_back(std::move(entry));
  }
  return {{"version", policy.version()},
          {"hash", policy.Hash()},
          {"parent", policy.parent().empty() ? json(nullptr) : json(policy.parent())},
          {"update_threshold", policy.update_threshold()},
          {"quorum_text", consensus::DescribeQuorum(policy, policy.default_quorum())},
          {"groups", std::move(groups)},
          {"rules", std::move(rules)},
          {"maintainers", std::move(maintainers)}};
}

// The policy section: which policy, in which place of the chain, and who must agree on what.
std::string PolicyHtml(const consensus::Policy& policy) {
  std::string html = Cat(
      "<h2 id=\"policy-heading\">Policy</h2>\n<table id=\"policy\">"
      "<tr><th>Version</th><td id=\"policy-version\">", policy.version(), "</td></tr>"
      "<tr><th>Hash</th><td>", HashHtml(policy.Hash(), "policy-hash"), "</td></tr>"
      "<tr><th>Parent</th><td>",
      policy.parent().empty() ? std::string("<span class=\"muted\" id=\"policy-parent\">none: the first policy of "
                                            "its chain</span>")
                              : HashHtml(policy.parent(), "policy-parent"),
      "</td></tr><tr><th>Quorum</th><td id=\"policy-quorum\">",
      Escape(consensus::DescribeQuorum(policy, policy.default_quorum())),
      " <span class=\"muted\">(a path no rule names)</span></td></tr>"
      "<tr><th>Updates</th><td>a successor needs ", policy.update_threshold(), " maintainer ",
      policy.update_threshold() == 1 ? "approval" : "approvals", "</td></tr></table>\n");
  if (!policy.groups().empty()) {
    html += "<h3>Groups</h3>\n<table id=\"groups\"><tr><th>Group</th><th>Satisfied by</th></tr>\n";
    for (const consensus::Group& group : policy.groups()) {
      html += Cat("<tr class=\"group\"><td><b>", Escape(group.name), "</b></td><td>",
                  Escape(GroupText(policy, group)), "</td></tr>\n");
    }
    html += "</table>\n";
  }
  if (!policy.rules().empty()) {
    html += "<h3>Rules</h3>\n<p>A store path whose name matches a rule's globs needs the rule's quorum; the most "
            "specific match wins (most literal characters, then fewest <code>*</code>, then the rule listed "
            "first).</p>\n<table id=\"rules\"><tr><th>Names</th><th>Quorum</th></tr>\n";
    for (const consensus::Rule& rule : policy.rules()) {
      std::string globs;
      for (const std::string& glob : rule.names) globs += Cat(globs.empty() ? "" : " ", "<code>", Escape(glob), "</code>");
      html += Cat("<tr class=\"rule\"><td>", globs, "</td><td>", Escape(consensus::DescribeQuorum(policy, rule.quorum)),
                  "</td></tr>\n");
    }
    html += "</table>\n";
  }
  if (!policy.maintainers().empty()) {
    html += "<h3>Maintainers</h3>\n<ul id=\"maintainers\">";
    for (const consensus::PublicKey& key : policy.maintainers()) {
      html += Cat("<li class=\"maintainer\"><code>", Escape(key.name()), "</code>",
                  LifecycleHtml(policy.Lifecycle(key.name())), "</li>");
    }
    html += "</ul>\n";
  }
  return html;
}

}  // namespace

OperatorPage::OperatorPage(const PolicyBook& policy, storage::Ledger* store,
                           const ResolutionBook* resolutions, NarSourceStatusFn sources)
    : policy_(policy), store_(store), resolutions_(resolutions), sources_(std::move(sources)) {}

HttpResponse OperatorPage::Render(Format format) const {
  absl::StatusOr<Figures> figures = Collect(store_);
  if (!figures.ok()) return ErrorResponse(format, HttpStatusOf(figures.status()), StdView(figures.status().message()));
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  std::set<std::string> in_policy;
  const std::shared_ptr<const consensus::TallyOptions> tally = TallyOptionsOf(resolutions_);
  const std::vector<SourceRow> sources = SourceRows(*policy, sources_ ? sources_() : std::vector<NarSourceStatus>());
  auto excluded = [&](const std::string& key) { return tally->excluded_builders.contains(key); };

  if (format == Format::kJson) {
    json operators = json::array();
    for (const consensus::Operator& op : policy->operators()) {
      json builders = json::array();
      for (const consensus::PublicKey& key : op.builders) {
        in_policy.insert(key.name());
        const BuilderFigures f = figures->builders[key.name()];
        builders.push_back({{"key", key.name()},
                            {"public_key", key.ToString()},
                            {"attestations", f.attestations},
                            {"attestations_on_dispute_sides", f.on_dispute_sides},
                            {"agreement_rate", AgreementRate(f)},
                            {"disputes", f.disputes},
                            {"flagged_in", f.flagged},
                            {"excluded", excluded(key.name())}});
        AddLifecycleJson(builders.back(), policy->Lifecycle(key.name()));
      }
      operators.push_back({{"name", op.name},
                           {"caches", op.caches},
                           {"disputes", figures->operator_disputes[op.name]},
                           {"disputes_url", Cat("/disputes", QueryString({{"operator", op.name}}))},
                           {"builders", std::move(builders)}});
    }
    json source_list = json::array();
    for (const SourceRow& row : sources) source_list.push_back(SourceJson(row));
    json others = json::array();
    for (const auto& [key, f] : figures->builders) {
      if (!in_policy.contains(key) && f.attestations > 0) others.push_back({{"key", key}, {"attestations", f.attestations}});
    }
    return JsonResponse(200, DumpJson({{"quorum", policy->quorum()},
                                       {"policy_hash", policy->Hash()},
                                       {"policy", PolicyJson(*policy)},
                                       {"agreement_rate_definition",
                                        "share of the builder's attestations held by this node that are on no side "
                                        "of any dispute record"},
                                       {"operators", std::move(operators)},
                                       {"keys_outside_policy", std::move(others)},
                                       {"sources_definition", kSourcesDefinition},
                                       {"sources", std::move(source_list)}}));
  }

  std::string body = Cat(
      PolicyHtml(*policy),
      "<h2 id=\"operators-heading\">Operators</h2>\n"
      "<p id=\"agreement-definition\"><b>Agreement rate</b>: the share of a builder's attestations held by this node "
      "that are on no side of any dispute record (1 &minus; attestations on a dispute side &divide; attestations). A "
      "builder on the honest side of a dispute loses agreement too: it points at where to look, it is not a "
      "verdict.</p>\n"
      "<table id=\"operators\"><tr><th>Operator</th><th>Disputes involved</th><th>Builder key</th>"
      "<th>Attestations</th><th>On a dispute side</th><th>Agreement rate</th><th>Flagged in</th></tr>\n");
  for (const consensus::Operator& op : policy->operators()) {
    bool first = true;
    for (const consensus::PublicKey& key : op.builders) {
      in_policy.insert(key.name());
      const BuilderFigures f = figures->builders[key.name()];
      body += "<tr class=\"builder\">";
      if (first) {
        body += Cat("<td rowspan=\"", op.builders.size(), "\" class=\"operator\"><b>", Escape(op.name),
                    "</b></td><td rowspan=\"", op.builders.size(), "\">",
                    DisputesLink(op.name, figures->operator_disputes[op.name]), "</td>");
        first = false;
      }
      const consensus::KeyLifecycle& life = policy->Lifecycle(key.name());
      body += Cat("<td", life.state == consensus::KeyState::kActive ? "" : Cat(" class=\"key-", consensus::KeyStateName(life.state), "\""),
                  "><code>", Escape(key.name()), "</code>", LifecycleHtml(life),
                  excluded(key.name()) ? " <span class=\"flagged excluded\">excluded: a malicious statement in force "
                                         "names it; its attestations no longer count</span>"
                                       : "",
                  "</td><td>", ShowCount(f.attestations), "</td><td>",
                  ShowCount(f.on_dispute_sides), "</td><td class=\"rate\">", ShowRate(f), "</td><td",
                  f.flagged > 0 ? " class=\"flagged\"" : "", ">", ShowCount(f.flagged),
                  f.flagged == 1 ? " dispute" : " disputes", "</td></tr>\n");
    }
  }
  body += "</table>\n";
  std::string others;
  for (const auto& [key, f] : figures->builders) {
    if (in_policy.contains(key) || f.attestations == 0) continue;
    others += Cat("<tr><td><code>", Escape(key), "</code></td><td>", ShowCount(f.attestations), "</td></tr>\n");
  }
  if (!others.empty()) {
    body += Cat("<h2>Keys outside the policy</h2>\n<p>Attestations observed from keys the policy does not name; "
                "they never count.</p>\n<table id=\"outside\"><tr><th>Key</th><th>Attestations</th></tr>\n",
                others, "</table>\n");
  }
  body += SourcesHtml(sources);
  body += "<p><a href=\"/operators.json\">This page as JSON</a></p>\n";
  return HtmlResponse(200, Frame("Operators and builders", body));
}

}  // namespace attest::server::web
