#include "server/web/web_routes.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "server/web/derivation_page.h"
#include "server/web/dispute_pages.h"
#include "server/web/html.h"
#include "server/web/operator_page.h"
#include "server/web/search_page.h"
#include "server/web/wanted_page.h"

namespace attest::server::web {
namespace {

constexpr std::string_view kDisputePrefix = "/disputes/";
constexpr std::string_view kJsonSuffix = ".json";
constexpr std::string_view kDiffHtmlSuffix = "/diff.html";
constexpr std::string_view kDiffTextSuffix = "/diff.txt";
constexpr std::string_view kDrvPrefix = "/drv/";

struct Pages final {
  Pages(const PolicyBook& policy, storage::Ledger* store, const StatusQuery* status_query,
        const DisputeView* dispute_view, const ResolutionBook* resolutions, NarSourceStatusFn sources,
        const DisputeDiffer* differ)
      : disputes(dispute_view, differ), operators(policy, store, resolutions, std::move(sources)), search(status_query) {}
  DisputePages disputes;
  OperatorPage operators;
  SearchPage search;
};

std::string SearchedPath(const HttpRequest& request) {
  const std::string* path = request.QueryValue("path");
  return path == nullptr ? std::string() : *path;
}

}  // namespace

void AddRoutes(HttpRouter& router, const PolicyBook& policy, storage::Ledger* store,
               const StatusQuery* status_query, const DisputeView* dispute_view,
               const ResolutionBook* resolutions, NarSourceStatusFn sources, const DisputeDiffer* differ,
               const RebuildQueue* wanted, const RebuildBook* rebuilds, DerivationIntake* derivations,
               std::function<absl::Time()> clock) {
  // Shared by the handlers, so it lives as long as the router (and the server that holds it).
  auto pages = std::make_shared<const Pages>(policy, store, status_query, dispute_view, resolutions, std::move(sources),
                                             differ);

  std::shared_ptr<const WantedPage> wanted_page;
  if (wanted != nullptr) wanted_page = std::make_shared<const WantedPage>(policy, wanted, rebuilds, std::move(clock));
  if (derivations != nullptr) {
    auto drv_page = std::make_shared<const DerivationPage>(derivations);
    router.Prefix(std::string(kDrvPrefix), [drv_page](const HttpRequest& request) {
      return HttpReply::Later([drv_page, base_name = std::string(request.path.substr(kDrvPrefix.size())),
                               query = request.query] { return drv_page->Render(base_name, query); });
    });
  }

  router.Exact("/", [](const HttpRequest&) {
    HttpResponse response = HttpResponse::Text(302, "see /disputes");
    response.headers.emplace_back("Location", "/disputes");
    return HttpReply::Now(std::move(response));
  });
  for (Format format : {Format::kHtml, Format::kJson}) {
    const std::string suffix(format == Format::kJson ? kJsonSuffix : "");
    router.Exact("/disputes" + suffix, [pages, format](const HttpRequest& request) {
      return HttpReply::Later([pages, format, query = request.query] { return pages->disputes.List(query, format); });
    });
    router.Exact("/operators" + suffix, [pages, format](const HttpRequest&) {
      return HttpReply::Later([pages, format] { return pages->operators.Render(format); });
    });
    if (wanted != nullptr) {
      router.Exact("/wanted" + suffix, [wanted_page, format](const HttpRequest& request) {
        return HttpReply::Later([wanted_page, format, query = request.query] { return wanted_page->Render(query, format); });
      });
    }
    router.Exact("/search" + suffix, [pages, format](const HttpRequest& request) {
      return HttpReply::Later([pages, format, path = SearchedPath(request)] { return pages->search.Render(path, format); });
    });
  }
  router.Prefix(std::string(kDisputePrefix), [pages](const HttpRequest& request) {
    std::string id(request.path.substr(kDisputePrefix.size()));
    for (std::string_view report : {kDiffHtmlSuffix, kDiffTextSuffix}) {
      if (id.size() > report.size() && id.ends_with(report)) {
        id.resize(id.size() - report.size());
        const bool html = report == kDiffHtmlSuffix;
        return HttpReply::Later([pages, html, id = std::move(id)] {
          return html ? pages->disputes.DiffHtml(id) : pages->disputes.DiffText(id);
        });
      }
    }
    Format format = Format::kHtml;
    if (id.size() > kJsonSuffix.size() && id.ends_with(kJsonSuffix)) {
      id.resize(id.size() - kJsonSuffix.size());
      format = Format::kJson;
    }
    return HttpReply::Later([pages, format, id = std::move(id)] { return pages->disputes.One(id, format); });
  });
}

}  // namespace attest::server::web
