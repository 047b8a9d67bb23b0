#include "client/terminal_text.h"

#include <algorithm>

#include "consensus/text.h"

namespace attest::client {

using consensus::Cat;

std::string Printable(std::string_view text, Lines lines) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if ((c == '\n' || c == '\t') && lines == Lines::kMany) {
      out += c;
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else if (u < 0x20 || u == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  return out;
}

std::string AgeText(int64_t unix_seconds, absl::Time now) {
  if (unix_seconds <= 0) return "never";
  const int64_t age = std::max<int64_t>(0, absl::ToUnixSeconds(now) - unix_seconds);
  if (age < 120) return Cat(age, "s ago");
  if (age < 2 * 3600) return Cat(age / 60, "m ago");
  if (age < 2 * 86400) return Cat(age / 3600, "h ago");
  return Cat(age / 86400, "d ago");
}

std::string TimeText(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixSeconds(unix_seconds), absl::UTCTimeZone());
}

void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

}  // namespace attest::client
