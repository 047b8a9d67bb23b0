#include "server/log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace attest::server {
namespace {

std::mutex& LogMutex() {
  static std::mutex mu;
  return mu;
}

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

// "2025-01-31T12:34:56.789Z"
std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return buffer;
}

// Control characters (including newlines) are escaped so one event is always one line.
void AppendLine(std::string& out, std::string_view timestamp, LogLevel level, std::string_view message) {
  out.append(timestamp);
  out.push_back(' ');
  out.append(LevelName(level));
  out.push_back(' ');
  size_t written = 0;
  for (char c : message) {
    if (written >= kMaxLogLineBytes) {
      out.append("...");
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", u);
      out.append(escaped);
      written += 4;
    } else {
      out.push_back(c);
      ++written;
    }
  }
  out.push_back('\n');
}

void WriteAll(const std::string& text) {
  std::lock_guard lock(LogMutex());
  size_t offset = 0;
  while (offset < text.size()) {
    ssize_t n = ::write(STDERR_FILENO, text.data() + offset, text.size() - offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone; logging must never stop the node
    offset += static_cast<size_t>(n);
  }
}

}  // namespace

void Log(LogLevel level, std::string_view message) {
  std::string line;
  AppendLine(line, Timestamp(), level, message);
  WriteAll(line);
}

void LogLines(LogLevel level, const std::vector<std::string>& messages) {
  if (messages.empty()) return;
  const std::string timestamp = Timestamp();
  std::string text;
  for (const std::string& message : messages) AppendLine(text, timestamp, level, message);
  WriteAll(text);
}

}  // namespace attest::server
