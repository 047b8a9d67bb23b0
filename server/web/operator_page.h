// The operators page (`/operators`, `/operators.json`): first the policy in force (version, hash,
// parent, quorum, groups and rules in words with consensus::DescribeQuorum, maintainers), then every
// operator of the policy with its builder keys (retired ones marked with their cut-off in UTC,
// revoked ones with their reason), and for each builder the attestations this node holds signed by it, how many of them are
// evidence in a dispute, its agreement rate and the disputes it is involved in; then keys outside the
// policy that the node observed; then the sources of the gateway's NAR bytes ("Sources"): per operator
// the caches the policy lists for it, then the node's own [[source]] mirrors and its upstream, each
// with what the node saw of it (reachable or the last error, narinfos found, paths and bytes served,
// mismatches and the last one: a source whose bytes contradicted the confirmed contents is evidence of
// a bad source, shown with the store path and what differed). A policy cache the node has no status
// for is listed as not used by this node (no [gateway]).
//
// Agreement rate of a builder: the share of its attestations held here that are on no side of any
// dispute record (1 - attestations on a dispute side / attestations). It is a hint for reviewers, not
// a verdict: the builder on the honest side of a dispute loses agreement too.
//
// Reads every dispute record (in pages) on each request: run as an HttpReply::Later job.
//
// Thread-safe; policy and store are borrowed and must outlive it.
#ifndef ATTEST_SERVER_WEB_OPERATOR_PAGE_H_
#define ATTEST_SERVER_WEB_OPERATOR_PAGE_H_

#include "consensus/policy.h"
#include "server/policy_book.h"
#include "server/http_server.h"
#include "server/nar_source_status.h"
#include "server/resolution_book.h"
#include "server/web/html.h"
#include "storage/ledger.h"

namespace attest::server::web {

class OperatorPage final {
 public:
  // `resolutions` (may be null): builders excluded by a malicious statement in force are marked.
  // `sources` (may be empty: the node relays no NARs) is called once per request.
  OperatorPage(const PolicyBook& policy, storage::Ledger* store, const ResolutionBook* resolutions,
               NarSourceStatusFn sources = {});

  HttpResponse Render(Format format) const;

 private:
  const PolicyBook& policy_;
  storage::Ledger* const store_;
  const ResolutionBook* const resolutions_;
  const NarSourceStatusFn sources_;
};

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_OPERATOR_PAGE_H_
