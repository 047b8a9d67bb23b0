// The JSON twins of the web pages: serialising without exceptions.
//
// Thread-safe.
#ifndef ATTEST_SERVER_WEB_JSON_H_
#define ATTEST_SERVER_WEB_JSON_H_

#include <string>

#include <nlohmann/json.hpp>

namespace attest::server::web {

// Compact JSON; bytes that are not UTF-8 (only a request can carry them) become U+FFFD instead of
// failing.
inline std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace attest::server::web

#endif  // ATTEST_SERVER_WEB_JSON_H_
