// Building the maintainers' web pages: HTML escaping, query-string encoding, times, the page frame
// (header with navigation and the store-path search box) and the responses the pages send.
//
// Every text that comes from the database or a request goes through Escape (or Text) before it is
// part of a page. The pages carry no JavaScript; the only style is the small inline sheet of Frame.
//
// Pure functions; thread-safe.
#ifndef ATTEST_SERVER_WEB_HTML_H_
#define ATTEST_SERVER_WEB_HTML_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/http_server.h"

namespace attest::server::web {

// Which twin of a page is asked for: "/disputes" or "/disputes.json".
enum class Format { kHtml, kJson };

// `text` with & < > " ' replaced by entities: safe in element content and in quoted attributes.
std::string Escape(std::string_view text);

// Percent-encodes everything but unreserved characters (RFC 3986), for query values and path parts.
std::string UrlEncode(std::string_view text);

// "?a=1&b=x%20y" from the pairs whose value is not empty; "" when none is.
std::string QueryString(const std::vector<std::pair<std::string, std::string>>& arguments);

// "2023-11-14 22:13:20 UTC"; "unknown" for 0.
std::string ShowTime(int64_t unix_seconds);

// "12,345" (NAR sizes, counts).
std::string ShowCount(int64_t value);

// A whole HTML document: the header (links to the pages and the search box, pre-filled with
// `search_value`), an <h1> with `title`, then `body` (already HTML). `title` is escaped.
std::string Frame(std::string_view title, std::string_view body, std::string_view search_value = "");

// text/html response of a Frame.
HttpResponse HtmlResponse(int status, std::string document);
// application/json response.
HttpResponse JsonResponse(int status, std::string json);

// An error as a page (HTML: a Frame with the message; JSON: {"error": message, "status": code}).
HttpResponse ErrorResponse(Format format, int status, std::string_view message);

// The HTTP status for a failed store read or a handler error: 400 INVALID_ARGUMENT, 404 NOT_FOUND,
// 503 UNAVAILABLE, 500 otherwise.
int HttpStatusOf(const absl::Status& status);

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_HTML_H_
