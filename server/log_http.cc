#include "server/log_http.h"

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "server/grpc_status.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

constexpr std::string_view kLogPrefix = "/log/";
constexpr std::string_view kTileContentType = "application/octet-stream";
constexpr std::string_view kImmutable = "public, max-age=31536000, immutable";
constexpr std::string_view kNoCache = "no-cache";

HttpResponse StorageFailed(std::string_view action, const absl::Status& status) {
  const absl::Status safe = StorageFailure(action, status);
  HttpResponse response = HttpResponse::Text(status.code() == absl::StatusCode::kUnavailable ? 503 : 500,
                                             std::string(StdView(safe.message())));
  if (response.status == 503) response.headers.emplace_back("Retry-After", "1");
  response.headers.emplace_back("Cache-Control", std::string(kNoCache));
  return response;
}

// 404 for what may exist later; not cached, so a client asking again after the next checkpoint gets it.
HttpResponse NotYet(std::string text) {
  HttpResponse response = HttpResponse::Text(404, std::move(text));
  response.headers.emplace_back("Cache-Control", std::string(kNoCache));
  return response;
}

// Reads the tile's bytes: hash tiles as stored, entry bundles rebuilt from the entries.
HttpResponse ReadTile(storage::TransparencyLogStore* store, const consensus::TileId& tile) {
  std::string body;
  if (tile.entries) {
    const uint64_t first = tile.index * consensus::kFullTileWidth;
    absl::StatusOr<std::vector<std::string>> entries = store->LogEntries(first, static_cast<uint64_t>(tile.width));
    if (!entries.ok()) return StorageFailed(Cat("reading ", consensus::TilePath(tile)), entries.status());
    absl::StatusOr<std::string> bundle = consensus::EncodeEntryBundle(*entries);
    if (!bundle.ok()) return StorageFailed(Cat("encoding ", consensus::TilePath(tile)), bundle.status());
    body = *std::move(bundle);
  } else {
    absl::StatusOr<std::vector<std::string>> tiles = store->LogTiles(std::span<const consensus::TileId>(&tile, 1));
    if (!tiles.ok()) return StorageFailed(Cat("reading ", consensus::TilePath(tile)), tiles.status());
    const size_t want = static_cast<size_t>(tile.width) * consensus::kTileHashBytes;
    if (tiles->size() != 1 || tiles->front().size() != want) {
      return StorageFailed(Cat("reading ", consensus::TilePath(tile)),
                           absl::DataLossError(Cat("the store returned ", tiles->size(), " tiles, ",
                                                   tiles->empty() ? 0 : tiles->front().size(), " bytes; expected ",
                                                   want)));
    }
    body = std::move(tiles->front());
  }
  HttpResponse response;
  response.content_type = std::string(kTileContentType);
  response.headers.emplace_back("Cache-Control", std::string(kImmutable));
  response.body = std::move(body);
  return response;
}

}  // namespace

LogHttp::LogHttp(storage::TransparencyLogStore* store, LogPublisher* publisher) : store_(store), publisher_(publisher) {}

void LogHttp::AddRoutes(HttpRouter& router) {
  router.Exact(Cat(kLogPrefix, "checkpoint"), [this](const HttpRequest&) { return Checkpoint(); });
  router.Prefix(Cat(kLogPrefix, "tile/"), [this](const HttpRequest& request) { return Tile(request.path); });
}

HttpReply LogHttp::Checkpoint() {
  const std::shared_ptr<const PublishedCheckpoint> checkpoint = publisher_->ForClient();
  if (checkpoint == nullptr) {
    return HttpReply::Now(NotYet(Cat("log ", publisher_->origin(), " has no signed checkpoint yet; retry later")));
  }
  HttpResponse response;
  response.headers.emplace_back("Cache-Control", std::string(kNoCache));
  response.body = checkpoint->note;  // shared, sent without a copy
  return HttpReply::Now(std::move(response));
}

HttpReply LogHttp::Tile(std::string_view request_path) {
  const std::string_view path = request_path.substr(kLogPrefix.size());
  absl::StatusOr<consensus::TileId> tile = consensus::ParseTilePath(path);
  if (!tile.ok()) return HttpReply::Now(HttpResponse::Text(400, std::string(StdView(tile.status().message()))));
  const std::shared_ptr<const PublishedCheckpoint> latest = publisher_->Latest();
  if (latest == nullptr) {
    return HttpReply::Now(NotYet(Cat("log ", publisher_->origin(), " has no signed checkpoint yet")));
  }
  // Any width the signed tree holds is served, not only the latest checkpoint's: a client that read an
  // earlier checkpoint asks for that size's partial tiles (C2SP tlog-tiles: a log keeps serving the
  // partial tiles of every size it signed). The first W hashes of a tile, or its first W entries, never
  // change once the log holds them, so the stored (wider or full) tile gives them.
  const std::optional<consensus::TileId> implied = consensus::TileForSize(tile->level, tile->index, latest->size);
  if (!implied.has_value() || implied->width < tile->width) {
    consensus::TileId served = *tile;
    std::string hint;
    if (implied.has_value()) {
      served.width = implied->width;
      hint = Cat("; it has ", consensus::TilePath(served));
    }
    return HttpReply::Now(NotYet(Cat(consensus::TilePath(*tile), " reaches past the latest checkpoint (size ",
                                     latest->size, ")", hint)));
  }
  return HttpReply::Later([store = store_, tile = *tile] { return ReadTile(store, tile); });
}

}  // namespace attest::server
