// The HTTP routes' handling of request paths and query strings: the substituter gateway
// (/<hash>.narinfo, /nar/...), the log (/log/checkpoint, /log/tile/...), federation, metrics, the
// dispute pages and search. The input is a path (percent-decoded, as the HTTP server hands it to a
// route) and query arguments; the node's router picks the handler. An answer of 500 is a finding:
// bad requests are the client's fault (4xx).
#include <cstddef>
#include <cstdint>
#include <string>
#include <unistd.h>
#include <variant>

#include <fuzzer/FuzzedDataProvider.h>

#include "tests/fuzz/fuzz_node.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest;
  FuzzedDataProvider input(data, size);
  std::string path = input.ConsumeRandomLengthString(server::kMaxPathBytes);
  if (path.empty() || path[0] != '/') path.insert(0, "/");
  server::HttpRequest request;
  request.method = input.ConsumeBool() ? "GET" : "HEAD";
  request.path = path;
  while (input.remaining_bytes() > 0 && request.query.size() < 16) {
    std::string name = input.ConsumeRandomLengthString(64);
    std::string value = input.ConsumeRandomLengthString(512);
    request.query.emplace_back(std::move(name), std::move(value));
  }
  server::HttpResponse response = fuzz::FuzzNode::Get().Serve(request);
  if (auto* file = std::get_if<server::HttpFile>(&response.body)) ::close(file->fd);
  FUZZ_CHECK(response.status >= 200 && response.status < 600 && response.status != 500,
             std::to_string(response.status) + " for " + path);
  return 0;
}
