// The node's log: one line per event on stderr, "<UTC time> <LEVEL> <message>".
//
// The server logs state changes (quorum reached, dispute opened or updated), startup and shutdown, and
// failures whose details are kept from clients. Never secrets, never whole payloads: callers pass short
// messages, and every line is cut to kMaxLogLineBytes with control characters escaped.
//
// Thread-safe: each line is written with one call under a lock, so lines never interleave.
#ifndef ATTEST_SERVER_LOG_H_
#define ATTEST_SERVER_LOG_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace attest::server {

enum class LogLevel { kInfo = 0, kWarning = 1, kError = 2 };

inline constexpr size_t kMaxLogLineBytes = 2048;

void Log(LogLevel level, std::string_view message);
// Writes several lines of one level at once (one system call), for bursts such as the state changes of
// one committed batch.
void LogLines(LogLevel level, const std::vector<std::string>& messages);

inline void LogInfo(std::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarning(std::string_view message) { Log(LogLevel::kWarning, message); }
inline void LogError(std::string_view message) { Log(LogLevel::kError, message); }

}  // namespace attest::server

#endif  // ATTEST_SERVER_LOG_H_
