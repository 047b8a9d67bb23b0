#include "server/web/derivation_page.h"

#include <span>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "server/grpc_status.h"
#include "server/web/html.h"
#include "server/web/json.h"

namespace attest::server::web {
namespace {

using consensus::Cat;
using consensus::QuoteForError;
using consensus::StdView;
using nlohmann::json;

enum class Answer { kFile, kClosure };

int HttpStatusOfIntake(const absl::Status& status) {
  // The closure is bounded (kMaxClosureDerivations, kMaxClosureBytes): asking again will not help.
  if (status.code() == absl::StatusCode::kResourceExhausted) return 413;
  return HttpStatusOf(status);
}

HttpResponse Failure(Answer answer, int status, std::string_view message) {
  if (answer == Answer::kClosure) return ErrorResponse(Format::kJson, status, message);
  HttpResponse response = HttpResponse::Text(status, std::string(message));
  response.headers.emplace_back("Cache-Control", "no-cache");  // it may be held later
  if (status == 503) response.headers.emplace_back("Retry-After", "1");
  return response;
}

bool IsUtf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    if (!consensus::DecodeUtf8(text, pos, length).has_value()) return false;
    pos += length;
  }
  return true;
}

}  // namespace

DerivationPage::DerivationPage(DerivationIntake* intake) : intake_(intake) {}

HttpResponse DerivationPage::Render(std::string_view base_name,
                                    const std::vector<std::pair<std::string, std::string>>& query) const {
  Answer answer = Answer::kFile;
  for (const auto& [name, value] : query) {
    if (name != "closure") {
      return Failure(Answer::kFile, 400,
                     Cat("unknown argument ", QuoteForError(name), "; /drv/<hash>-<name>.drv takes closure=1"));
    }
    if (value == "1") {
      answer = Answer::kClosure;
    } else if (value != "0" && !value.empty()) {
      return Failure(Answer::kFile, 400, Cat("closure ", QuoteForError(value), " is not 0 or 1"));
    }
  }
  absl::StatusOr<consensus::StorePath> path = consensus::StorePath::ParseBaseName(base_name);
  if (!path.ok() || !path->IsDerivation()) {
    return Failure(answer, 400,
                   Cat(QuoteForError(base_name), " is not the base name of a .drv store path",
                       path.ok() ? "" : Cat(" (", StdView(path.status().message()), ")"),
                       "; ask for /drv/<hash>-<name>.drv"));
  }

  const std::string full = path->full();
  absl::StatusOr<DerivationClosure> closure =
      intake_->Get(std::span<const std::string>(&full, 1), answer == Answer::kClosure);
  if (!closure.ok()) {
    // The intake's own refusals quote only the request; anything else comes from the store.
    const absl::StatusCode code = closure.status().code();
    const absl::Status failure =
        code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kResourceExhausted
            ? closure.status()
            : StorageFailure("reading derivations", closure.status());
    return Failure(answer, HttpStatusOfIntake(failure), StdView(failure.message()));
  }
  // The asked derivation itself: the closure is inputs first, so it is the last one.
  if (closure->derivations.empty() || closure->derivations.back().path != *path) {
    return Failure(answer, 404,
                   Cat("not held: this node holds no derivation ", full,
                       " (builders send the .drv files of what they attest; another node of the federation may "
                       "hold it)"));
  }

  if (answer == Answer::kFile) {
    HttpResponse response;
    response.status = 200;
    response.content_type = "text/plain; charset=utf-8";
    // The store path is a hash of the contents (checked before storing): the answer never changes.
    response.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
    response.body = std::move(closure->derivations.back().contents);
    return response;
  }
  json derivations = json::array();
  for (const storage::StoredDerivation& drv : closure->derivations) {
    json entry = {{"storePath", drv.path.full()}};
    // JSON strings are Unicode; a file with other bytes (Nix writes strings byte for byte) is sent so
    // that it arrives exact.
    if (IsUtf8(drv.contents)) {
      entry["contents"] = drv.contents;
    } else {
      entry["contentsBase64"] = absl::Base64Escape(consensus::AbslView(drv.contents));
    }
    derivations.push_back(std::move(entry));
  }
  return JsonResponse(200, DumpJson({{"derivations", std::move(derivations)}, {"missing", closure->missing}}));
}

}  // namespace attest::server::web
