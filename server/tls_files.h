// TLS files named by the node config: the node's certificate and key ([tls]), the CA that client
// certificates must chain to ([tls] client_ca), and the CAs of TLS peers ([[peer]] ca). They are read
// and checked (with OpenSSL) when the node starts, so a wrong file is a startup error that names the
// setting, not a failed handshake later.
//
// Every error starts with where the config names the file ("node.toml:42:8: [tls] cert \"x\": ") and
// says what is wrong:
//   NOT_FOUND            no such file
//   FAILED_PRECONDITION  a directory, or the file cannot be read (permissions)
//   INVALID_ARGUMENT     no PEM certificate / private key in it, an encrypted key, a key that does not
//                        belong to the certificate
//
// Value types and pure functions apart from reading the files; thread-safe.
#ifndef ATTEST_SERVER_TLS_FILES_H_
#define ATTEST_SERVER_TLS_FILES_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/node_config.h"

namespace attest::server {

// A certificate chain and its private key, PEM. The key is wiped from memory when this is destroyed.
struct TlsIdentity final {
  TlsIdentity() = default;
  TlsIdentity(TlsIdentity&&) = default;
  TlsIdentity& operator=(TlsIdentity&&) = default;
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;
  ~TlsIdentity();

  std::string cert_chain_pem;   // the certificate first, then its intermediates
  std::string private_key_pem;  // secret: never printed or logged
};

// What the node's ports serve with: its identity, and the CAs client certificates must chain to ("" =
// no client certificate is asked for).
struct ServerTls final {
  TlsIdentity identity;
  std::string client_ca_pem;
};

// Reads [tls]: the chain must hold at least one certificate, the key must be an unencrypted PEM private
// key matching the first certificate, client_ca (when set) at least one certificate. A certificate that
// has expired or is not yet valid is logged as a warning (clients will refuse it).
absl::StatusOr<ServerTls> LoadServerTls(const TlsConfig& tls);

// Everything the node's config names for TLS, read at startup: [tls] (nullopt without it), and each
// [[peer]] ca, checked only (the peer clients read it again).
absl::StatusOr<std::optional<ServerTls>> LoadNodeTlsFiles(const NodeConfig& config);

// Reads a PEM file of CA certificates (at least one).
absl::StatusOr<std::string> LoadCaCertificates(const ConfigFile& file);

// Reads a certificate chain and its key (as LoadServerTls does for [tls] cert and key).
absl::StatusOr<TlsIdentity> LoadTlsIdentity(const ConfigFile& cert, const ConfigFile& key);

}  // namespace attest::server

#endif  // ATTEST_SERVER_TLS_FILES_H_
