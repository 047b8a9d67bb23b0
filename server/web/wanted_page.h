// The rebuild queue page (`/wanted`, `/wanted.json`): what the federation is missing, worst first, as
// RebuildQueue::Wanted computes it (the Rebuilds.Wanted RPC and `attest wanted` answer from the same
// call), and the rebuild loop around it (docs/web.md, docs/rebuilds.md):
//   - a summary: the paths the node counts demand for, the quorum, how many paths the queue lists;
//   - the wanted paths (UNKNOWN, PENDING): store path, verdict, demand, operators still needed, the
//     operators that attested it, its derivers (.drv and output name; a link to /drv/<base name> when
//     the node holds the derivation with its closure) and the leases on it (builder, operator, until);
//   - the disputed paths with demand, apart, each with a link to its dispute;
//   - "Rebuilds under way": every unexpired lease (RebuildBook::ActiveLeases);
//   - "Recent rebuild results": built or failed with the builder's reason (RebuildBook::RecentResults).
// Query arguments: `operator` (leave out what that operator of the policy attested) and `limit`
// (paths per list, 1..kMaxWantedLimit, default kDefaultWantedLimit). An unknown operator, a malformed
// limit or an argument the page does not take: 400 saying what to give.
//
// The JSON twin has the fields of the gRPC WantedResponse in its JSON names (camelCase: wanted,
// disputed, demandPaths, quorum; each path storePath, verdict, demand, lastRequestedUnix,
// operatorsNeeded, operators, derivers {drvPath, outputName, available}, disputeId, leases {storePath,
// operator, builder, expiresUnix}), every field present and 64-bit integers as JSON numbers, plus
// truncated, operator, limit, rebuildsUnderWay and recentResults.
//
// Reads the store (the queue walks the tallies of the paths with demand): run as an HttpReply::Later job.
//
// Thread-safe; everything is borrowed and must outlive it.
#ifndef ATTEST_SERVER_WEB_WANTED_PAGE_H_
#define ATTEST_SERVER_WEB_WANTED_PAGE_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "server/http_server.h"
#include "server/rebuild_book.h"
#include "server/rebuild_queue.h"
#include "server/web/html.h"

namespace attest::server::web {

class WantedPage final {
 public:
  using Clock = std::function<absl::Time()>;

  // `rebuilds` (may be null: the node takes no rebuild statements) gives the sections on leases and
  // results. `clock` (may be empty: absl::Now) is the time leases are compared with; pass the queue's.
  WantedPage(const PolicyBook& policy, const RebuildQueue* queue, const RebuildBook* rebuilds,
             Clock clock = {});

  // `query`: the request's arguments, as HttpRequest::query holds them.
  HttpResponse Render(const std::vector<std::pair<std::string, std::string>>& query, Format format) const;

 private:
  const PolicyBook& policy_;
  const RebuildQueue* const queue_;
  const RebuildBook* const rebuilds_;
  const Clock clock_;
};

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_WANTED_PAGE_H_
