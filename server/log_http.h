// LogHttp: the node's transparency log on the HTTP port, read-only (C2SP tlog-tiles, under /log/).
//
//   GET /log/checkpoint                 the latest signed checkpoint (a signed note, text/plain,
//                                       no-cache); 404 before the first one
//   GET /log/tile/<L>/<N>[.p/<W>]       a hash tile (application/octet-stream)
//   GET /log/tile/entries/<N>[.p/<W>]   an entry bundle (application/octet-stream)
//
// A tile is served when the tree of the latest signed checkpoint holds all of it: a full tile, or a
// partial one of any width up to what that tree holds of it. So the partial tiles of every size the
// node signed stay available, also once the tile is full, as C2SP tlog-tiles requires of a log (a
// client that fetched an older checkpoint verifies it after the log grew). A partial tile of width W
// is the first W hashes (or entries) of the tile, read from the stored wider or full one. Any other
// well-formed tile path is 404 (it may exist later), a malformed one 400 naming the problem
// (consensus::ParseTilePath). A tile's bytes never change once served, so every tile, full or
// partial, is sent with `Cache-Control: public, max-age=31536000, immutable`; the checkpoint with
// `no-cache`. Tiles are read from the store on the HTTP server's job pool; a storage failure is 503
// (busy, with Retry-After) or 500, its detail going to the node's log only.
//
// /log/checkpoint answers with LogPublisher::ForClient (a test build may inject what it hands out);
// tiles always follow the latest signed checkpoint.
//
// Thread-safe. The store and the publisher are borrowed and must outlive the HTTP server.
#ifndef ATTEST_SERVER_LOG_HTTP_H_
#define ATTEST_SERVER_LOG_HTTP_H_

#include <string_view>

#include "server/http_server.h"
#include "server/log_publisher.h"
#include "storage/transparency_log_store.h"

namespace attest::server {

class LogHttp final {
 public:
  LogHttp(storage::TransparencyLogStore* store, LogPublisher* publisher);

  // Adds /log/checkpoint (exact) and /log/tile/ (prefix).
  void AddRoutes(HttpRouter& router);

  // The handlers, by request path.
  HttpReply Checkpoint();
  HttpReply Tile(std::string_view request_path);

 private:
  storage::TransparencyLogStore* const store_;
  LogPublisher* const publisher_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_LOG_HTTP_H_
