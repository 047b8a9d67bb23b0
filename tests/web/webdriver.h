// A small W3C WebDriver client for the browser tests: starts chromedriver on a free loopback port,
// opens a headless Chromium session and drives it over HTTP (libcurl, JSON). Every call has a
// deadline; failures are reported as errors with what the driver said.
#ifndef ATTEST_TESTS_WEB_WEBDRIVER_H_
#define ATTEST_TESTS_WEB_WEBDRIVER_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {

class WebDriver final {
 public:
  // Finds chromium and chromedriver ($ATTEST_CHROMIUM / $ATTEST_CHROMEDRIVER, else `chromium` and
  // `chromedriver` on PATH), starts the driver and a headless session. FAILED_PRECONDITION with what
  // to install when either is missing or the browser cannot start.
  static absl::StatusOr<std::unique_ptr<WebDriver>> Start(const std::string& log_dir);
  ~WebDriver();  // ends the session and the driver

  absl::Status Navigate(const std::string& url);
  absl::StatusOr<std::string> CurrentUrl();
  absl::StatusOr<std::string> PageSource();
  // Element ids for a CSS selector (empty when none matches).
  absl::StatusOr<std::vector<std::string>> FindAll(const std::string& css);
  // The first match; NOT_FOUND when none matches.
  absl::StatusOr<std::string> Find(const std::string& css);
  absl::StatusOr<std::string> Text(const std::string& element);
  absl::StatusOr<std::string> Attribute(const std::string& element, const std::string& name);
  absl::Status Click(const std::string& element);
  absl::Status Clear(const std::string& element);
  absl::Status Type(const std::string& element, const std::string& text);
  // PNG bytes of the viewport.
  absl::StatusOr<std::string> Screenshot();
  absl::Status SetWindowSize(int width, int height);
  // Polls the current URL until it contains `part`.
  bool WaitForUrlContaining(const std::string& part, std::chrono::milliseconds timeout);

 private:
  WebDriver(std::unique_ptr<TempDir> profile, std::unique_ptr<Daemon> driver, int port);
  absl::StatusOr<nlohmann::json> Call(const std::string& method, const std::string& path,
                                      const std::optional<nlohmann::json>& body);
  std::string SessionPath(const std::string& rest) const { return "/session/" + session_ + rest; }

  std::unique_ptr<TempDir> profile_;
  std::unique_ptr<Daemon> driver_;
  int port_ = 0;
  std::string session_;
};

}  // namespace attest::testing

#endif  // ATTEST_TESTS_WEB_WEBDRIVER_H_
