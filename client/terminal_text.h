// What the CLI prints of text it did not write (a node's answers, builds by someone else): made safe
// for a terminal, and laid out in aligned tables with ages the way every status command shows them.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CLIENT_TERMINAL_TEXT_H_
#define ATTEST_CLIENT_TERMINAL_TEXT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace attest::client {

// kOne: a one-line field (line breaks and tabs become spaces). kMany: a report (line breaks and tabs
// stay). Either way other control bytes (terminal escapes) become '?'.
enum class Lines { kOne, kMany };
std::string Printable(std::string_view text, Lines lines = Lines::kOne);

// "never" (for 0 or less), "12s ago", "4m ago", "3h ago", "2d ago": the node's clock against this
// machine's, never negative.
std::string AgeText(int64_t unix_seconds, absl::Time now);
// "2026-12-07 09:40:00Z".
std::string TimeText(int64_t unix_seconds);

// Rows as columns separated by two spaces, each as wide as its widest cell.
void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_TERMINAL_TEXT_H_
