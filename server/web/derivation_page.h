// The stored .drv files on the HTTP port (`/drv/<hash>-<name>.drv`), for people and scripts; rebuilders
// use the GetDerivations RPC (docs/web.md, docs/rebuilds.md). Every file was checked before it was
// stored (server/derivation_intake.h: its path is the text-addressed path of its contents), so a
// reader can check it again the same way.
//
//   /drv/<base name>             the file, byte for byte, as text/plain (cacheable: the path names the
//                                contents); 404 "not held" when the node does not hold it
//   /drv/<base name>?closure=1   JSON {"derivations": [{"storePath", "contents"}], "missing": [...]}:
//                                the derivation and every input derivation it needs, inputs first, as
//                                DerivationIntake::Get gives them; `missing` the inputs the node lacks.
//                                A file that is not UTF-8 has "contentsBase64" instead of "contents".
// A name that is not a .drv base name, or a query other than closure=0/1: 400. The intake's
// RESOURCE_EXHAUSTED (the closure is too big to answer): 413; UNAVAILABLE: 503.
//
// Reads the store: run as an HttpReply::Later job.
//
// Thread-safe; the intake is borrowed and must outlive it.
#ifndef ATTEST_SERVER_WEB_DERIVATION_PAGE_H_
#define ATTEST_SERVER_WEB_DERIVATION_PAGE_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/derivation_intake.h"
#include "server/http_server.h"

namespace attest::server::web {

class DerivationPage final {
 public:
  explicit DerivationPage(DerivationIntake* intake);

  // `base_name`: what follows "/drv/" in the (percent-decoded) request path; `query`: its arguments.
  HttpResponse Render(std::string_view base_name, const std::vector<std::pair<std::string, std::string>>& query) const;

 private:
  DerivationIntake* const intake_;
};

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_DERIVATION_PAGE_H_
