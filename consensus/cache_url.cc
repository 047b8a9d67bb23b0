#include "consensus/cache_url.h"

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kWhatToWrite = "write https://host, http://host:port/prefix or file:///absolute/dir";

bool IsHexDigit(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }

// RFC 3986 pchar without pct-encoded, plus '/': what a path may carry as it is.
bool IsPathChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos;
}

absl::Status Refused(std::string_view url, std::string_view problem) {
  return absl::InvalidArgumentError(Cat("cache URL ", QuoteForError(url), " ", problem));
}

// host[:port] of an http(s) URL: a DNS name or IPv4 address, or an IPv6 address in brackets.
absl::Status CheckAuthority(std::string_view url, std::string_view authority) {
  if (authority.empty()) return Refused(url, Cat("has no host (", kWhatToWrite, ")"));
  std::string_view host = authority;
  std::string_view port;
  bool has_port = false;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    const std::string_view inside =
        close == std::string_view::npos ? std::string_view() : authority.substr(1, close - 1);
    const bool ipv6 = !inside.empty() && inside.find_first_not_of("0123456789abcdefABCDEF:.") == std::string_view::npos;
    const std::string_view after = close == std::string_view::npos ? std::string_view() : authority.substr(close + 1);
    if (!ipv6 || (!after.empty() && after.front() != ':')) {
      return Refused(url, "has a malformed IPv6 host (write it in brackets: http://[2001:db8::1]:8080)");
    }
    host = authority.substr(0, close + 1);
    if (!after.empty()) {
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      has_port = true;
    }
    if (host.empty()) return Refused(url, Cat("has no host (", kWhatToWrite, ")"));
    for (char c : host) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
        return Refused(url, Cat("has a host with '", std::string_view(&c, 1),
                                "' in it (a host is a DNS name, an IPv4 address or an IPv6 address in brackets)"));
      }
    }
  }
  if (has_port) {
    int value = 0;
    bool ok = !port.empty() && port.size() <= 5;
    for (char c : port) {
      ok = ok && absl::ascii_isdigit(static_cast<unsigned char>(c));
      if (ok) value = value * 10 + (c - '0');
    }
    if (!ok || value < 1 || value > 65535) {
      return Refused(url, "has a port that is not a number from 1 to 65535 (write host:port, e.g. "
                          "http://cache.example.org:8080, or leave the port out)");
    }
  }
  return absl::OkStatus();
}

// The path after the authority (http) or after "file://" (file), trailing slashes already removed.
absl::Status CheckPath(std::string_view url, std::string_view path, bool file) {
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%') {
      if (file) {
        return Refused(url, "has a '%' in its path (a file:// path is used as written, without percent-escapes: "
                            "name a directory whose path needs none)");
      }
      if (i + 2 >= path.size() || !IsHexDigit(path[i + 1]) || !IsHexDigit(path[i + 2])) {
        return Refused(url, "has a '%' that is not followed by two hex digits (write a literal % as %25)");
      }
      i += 2;
      continue;
    }
    if (!IsPathChar(c)) {
      return Refused(url, Cat("has '", std::string_view(&path[i], 1), "' in its path (",
                              file ? "a file:// path may use letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @ "
                                     "only: name a directory without other characters"
                                   : "percent-encode it, e.g. a space as %20",
                              ")"));
    }
  }
  // path is "" or "/seg/seg...": every segment after the leading slash must be a name.
  size_t start = 1;
  while (start <= path.size() && !path.empty()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return Refused(url, "has an empty, '.' or '..' segment in its path (write the path without '//', '/./' or "
                          "'/../': every cache has one spelling)");
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ValidateCacheUrl(std::string_view url) {
  if (url.empty()) {
    return absl::InvalidArgumentError(Cat("cache URL is empty (", kWhatToWrite, ")"));
  }
  if (url.size() > kMaxCacheUrlLength) {
    return absl::InvalidArgumentError(Cat("cache URL is ", url.size(), " bytes long (use at most ",
                                          kMaxCacheUrlLength, " bytes: the address of the cache, nothing more)"));
  }
  const size_t separator = url.find("://");
  // Credentials first, so that no later message repeats them.
  if (separator != std::string_view::npos) {
    const std::string_view rest = url.substr(separator + 3);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.find('@') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          "cache URL has a user name or password before '@' (URL not shown; credentials do not belong in a "
          "URL that others read: write the plain URL and give the node its credentials another way, e.g. "
          "a netrc file)");
    }
  }
  for (const char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      return Refused(url, Cat("contains the control character ", absl::StrFormat("0x%02X", byte),
                              " (write the URL on one line, without tabs or line breaks)"));
    }
    if (byte == ' ') return Refused(url, "contains a space (percent-encode it as %20)");
    if (byte >= 0x80) {
      return Refused(url, "contains a non-ASCII character (percent-encode it as %XX escapes of its UTF-8 bytes; "
                          "write an international host name in its xn-- form)");
    }
  }
  if (separator == std::string_view::npos) {
    return Refused(url, Cat("is not an http://, https:// or file:// URL (", kWhatToWrite, ")"));
  }
  const std::string_view scheme = url.substr(0, separator);
  const std::string lower = absl::AsciiStrToLower(AbslView(scheme));
  const bool known = lower == "http" || lower == "https" || lower == "file";
  if (known && lower != scheme) {
    return Refused(url, Cat("has its scheme in upper case (write ", lower, "://...)"));
  }
  if (lower == "s3") {
    return Refused(url, "is an s3:// URL, which attest does not fetch from (give the bucket's https:// address, "
                        "e.g. https://<bucket>.s3.<region>.amazonaws.com, with the bucket readable over HTTPS)");
  }
  if (!known) {
    return Refused(url, Cat("has the scheme ", QuoteForError(scheme), ", which attest does not fetch from (",
                            kWhatToWrite, ")"));
  }
  if (url.find('#') != std::string_view::npos) {
    return Refused(url, "has a fragment (remove the #... part: it is never sent to a cache)");
  }
  if (url.find('?') != std::string_view::npos) {
    return Refused(url, "has a query (give the plain cache URL: store settings such as ?priority= or "
                        "?compression= are not part of the cache's address)");
  }

  const bool file = lower == "file";
  std::string_view rest = url.substr(separator + 3);
  std::string_view authority;
  if (file) {
    if (rest.empty() || rest.front() != '/') {
      return Refused(url, "needs an absolute path (write file:///srv/cache, with three slashes; file://name/... "
                          "is a relative path or a host, neither of which is allowed)");
    }
  } else {
    const size_t slash = rest.find('/');
    authority = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    if (absl::Status s = CheckAuthority(url, authority); !s.ok()) return s;
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (file && rest.empty()) {
    return Refused(url, "names the root directory (name the cache's own directory, e.g. file:///srv/cache)");
  }
  if (absl::Status s = CheckPath(url, rest, file); !s.ok()) return s;
  return Cat(lower, "://", authority, rest);
}

}  // namespace attest::consensus
