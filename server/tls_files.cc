#include "server/tls_files.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <utility>
#include <vector>

#include "consensus/text.h"
#include "server/log.h"
#include "storage/files.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// The config's location of the file, or the path when the config was built in code.
std::string About(const ConfigFile& file) { return file.where.empty() ? Cat(file.path, ": ") : file.where; }

// A certificate chain or key is a few kilobytes, a CA bundle a few hundred; the limit only keeps a
// wrong path from being read into memory.
constexpr size_t kMaxPemFileBytes = 16 << 20;

absl::StatusOr<std::string> ReadWhole(const ConfigFile& file) {
  absl::StatusOr<std::string> text = storage::ReadFileToString(file.path, kMaxPemFileBytes);
  if (text.ok()) return text;
  switch (text.status().code()) {
    case absl::StatusCode::kNotFound:
      return absl::NotFoundError(Cat(About(file), "no such file (", file.path, ")"));
    case absl::StatusCode::kFailedPrecondition:  // a directory
      return absl::FailedPreconditionError(Cat(About(file), file.path, " is a directory, not a PEM file"));
    case absl::StatusCode::kPermissionDenied:
      return absl::FailedPreconditionError(
          Cat(About(file), StdView(text.status().message()), " (attestd's user must be able to read it)"));
    default:
      return absl::FailedPreconditionError(Cat(About(file), StdView(text.status().message())));
  }
}

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every certificate in the PEM text, in order.
std::vector<X509Ptr> Certificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemoryBio(pem);
  while (bio != nullptr) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) break;
    certs.push_back(std::move(cert));
  }
  ERR_clear_error();  // the end of the text reads as an error
  return certs;
}

absl::StatusOr<std::vector<X509Ptr>> ReadCertificates(const ConfigFile& file, const std::string& text) {
  std::vector<X509Ptr> certs = Certificates(text);
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        Cat(About(file), "no PEM certificate in ", file.path,
            " (expected blocks starting with -----BEGIN CERTIFICATE-----; convert DER with "
            "`openssl x509 -inform der -in FILE -out FILE.pem`)"));
  }
  return certs;
}

void WarnIfNotValidNow(const ConfigFile& file, X509* cert) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    LogWarning(Cat(About(file), "the certificate in ", file.path, " has expired; clients will refuse it"));
  } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    LogWarning(Cat(About(file), "the certificate in ", file.path, " is not valid yet; clients will refuse it"));
  }
}

}  // namespace

TlsIdentity::~TlsIdentity() {
  if (!private_key_pem.empty()) OPENSSL_cleanse(private_key_pem.data(), private_key_pem.size());
}

absl::StatusOr<TlsIdentity> LoadTlsIdentity(const ConfigFile& cert, const ConfigFile& key) {
  TlsIdentity identity;
  absl::StatusOr<std::string> chain = ReadWhole(cert);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<std::vector<X509Ptr>> certs = ReadCertificates(cert, *chain);
  if (!certs.ok()) return certs.status();
  WarnIfNotValidNow(cert, certs->front().get());
  identity.cert_chain_pem = *std::move(chain);

  absl::StatusOr<std::string> key_text = ReadWhole(key);
  if (!key_text.ok()) return key_text.status();
  identity.private_key_pem = *std::move(key_text);
  if (identity.private_key_pem.find("ENCRYPTED") != std::string::npos) {
    return absl::InvalidArgumentError(
        Cat(About(key), key.path, " is an encrypted private key; attestd starts unattended, so give it the key "
                                  "without a passphrase (`openssl pkey -in KEY -out KEY.plain`, then chmod 600)"));
  }
  BioPtr bio = MemoryBio(identity.private_key_pem);
  // The callback refuses any passphrase prompt (OpenSSL's default would read the terminal).
  PkeyPtr pkey(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, +[](char*, int, int, void*) { return 0; }, nullptr));
  ERR_clear_error();
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        Cat(About(key), "no PEM private key in ", key.path,
            " (expected a block starting with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA/EC PRIVATE KEY-----)"));
  }
  if (X509_check_private_key(certs->front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(Cat(About(key), "the key in ", key.path,
                                          " does not belong to the first certificate in ", cert.path,
                                          " (the node's own certificate must come first, then intermediates)"));
  }
  return identity;
}

absl::StatusOr<std::string> LoadCaCertificates(const ConfigFile& file) {
  absl::StatusOr<std::string> text = ReadWhole(file);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<X509Ptr>> certs = ReadCertificates(file, *text);
  if (!certs.ok()) return certs.status();
  return text;
}

absl::StatusOr<ServerTls> LoadServerTls(const TlsConfig& tls) {
  ServerTls server;
  absl::StatusOr<TlsIdentity> identity = LoadTlsIdentity(tls.cert, tls.key);
  if (!identity.ok()) return identity.status();
  server.identity = *std::move(identity);
  if (!tls.client_ca.path.empty()) {
    absl::StatusOr<std::string> ca = LoadCaCertificates(tls.client_ca);
    if (!ca.ok()) return ca.status();
    server.client_ca_pem = *std::move(ca);
  }
  return server;
}

absl::StatusOr<std::optional<ServerTls>> LoadNodeTlsFiles(const NodeConfig& config) {
  for (const PeerConfig& peer : config.peers) {
    if (!peer.ca.path.empty()) {
      if (absl::StatusOr<std::string> ca = LoadCaCertificates(peer.ca); !ca.ok()) return ca.status();
    }
  }
  if (!config.tls) return std::nullopt;
  absl::StatusOr<ServerTls> tls = LoadServerTls(*config.tls);
  if (!tls.ok()) return tls.status();
  return std::optional<ServerTls>(*std::move(tls));
}

}  // namespace attest::server
