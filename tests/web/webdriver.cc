#include "tests/web/webdriver.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "consensus/encoding.h"

namespace attest::testing {
namespace {

using nlohmann::json;

constexpr char kElementKey[] = "element-6066-11e4-a52e-4f735466cecf";

// A port nobody listens on right now (chromedriver does not take port 0).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

// `name` on PATH (or the value of `env` when set), or "".
std::string FindProgram(const char* env, const std::string& name) {
  if (const char* set = std::getenv(env); set != nullptr && *set != '\0') {
    return ::access(set, X_OK) == 0 ? std::string(set) : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path == nullptr ? "/usr/bin:/bin" : path;
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = absl::StrCat(dirs.substr(start, end - start), "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// One HTTP exchange with the driver.
absl::StatusOr<std::pair<long, std::string>> Exchange(const std::string& url, const std::string& method,
                                                       const std::string* body, long timeout_ms) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::string answer;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  if (body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  }
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return absl::UnavailableError(absl::StrCat(method, " ", url, ": ", curl_easy_strerror(rc)));
  return std::make_pair(status, answer);
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebDriver>> WebDriver::Start(const std::string& log_dir) {
  const std::string chromium = FindProgram("ATTEST_CHROMIUM", "chromium");
  const std::string chromedriver = FindProgram("ATTEST_CHROMEDRIVER", "chromedriver");
  if (chromium.empty() || chromedriver.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the browser tests need Chromium and its driver: ", chromium.empty() ? "chromium" : "",
                     chromium.empty() && chromedriver.empty() ? " and " : "", chromedriver.empty() ? "chromedriver" : "",
                     " not found on PATH (install Debian's chromium and chromium-driver packages, see "
                     "scripts/install-deps, or set ATTEST_CHROMIUM / ATTEST_CHROMEDRIVER)"));
  }
  const int port = FreePort();
  if (port == 0) return absl::FailedPreconditionError("no free loopback port for chromedriver");
  auto driver = std::make_unique<Daemon>(
      std::vector<std::string>{chromedriver, absl::StrCat("--port=", port), "--allowed-ips=127.0.0.1"},
      absl::StrCat(log_dir, "/chromedriver"));
  std::unique_ptr<WebDriver> web(new WebDriver(std::make_unique<TempDir>(), std::move(driver), port));

  // Ready when /status says so.
  bool ready = false;
  PollUntil(
      [&] {
        if (!web->driver_->Running()) return true;
        auto status = Exchange(absl::StrCat("http://127.0.0.1:", port, "/status"), "GET", nullptr, 2000);
        if (!status.ok() || status->first != 200) return false;
        json parsed = json::parse(status->second, nullptr, false);
        ready = !parsed.is_discarded() && parsed["value"].value("ready", false);
        return ready;
      },
      std::chrono::seconds(30));
  if (!ready) {
    return absl::FailedPreconditionError(absl::StrCat("chromedriver (", chromedriver, ") did not become ready on port ",
                                                      port, ": ", web->driver_->Stderr(), web->driver_->Stdout()));
  }

  const json capabilities = {
      {"capabilities",
       {{"alwaysMatch",
         {{"browserName", "chrome"},
          {"goog:chromeOptions",
           {{"binary", chromium},
            {"args",
             {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              absl::StrCat("--user-data-dir=", web->profile_->path()), "--window-size=1400,1000"}}}}}}}}};
  auto session = web->Call("POST", "/session", capabilities);
  if (!session.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("chromium (", chromium, ") cannot start a headless session: ",
                                                      session.status().message()));
  }
  web->session_ = (*session).value("sessionId", "");
  if (web->session_.empty()) return absl::FailedPreconditionError("chromedriver gave no session id");
  if (auto timeouts = web->Call("POST", web->SessionPath("/timeouts"), json{{"pageLoad", 30000}, {"implicit", 0}});
      !timeouts.ok()) {
    return timeouts.status();
  }
  return web;
}

WebDriver::WebDriver(std::unique_ptr<TempDir> profile, std::unique_ptr<Daemon> driver, int port)
    : profile_(std::move(profile)), driver_(std::move(driver)), port_(port) {}

WebDriver::~WebDriver() {
  // Ending the session makes the driver quit the browser; then the driver itself goes.
  if (!session_.empty()) (void)Call("DELETE", SessionPath(""), std::nullopt);
  if (driver_ && driver_->Running()) {
    if (!driver_->Signal(SIGTERM, std::chrono::seconds(10))) driver_->Signal(SIGKILL, std::chrono::seconds(10));
  }
}

absl::StatusOr<json> WebDriver::Call(const std::string& method, const std::string& path,
                                     const std::optional<json>& body) {
  const std::string text = body ? body->dump() : std::string();
  auto answer = Exchange(absl::StrCat("http://127.0.0.1:", port_, path), method,
                         body || method == "POST" ? &text : nullptr, 60000);
  if (!answer.ok()) return answer.status();
  json parsed = json::parse(answer->second, nullptr, false);
  if (parsed.is_discarded()) {
    return absl::InternalError(absl::StrCat(method, " ", path, ": the driver answered ", answer->first,
                                            " with something that is not JSON: ", answer->second.substr(0, 500)));
  }
  if (answer->first != 200) {
    const json& value = parsed["value"];
    const std::string error = value.is_object() ? value.value("error", "") : "";
    const std::string message = value.is_object() ? value.value("message", "") : answer->second;
    const std::string shown = absl::StrCat(method, " ", path, ": ", error, ": ", message.substr(0, 1000));
    if (error == "no such element") return absl::NotFoundError(shown);
    return absl::InternalError(shown);
  }
  // New Session answers {"value": {"sessionId": ..., "capabilities": ...}}.
  return parsed["value"];
}

absl::Status WebDriver::Navigate(const std::string& url) {
  return Call("POST", SessionPath("/url"), json{{"url", url}}).status();
}

absl::StatusOr<std::string> WebDriver::CurrentUrl() {
  auto value = Call("GET", SessionPath("/url"), std::nullopt);
  if (!value.ok()) return value.status();
  return value->is_string() ? value->get<std::string>() : std::string();
}

absl::StatusOr<std::string> WebDriver::PageSource() {
  auto value = Call("GET", SessionPath("/source"), std::nullopt);
  if (!value.ok()) return value.status();
  return value->is_string() ? value->get<std::string>() : std::string();
}

absl::StatusOr<std::vector<std::string>> WebDriver::FindAll(const std::string& css) {
  auto value = Call("POST", SessionPath("/elements"), json{{"using", "css selector"}, {"value", css}});
  if (!value.ok()) return value.status();
  std::vector<std::string> elements;
  for (const json& element : *value) elements.push_back(element.value(kElementKey, ""));
  return elements;
}

absl::StatusOr<std::string> WebDriver::Find(const std::string& css) {
  auto value = Call("POST", SessionPath("/element"), json{{"using", "css selector"}, {"value", css}});
  if (!value.ok()) return value.status();
  return value->value(kElementKey, "");
}

absl::StatusOr<std::string> WebDriver::Text(const std::string& element) {
  auto value = Call("GET", SessionPath(absl::StrCat("/element/", element, "/text")), std::nullopt);
  if (!value.ok()) return value.status();
  return value->is_string() ? value->get<std::string>() : std::string();
}

absl::StatusOr<std::string> WebDriver::Attribute(const std::string& element, const std::string& name) {
  auto value = Call("GET", SessionPath(absl::StrCat("/element/", element, "/attribute/", name)), std::nullopt);
  if (!value.ok()) return value.status();
  return value->is_string() ? value->get<std::string>() : std::string();
}

absl::Status WebDriver::Click(const std::string& element) {
  return Call("POST", SessionPath(absl::StrCat("/element/", element, "/click")), json::object()).status();
}

absl::Status WebDriver::Clear(const std::string& element) {
  return Call("POST", SessionPath(absl::StrCat("/element/", element, "/clear")), json::object()).status();
}

absl::Status WebDriver::Type(const std::string& element, const std::string& text) {
  return Call("POST", SessionPath(absl::StrCat("/element/", element, "/value")), json{{"text", text}}).status();
}

absl::StatusOr<std::string> WebDriver::Screenshot() {
  auto value = Call("GET", SessionPath("/screenshot"), std::nullopt);
  if (!value.ok()) return value.status();
  if (!value->is_string()) return absl::InternalError("the screenshot is not a base64 string");
  auto bytes = consensus::Base64Decode(value->get<std::string>());
  if (!bytes.ok()) return bytes.status();
  return std::string(bytes->begin(), bytes->end());
}

absl::Status WebDriver::SetWindowSize(int width, int height) {
  return Call("POST", SessionPath("/window/rect"), json{{"width", width}, {"height", height}}).status();
}

bool WebDriver::WaitForUrlContaining(const std::string& part, std::chrono::milliseconds timeout) {
  return PollUntil(
      [&] {
        auto url = CurrentUrl();
        return url.ok() && url->find(part) != std::string::npos;
      },
      timeout);
}

}  // namespace attest::testing
