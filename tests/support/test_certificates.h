// Test certificates made with the real `openssl` command: a CA, and certificates it signs for
// 127.0.0.1 / localhost (usable by servers and as client certificates).
#ifndef ATTEST_TESTS_SUPPORT_TEST_CERTIFICATES_H_
#define ATTEST_TESTS_SUPPORT_TEST_CERTIFICATES_H_

#include <string>

#include "tests/support/test_support.h"

namespace attest::testing {

struct CertificateFiles final {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key (unencrypted)
};

// A self-signed CA in `dir` as <name>.crt / <name>.key. Fails the test when openssl fails.
CertificateFiles MakeTestCa(const TempDir& dir, const std::string& name);

// A certificate for 127.0.0.1 and localhost (server and client use) signed by `ca`, as <name>.crt /
// <name>.key in `dir`.
CertificateFiles MakeTestCertificate(const TempDir& dir, const std::string& name, const CertificateFiles& ca);

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SUPPORT_TEST_CERTIFICATES_H_
