#include "server/nar_source_status.h"

namespace attest::server {

std::string_view NarSourceKindName(NarSourceKind kind) {
  switch (kind) {
    case NarSourceKind::kOperator:
      return "operator";
    case NarSourceKind::kMirror:
      return "mirror";
    case NarSourceKind::kUpstream:
      return "upstream";
  }
  return "unknown";
}

}  // namespace attest::server
