// The store-path search (`/search?path=/nix/store/...`, `/search.json?path=...`): the path's verdict
// as StatusQuery::Answer computes it (the Status RPC's answer before its wire form), the rule that
// applied with its quorum in words and why it is or is not met, the policy version, its fingerprints
// with the operators and builders behind each, the counted attestations, and a link to its dispute when
// it has one.
//
// A path inside a store object ("/nix/store/<hash>-<name>/bin/x") is looked up as the object. No path:
// the search form with an explanation (200). A malformed path: 400 with the parser's message.
//
// A realisation key ("sha256:<hex>!out", "/nix/store/<hash>-<name>.drv^out", see consensus/realisation.h)
// is answered the same way by the Status RPC's answer for it: the derivation output's verdict, the
// output path each fingerprint claims, and a link to its dispute.
//
// Runs the status query (it reads the store): run as an HttpReply::Later job.
//
// Thread-safe; the query is borrowed and must outlive it.
#ifndef ATTEST_SERVER_WEB_SEARCH_PAGE_H_
#define ATTEST_SERVER_WEB_SEARCH_PAGE_H_

#include <string_view>

#include "server/http_server.h"
#include "server/status_query.h"
#include "server/web/html.h"

namespace attest::server::web {

class SearchPage final {
 public:
  explicit SearchPage(const StatusQuery* status_query);

  HttpResponse Render(std::string_view path, Format format) const;

 private:
  HttpResponse RenderRealisation(const std::string& key, Format format) const;

  const StatusQuery* const status_query_;
};

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_SEARCH_PAGE_H_
