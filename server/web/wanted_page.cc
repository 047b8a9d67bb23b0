#include "server/web/wanted_page.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/quorum.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "proto/attest/v1/attest.pb.h"
#include "server/grpc_status.h"
#include "server/rebuild_handler.h"
#include "server/web/json.h"

namespace attest::server::web {
namespace {

using consensus::Cat;
using consensus::QuoteForError;
using consensus::StdView;
using nlohmann::json;

using Query = std::vector<std::pair<std::string, std::string>>;

struct WantedArguments final {
  std::string operator_name;
  int limit = kDefaultWantedLimit;

  Query Arguments() const {
    return {{"operator", operator_name}, {"limit", limit == kDefaultWantedLimit ? "" : std::to_string(limit)}};
  }
};

absl::StatusOr<WantedArguments> ParseArguments(const Query& query, const consensus::Policy& policy) {
  WantedArguments arguments;
  for (const auto& [name, value] : query) {
    if (name == "operator") {
      if (value.empty()) continue;
      const std::string& wanted = value;  // clang before 16 cannot capture a structured binding
      const auto& operators = policy.operators();
      if (std::none_of(operators.begin(), operators.end(), [&](const auto& op) { return op.name == wanted; })) {
        std::string known;
        for (const auto& op : operators) known += Cat(known.empty() ? "" : ", ", op.name);
        return absl::InvalidArgumentError(
            Cat("operator ", QuoteForError(value), " is not an operator of the policy; the operators are ", known));
      }
      arguments.operator_name = value;
    } else if (name == "limit") {
      if (value.empty()) continue;
      int limit = 0;
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), limit);
      if (error != std::errc() || end != value.data() + value.size() || limit < 1 || limit > kMaxWantedLimit) {
        return absl::InvalidArgumentError(
            Cat("limit ", QuoteForError(value), " is not a number from 1 to ", kMaxWantedLimit,
                " (paths per list; the default is ", kDefaultWantedLimit, ")"));
      }
      arguments.limit = limit;
    } else {
      return absl::InvalidArgumentError(
          Cat("unknown argument ", QuoteForError(name), "; /wanted takes operator and limit"));
    }
  }
  return arguments;
}

std::string ShowDemand(double demand) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", demand);
  return text;
}

int64_t UnixOf(absl::Time time) { return time == absl::InfinitePast() ? 0 : absl::ToUnixSeconds(time); }

std::string DrvUrl(const consensus::StorePath& drv) {
  // Store names may hold '?', '=' and '+', which mean something in a URL.
  return Cat("/drv/", UrlEncode(drv.base_name()));
}

std::string PathCell(const consensus::StorePath& path) {
  return Cat("<a class=\"store-path\" href=\"/search", Escape(QueryString({{"path", path.full()}})), "\"><code>",
             Escape(path.full()), "</code></a>");
}

std::string OperatorsCell(const std::vector<std::string>& operators) {
  if (operators.empty()) return "<span class=\"muted\">none</span>";
  std::string out;
  for (const std::string& op : operators) out += Cat(out.empty() ? "" : ", ", Escape(op));
  return out;
}

std::string DeriversCell(const std::vector<WantedDeriver>& derivers) {
  if (derivers.empty()) {
    return "<span class=\"muted no-deriver\">no known derivation: no builder reported one and the node holds "
           "none that builds it</span>";
  }
  std::string out = "<ul class=\"derivers\">";
  for (const WantedDeriver& d : derivers) {
    const std::string output = d.output_name.empty() ? "" : Cat(" output <code>", Escape(d.output_name), "</code>");
    if (d.available) {
      out += Cat("<li class=\"deriver available\"><a class=\"drv\" href=\"", Escape(DrvUrl(d.drv_path)), "\"><code>",
                 Escape(d.drv_path.full()), "</code></a>", output, ", available</li>");
    } else {
      out += Cat("<li class=\"deriver unavailable\"><code>", Escape(d.drv_path.full()), "</code>", output,
                 ", <span class=\"muted\">not held by this node</span></li>");
    }
  }
  return Cat(out, "</ul>");
}

std::string LeasesCell(const std::vector<Lease>& leases) {
  if (leases.empty()) return "";
  std::string out = "<ul class=\"leases\">";
  for (const Lease& lease : leases) {
    out += Cat("<li class=\"lease\"><code>", Escape(lease.builder), "</code> of ", Escape(lease.operator_name),
               ", until ", ShowTime(UnixOf(lease.expires)), "</li>");
  }
  return Cat(out, "</ul>");
}

std::string DemandCell(const WantedItem& item) {
  return Cat("<span class=\"demand\">", ShowDemand(item.demand), "</span><br><span class=\"muted\">last asked ",
             ShowTime(UnixOf(item.last_requested)), "</span>");
}

std::string WantedTable(const std::vector<WantedItem>& items) {
  if (items.empty()) {
    return "<p id=\"no-wanted\">Nothing is wanted: no UNKNOWN or PENDING path with demand (for this operator).</p>\n";
  }
  std::string html =
      "<table id=\"wanted\" class=\"paths\"><tr><th>Store path</th><th>Verdict</th><th>Demand</th>"
      "<th>Operators needed</th><th>Attested by</th><th>Derivers</th><th>Leases</th></tr>\n";
  for (const WantedItem& item : items) {
    html += Cat("<tr class=\"wanted-path\"><td>", PathCell(item.path), "</td><td class=\"path-verdict\">",
                Escape(consensus::VerdictName(item.verdict)), "</td><td>", DemandCell(item),
                "</td><td class=\"operators-needed\">", item.operators_needed, "</td><td class=\"operators\">",
                OperatorsCell(item.operators), "</td><td>", DeriversCell(item.derivers), "</td><td>",
                LeasesCell(item.leases), "</td></tr>\n");
  }
  return Cat(html, "</table>\n");
}

std::string DisputedTable(const std::vector<WantedItem>& items) {
  if (items.empty()) return "<p id=\"no-disputed\">No disputed path has demand.</p>\n";
  std::string html =
      "<table id=\"disputed\" class=\"paths\"><tr><th>Store path</th><th>Dispute</th><th>Demand</th>"
      "<th>Attested by</th><th>Derivers</th><th>Leases</th></tr>\n";
  for (const WantedItem& item : items) {
    html += Cat("<tr class=\"disputed-path\"><td>", PathCell(item.path),
                "</td><td><a class=\"dispute-link\" href=\"/disputes/", Escape(UrlEncode(item.dispute_id)),
                "\"><code>", Escape(item.dispute_id), "</code></a></td><td>", DemandCell(item),
                "</td><td class=\"operators\">", OperatorsCell(item.operators), "</td><td>",
                DeriversCell(item.derivers), "</td><td>", LeasesCell(item.leases), "</td></tr>\n");
  }
  return Cat(html, "</table>\n");
}

std::string ActiveLeasesHtml(const std::vector<Lease>& leases) {
  std::string html = "<h2 id=\"leases-heading\">Rebuilds under way</h2>\n";
  if (leases.empty()) return Cat(html, "<p id=\"no-leases\">No rebuilder holds a lease now.</p>\n");
  html += "<table id=\"leases\" class=\"paths\"><tr><th>Store path</th><th>Operator</th><th>Builder</th>"
          "<th>Since</th><th>Until</th></tr>\n";
  for (const Lease& lease : leases) {
    html += Cat("<tr class=\"lease\"><td>", PathCell(lease.path), "</td><td>", Escape(lease.operator_name),
                "</td><td><code>", Escape(lease.builder), "</code></td><td>", ShowTime(UnixOf(lease.taken)),
                "</td><td>", ShowTime(UnixOf(lease.expires)), "</td></tr>\n");
  }
  return Cat(html, "</table>\n");
}

std::string RecentResultsHtml(const std::vector<RebuildResult>& results) {
  std::string html = "<h2 id=\"results-heading\">Recent rebuild results</h2>\n";
  if (results.empty()) return Cat(html, "<p id=\"no-results\">No rebuilder reported a result yet.</p>\n");
  html += "<table id=\"results\" class=\"paths\"><tr><th>Store path</th><th>Operator</th><th>Builder</th>"
          "<th>Result</th><th>When</th></tr>\n";
  for (const RebuildResult& result : results) {
    const std::string outcome =
        result.built ? "built"
                     : Cat("<span class=\"flagged\">failed</span>",
                           result.detail.empty() ? "" : Cat(": <code class=\"detail\">", Escape(result.detail), "</code>"));
    html += Cat("<tr class=\"result ", result.built ? "built" : "failed", "\"><td>", PathCell(result.path), "</td><td>",
                Escape(result.operator_name), "</td><td><code>", Escape(result.builder), "</code></td><td>", outcome,
                "</td><td>", ShowTime(UnixOf(result.reported)), "</td></tr>\n");
  }
  return Cat(html, "</table>\n");
}

std::string FilterForm(const WantedArguments& arguments, const consensus::Policy& policy) {
  std::string operators = Cat("<option value=\"\"", arguments.operator_name.empty() ? " selected" : "", ">any</option>");
  for (const consensus::Operator& op : policy.operators()) {
    operators += Cat("<option value=\"", Escape(op.name), "\"", op.name == arguments.operator_name ? " selected" : "",
                     ">", Escape(op.name), "</option>");
  }
  return Cat("<form method=\"get\" action=\"/wanted\" class=\"filters\" id=\"filters\">"
             "<label>Leave out what this operator attested<br><select name=\"operator\" id=\"filter-operator\">",
             operators, "</select></label>"
             "<label>Paths per list<br><input type=\"number\" name=\"limit\" id=\"filter-limit\" min=\"1\" max=\"",
             kMaxWantedLimit, "\" value=\"", arguments.limit, "\"></label>"
             "<button type=\"submit\" id=\"filter-submit\">Show</button></form>\n");
}

// The WantedPath's proto3 JSON names, from the message the RPC sends, so the twin cannot drift from
// it; every field is written (scripts need not know proto3's defaults) and int64 as a number.
json WantedPathJson(const v1::WantedPath& path) {
  json derivers = json::array();
  for (const v1::WantedDeriver& d : path.derivers()) {
    derivers.push_back({{"drvPath", d.drv_path()}, {"outputName", d.output_name()}, {"available", d.available()}});
  }
  json leases = json::array();
  for (const v1::RebuildLease& lease : path.leases()) {
    leases.push_back({{"storePath", lease.store_path()},
                      {"operator", lease.operator_()},
                      {"builder", lease.builder()},
                      {"expiresUnix", lease.expires_unix()}});
  }
  return {{"storePath", path.store_path()},
          {"verdict", v1::Verdict_Name(path.verdict())},
          {"demand", path.demand()},
          {"lastRequestedUnix", path.last_requested_unix()},
          {"operatorsNeeded", path.operators_needed()},
          {"operators", json(std::vector<std::string>(path.operators().begin(), path.operators().end()))},
          {"derivers", std::move(derivers)},
          {"disputeId", path.dispute_id()},
          {"leases", std::move(leases)}};
}

}  // namespace

WantedPage::WantedPage(const PolicyBook& policy, const RebuildQueue* queue, const RebuildBook* rebuilds,
                       Clock clock)
    : policy_(policy), queue_(queue), rebuilds_(rebuilds), clock_(clock ? std::move(clock) : Clock(&absl::Now)) {}

HttpResponse WantedPage::Render(const Query& query, Format format) const {
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  absl::StatusOr<WantedArguments> arguments = ParseArguments(query, *policy);
  if (!arguments.ok()) return ErrorResponse(format, 400, StdView(arguments.status().message()));
  absl::StatusOr<WantedList> list =
      queue_->Wanted(WantedQuery{.operator_name = arguments->operator_name, .limit = arguments->limit});
  if (!list.ok()) {
    // The queue's own refusals quote only the request; anything else comes from the store.
    const absl::Status failure = list.status().code() == absl::StatusCode::kInvalidArgument
                                     ? list.status()
                                     : StorageFailure("reading the rebuild queue", list.status());
    return ErrorResponse(format, HttpStatusOf(failure), StdView(failure.message()));
  }
  const absl::Time now = clock_();
  const std::vector<Lease> active = rebuilds_ != nullptr ? rebuilds_->ActiveLeases(now) : std::vector<Lease>();
  const std::vector<RebuildResult> results =
      rebuilds_ != nullptr ? rebuilds_->RecentResults() : std::vector<RebuildResult>();

  if (format == Format::kJson) {
    json wanted = json::array();
    for (const WantedItem& item : list->wanted) wanted.push_back(WantedPathJson(ToProto(item)));
    json disputed = json::array();
    for (const WantedItem& item : list->disputed) disputed.push_back(WantedPathJson(ToProto(item)));
    json leases = json::array();
    for (const Lease& lease : active) {
      leases.push_back({{"storePath", lease.path.full()},
                        {"operator", lease.operator_name},
                        {"builder", lease.builder},
                        {"takenUnix", UnixOf(lease.taken)},
                        {"expiresUnix", UnixOf(lease.expires)}});
    }
    json reported = json::array();
    for (const RebuildResult& result : results) {
      reported.push_back({{"storePath", result.path.full()},
                          {"operator", result.operator_name},
                          {"builder", result.builder},
                          {"built", result.built},
                          {"detail", result.detail},
                          {"reportedUnix", UnixOf(result.reported)}});
    }
    return JsonResponse(200, DumpJson({{"wanted", std::move(wanted)},
                                       {"disputed", std::move(disputed)},
                                       {"demandPaths", static_cast<int64_t>(list->demand_paths)},
                                       {"quorum", list->quorum},
                                       {"truncated", list->truncated},
                                       {"operator", arguments->operator_name},
                                       {"limit", arguments->limit},
                                       {"rebuildsUnderWay", std::move(leases)},
                                       {"recentResults", std::move(reported)}}));
  }

  const size_t limit = static_cast<size_t>(arguments->limit);
  const bool more = list->wanted.size() >= limit || list->disputed.size() >= limit || list->truncated;
  std::string body = Cat(
      "<p id=\"wanted-summary\">Paths with demand: <b id=\"demand-paths\">",
      ShowCount(static_cast<int64_t>(list->demand_paths)), "</b>. Quorum: <b id=\"quorum\">",
      // A threshold of groups has no single number: said in words, as the operators page says it.
      list->quorum > 0 ? Cat(list->quorum, "</b> operators")
                       : Cat(Escape(consensus::DescribeQuorum(*policy, policy->default_quorum())), "</b>"),
      " (paths no rule names). In the queue: <b id=\"queue-length\">", ShowCount(static_cast<int64_t>(list->wanted.size())),
      "</b> wanted and <b id=\"disputed-length\">", ShowCount(static_cast<int64_t>(list->disputed.size())),
      "</b> disputed",
      arguments->operator_name.empty() ? "" : Cat(", leaving out what ", Escape(arguments->operator_name), " attested"),
      more ? Cat(" (at most ", arguments->limit, " of each are shown; there may be more)") : "", ".</p>\n",
      "<p id=\"wanted-definition\">Demand counts the requests this node could not answer CONFIRMED (status "
      "lookups and the gateway's narinfo requests for UNKNOWN or PENDING paths), halving as time passes. "
      "Paths are ordered by demand, then by how many more operators quorum needs. A rebuilder takes a path "
      "whose derivation is available, builds it and attests it (<code>attest rebuild</code>).</p>\n",
      FilterForm(*arguments, *policy), "<h2 id=\"wanted-heading\">Wanted</h2>\n", WantedTable(list->wanted),
      "<h2 id=\"disputed-heading\">Disputed</h2>\n<p>Builders disagree about these paths; a rebuild by a further "
      "operator is evidence too.</p>\n",
      DisputedTable(list->disputed));
  if (rebuilds_ != nullptr) body += Cat(ActiveLeasesHtml(active), RecentResultsHtml(results));
  body += Cat("<p><a href=\"/wanted.json", Escape(QueryString(arguments->Arguments())),
              "\">This page as JSON</a></p>\n");
  return HtmlResponse(200, Frame("Wanted: the rebuild queue", body));
}

}  // namespace attest::server::web
