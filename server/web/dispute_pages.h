// The dispute pages: the list (`/disputes`, open first, filtered by state, package name and
// operator, paginated) and one dispute (`/disputes/<id>`: the competing fingerprints side by side with
// their differences marked, who signed each side and when, with the deriver and build kind, flagged
// builders, the resolution history, the current state, the signed record, and what differs in the
// bytes of the two leading sides (DisputeDiffer's result: the differing files, diffoscope's text
// report, its HTML report in a sandboxed frame). Each in HTML and JSON; the diff's reports also as
// `/disputes/<id>/diff.html` and `/disputes/<id>/diff.txt`.
//
// They render DisputeView, the read model the Disputes gRPC service also serves, so both show the same
// disputes with the same limits (dispute_view.h). The handlers read the store through it (they block:
// run them as HttpReply::Later jobs). Storage failures are logged in full and shown with a client-safe
// message (StorageFailure).
//
// Thread-safe; the view and the differ are borrowed and must outlive it.
#ifndef ATTEST_SERVER_WEB_DISPUTE_PAGES_H_
#define ATTEST_SERVER_WEB_DISPUTE_PAGES_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consensus/policy.h"
#include "server/policy_book.h"
#include "server/dispute_differ.h"
#include "server/dispute_view.h"
#include "server/http_server.h"
#include "server/web/html.h"

namespace attest::server::web {

class DisputePages final {
 public:
  // `differ` may be null (the node does not compare bytes).
  explicit DisputePages(const DisputeView* view, const DisputeDiffer* differ = nullptr);

  // `/disputes` with its query arguments: state (open|nondeterministic|malicious|resolved, or empty
  // for all), name (part of the package name), operator (an operator of the policy), after (the
  // cursor of the next-page link), limit (1..kMaxDisputePageSize, default kDefaultDisputePageSize). 400
  // naming the argument when one is malformed or unknown; the operator must be one of the policy's (the
  // form offers only those).
  HttpResponse List(const std::vector<std::pair<std::string, std::string>>& query, Format format) const;

  // `/disputes/<id>`. 400 for a malformed id, 404 for an id this node holds no dispute for.
  HttpResponse One(std::string_view id, Format format) const;

  // `/disputes/<id>/diff.html`: diffoscope's HTML report, served with a CSP that allows no script,
  // no fetch and sandboxes it (it is shown in a sandboxed frame of the dispute page).
  // `/disputes/<id>/diff.txt`: the text report (text/plain). 400 for a malformed id, 404 when there is
  // no such report (yet).
  HttpResponse DiffHtml(std::string_view id) const;
  HttpResponse DiffText(std::string_view id) const;

 private:
  const DisputeView* const view_;
  const DisputeDiffer* const differ_;
  const PolicyBook& policy_;
};

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_DISPUTE_PAGES_H_
