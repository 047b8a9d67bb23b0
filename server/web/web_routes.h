// The maintainers' web pages on the node's HTTP port, server-rendered HTML that works without
// JavaScript, each with a JSON twin for scripts (docs/web.md):
//
//   /                       redirects to /disputes
//   /disputes[.json]        disputes, open first; ?state= &name= &operator= &after= &limit=
//   /disputes/<id>[.json]   one dispute
//   /disputes/<id>/diff.html, /disputes/<id>/diff.txt   diffoscope's reports on its two leading sides
//   /operators[.json]       operators and builders, and the sources of the gateway's NAR bytes
//   /search[.json]?path=    a store path's verdict
//   /wanted[.json]          the rebuild queue, leases and recent rebuild results; ?operator= &limit=
//   /drv/<hash>-<name>.drv  a stored derivation (text); ?closure=1: it and its inputs (JSON)
//
// Every page reads the store, so every handler answers with HttpReply::Later.
//
// Thread-safe. Policy, store, status query, dispute view and resolution book are borrowed and must outlive
// the HTTP server; so must whatever `sources` reads, and the rebuild queue, book and derivation intake.
#ifndef ATTEST_SERVER_WEB_WEB_ROUTES_H_
#define ATTEST_SERVER_WEB_WEB_ROUTES_H_

#include <functional>

#include "absl/time/time.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "server/derivation_intake.h"
#include "server/dispute_differ.h"
#include "server/dispute_view.h"
#include "server/http_server.h"
#include "server/nar_source_status.h"
#include "server/rebuild_book.h"
#include "server/rebuild_queue.h"
#include "server/resolution_book.h"
#include "server/status_query.h"
#include "storage/ledger.h"

namespace attest::server::web {

// `resolutions` (may be null) tells which builder keys a malicious statement in force excludes.
// The dispute pages render `dispute_view`, the read model the Disputes gRPC service serves too.
// `sources` (may be empty: no gateway) gives the operators page its section on the NAR sources.
// `differ` (may be null) gives the dispute pages what differs in the bytes.
// `wanted` (may be null: no /wanted) is the rebuild queue; `rebuilds` (may be null) gives the wanted
// page its leases and recent results; `derivations` (may be null: no /drv/) serves the stored .drv
// files; `clock` (may be empty: absl::Now) is the time the wanted page compares leases with.
void AddRoutes(HttpRouter& router, const PolicyBook& policy, storage::Ledger* store,
               const StatusQuery* status_query, const DisputeView* dispute_view,
               const ResolutionBook* resolutions, NarSourceStatusFn sources = {},
               const DisputeDiffer* differ = nullptr, const RebuildQueue* wanted = nullptr,
               const RebuildBook* rebuilds = nullptr, DerivationIntake* derivations = nullptr,
               std::function<absl::Time()> clock = {});

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_WEB_ROUTES_H_
