#include "server/web/html.h"

#include <string>

#include "absl/time/time.h"
#include "consensus/text.h"
#include "server/web/json.h"

namespace attest::server::web {
namespace {

using consensus::Cat;

// Small, and the same on every page; no scripts anywhere.
constexpr std::string_view kStyle = R"css(
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#23395d;color:#fff;padding:.6em 1em;display:flex;gap:1.5em;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600}
header form{margin-left:auto;display:flex;gap:.4em}
header input[type=search]{width:34em;max-width:60vw}
main{padding:1em 1.5em}
table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}
pre{background:#f0f0f0;padding:.8em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
#sides{table-layout:fixed;width:100%}
#sides td,#sides th{overflow-wrap:anywhere}
#sides tr>th:first-child{width:24%}
.diff{background:#fff0c2}
.absent{color:#a00}
.flagged{color:#a00;font-weight:600}
.state{display:inline-block;padding:.1em .5em;border-radius:.3em;background:#ddd}
.state-open{background:#ffd7d7}.state-resolved{background:#d7f5d7}
.state-nondeterministic{background:#e6e0ff}.state-malicious{background:#ffb0b0}
.verdict{font-size:1.3em;font-weight:700}
.error{background:#ffe3e3;border:1px solid #d66;padding:.8em}
.filters{display:flex;gap:1em;align-items:end;flex-wrap:wrap}
.muted{color:#666}
.paths{max-width:100%}
.paths td{overflow-wrap:anywhere}
.paths ul{margin:0;padding-left:1.1em}
.paths td.path-verdict{overflow-wrap:normal;font-weight:600}
)css";

}  // namespace

std::string Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string QueryString(const std::vector<std::pair<std::string, std::string>>& arguments) {
  std::string out;
  for (const auto& [name, value] : arguments) {
    if (value.empty()) continue;
    out += out.empty() ? "?" : "&";
    out += UrlEncode(name);
    out += "=";
    out += UrlEncode(value);
  }
  return out;
}

std::string ShowTime(int64_t unix_seconds) {
  if (unix_seconds == 0) return "unknown";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixSeconds(unix_seconds), absl::UTCTimeZone());
}

std::string ShowCount(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return value < 0 ? Cat("-", out) : out;
}

std::string Frame(std::string_view title, std::string_view body, std::string_view search_value) {
  return Cat("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             "<title>", Escape(title), " - attestd</title><style>", kStyle, "</style></head><body>\n"
             "<header><a href=\"/disputes\">Disputes</a><a href=\"/operators\">Operators</a>"
             "<a href=\"/wanted\">Wanted</a>"
             "<form method=\"get\" action=\"/search\" role=\"search\">"
             "<input type=\"search\" name=\"path\" id=\"search-path\" placeholder=\"/nix/store/...\" "
             "aria-label=\"store path\" value=\"", Escape(search_value), "\">"
             "<button type=\"submit\" id=\"search-submit\">Look up</button></form></header>\n"
             "<main><h1>", Escape(title), "</h1>\n", body, "\n</main></body></html>\n");
}

HttpResponse HtmlResponse(int status, std::string document) {
  HttpResponse response;
  response.status = status;
  response.content_type = "text/html; charset=utf-8";
  response.headers.emplace_back("Cache-Control", "no-cache");  // (nosniff: the HTTP server adds it to every reply)
  // No script may run on these pages, whatever a stored text contains.
  response.headers.emplace_back("Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; img-src 'self'");
  response.body = std::move(document);
  return response;
}

HttpResponse JsonResponse(int status, std::string json) {
  HttpResponse response;
  response.status = status;
  response.content_type = "application/json";
  response.headers.emplace_back("Cache-Control", "no-cache");  // (nosniff: the HTTP server adds it to every reply)
  json.push_back('\n');
  response.body = std::move(json);
  return response;
}

HttpResponse ErrorResponse(Format format, int status, std::string_view message) {
  HttpResponse response;
  if (format == Format::kJson) {
    response = JsonResponse(status, DumpJson({{"error", message}, {"status", status}}));
  } else {
    const std::string_view title = status == 404   ? "Not found"
                                   : status == 400 ? "Bad request"
                                   : status == 503 ? "Busy, retry later"
                                                   : "Error";
    response = HtmlResponse(status, Frame(title, Cat("<p class=\"error\" id=\"error\">", Escape(message), "</p>")));
  }
  if (status == 503) response.headers.emplace_back("Retry-After", "1");
  return response;
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

}  // namespace attest::server::web
