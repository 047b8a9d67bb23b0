// The handlers of one node, wired as attestd wires them (server/node.cc) but over an in-memory store
// and without listening: what the request and http_route fuzz targets call. It holds a confirmed
// path, a disputed one (so a dispute record and a log with a signed checkpoint) and a file://
// upstream cache with the confirmed path's narinfo and NAR. Built once per process.
#ifndef ATTEST_TESTS_FUZZ_FUZZ_NODE_H_
#define ATTEST_TESTS_FUZZ_FUZZ_NODE_H_

#include <memory>

#include "server/dispute_messages.h"
#include "server/dispute_view.h"
#include "server/http_server.h"
#include "server/ingest.h"
#include "server/log_proofs.h"
#include "server/status_query.h"

namespace attest::fuzz {

class FuzzNode {
 public:
  static FuzzNode& Get();

  virtual ~FuzzNode() = default;
  virtual server::Ingestor& ingestor() = 0;
  virtual const server::StatusQuery& status_query() = 0;
  virtual const server::DisputeView& dispute_view() = 0;
  virtual const server::LogProofs& log_proofs() = 0;
  // Routes the request as the HTTP server does (404 for no route) and runs a Later job in place.
  virtual server::HttpResponse Serve(const server::HttpRequest& request) = 0;
};

}  // namespace attest::fuzz

#endif  // ATTEST_TESTS_FUZZ_FUZZ_NODE_H_
