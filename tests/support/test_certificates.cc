#include "tests/support/test_certificates.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/subprocess.h"

namespace attest::testing {
namespace {

// P-256 keys: quick to make, and accepted by OpenSSL, GnuTLS and gRPC alike.
void Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult result = Run(argv, "", std::chrono::seconds(60));
  ASSERT_EQ(result.exit_code, 0) << "openssl " << args[0] << " failed:\n" << result.err;
}

}  // namespace

CertificateFiles MakeTestCa(const TempDir& dir, const std::string& name) {
  CertificateFiles ca{.cert = dir.File(name + ".crt"), .key = dir.File(name + ".key")};
  Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca.key,
           "-out", ca.cert, "-days", "2", "-subj", "/CN=attest test CA " + name, "-addext",
           "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  return ca;
}

CertificateFiles MakeTestCertificate(const TempDir& dir, const std::string& name, const CertificateFiles& ca) {
  CertificateFiles files{.cert = dir.File(name + ".crt"), .key = dir.File(name + ".key")};
  const std::string request = dir.File(name + ".csr");
  const std::string extensions = dir.File(name + ".ext");
  WriteFileOrDie(extensions,
                 "basicConstraints = CA:FALSE\n"
                 "keyUsage = critical, digitalSignature\n"
                 "extendedKeyUsage = serverAuth, clientAuth\n"
                 "subjectAltName = IP:127.0.0.1, DNS:localhost\n");
  Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", files.key, "-out",
           request, "-subj", "/CN=" + name});
  Openssl({"x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-out", files.cert,
           "-days", "2", "-extfile", extensions});
  return files;
}

}  // namespace attest::testing
