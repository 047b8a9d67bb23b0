#include "server/web/operator_page.h"

#include <map>
#include <memory>
#include <set>
#include <string>

#include "consensus/dispute.h"
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

}  // namespace

OperatorPage::OperatorPage(const consensus::Policy& policy, storage::Ledger* store,
                           const ResolutionBook* resolutions)
    : policy_(policy), store_(store), resolutions_(resolutions) {}

HttpResponse OperatorPage::Render(Format format) const {
  absl::StatusOr<Figures> figures = Collect(store_);
  if (!figures.ok()) return ErrorResponse(format, HttpStatusOf(figures.status()), StdView(figures.status().message()));
  std::set<std::string> in_policy;
  const std::shared_ptr<const consensus::TallyOptions> tally = TallyOptionsOf(resolutions_);
  auto excluded = [&](const std::string& key) { return tally->excluded_builders.contains(key); };

  if (format == Format::kJson) {
    json operators = json::array();
    for (const consensus::Operator& op : policy_.operators()) {
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
      }
      operators.push_back({{"name", op.name},
                           {"disputes", figures->operator_disputes[op.name]},
                           {"disputes_url", Cat("/disputes", QueryString({{"operator", op.name}}))},
                           {"builders", std::move(builders)}});
    }
    json others = json::array();
    for (const auto& [key, f] : figures->builders) {
      if (!in_policy.contains(key) && f.attestations > 0) others.push_back({{"key", key}, {"attestations", f.attestations}});
    }
    return JsonResponse(200, DumpJson({{"quorum", policy_.quorum()},
                                       {"policy_hash", policy_.Hash()},
                                       {"agreement_rate_definition",
                                        "share of the builder's attestations held by this node that are on no side "
                                        "of any dispute record"},
                                       {"operators", std::move(operators)},
                                       {"keys_outside_policy", std::move(others)}}));
  }

  std::string body = Cat(
      "<p>Quorum: ", policy_.quorum(), " operators must agree. Policy <code>", Escape(policy_.Hash()), "</code>.</p>\n"
      "<p id=\"agreement-definition\"><b>Agreement rate</b>: the share of a builder's attestations held by this node "
      "that are on no side of any dispute record (1 &minus; attestations on a dispute side &divide; attestations). A "
      "builder on the honest side of a dispute loses agreement too: it points at where to look, it is not a "
      "verdict.</p>\n"
      "<table id=\"operators\"><tr><th>Operator</th><th>Disputes involved</th><th>Builder key</th>"
      "<th>Attestations</th><th>On a dispute side</th><th>Agreement rate</th><th>Flagged in</th></tr>\n");
  for (const consensus::Operator& op : policy_.operators()) {
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
      body += Cat("<td><code>", Escape(key.name()), "</code>",
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
  body += "<p><a href=\"/operators.json\">This page as JSON</a></p>\n";
  return HtmlResponse(200, Frame("Operators and builders", body));
}

}  // namespace attest::server::web
