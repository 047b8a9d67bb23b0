// The JSON the CLI prints for machines (`--json`), and its parsing back for `attest verify`.
//
// Attestation object (status and disputes show):
//   {"path": "/nix/store/...", "narHash": "sha256:<nix32>", "narSize": 123, "references": [full paths],
//    "signature": "<key name>:<base64>", "deriver": "/nix/store/...drv" or "", "outputName": "out",
//    "system": "x86_64-linux", "buildKind": "build"|"rebuild"|"check"|"imported"|"unspecified",
//    "buildTime": <unix seconds, 0 when unknown>, "receivedTime": <unix seconds>}
// Path status object (one per path of `attest status --json`):
//   {"path", "verdict": "UNKNOWN"|"PENDING"|"CONFIRMED"|"DISPUTED", "fingerprint",
//    "fingerprints": [{"fingerprint", "operators", "builders"}], "flagged_builders", "dispute_id",
//    "quorum", "policy_hash", "policy_version", "rule" ("default" or the rule's glob that matched),
//    "quorum_text" (the rule's quorum in words), "quorum_explanation" (why it is or is not met),
//    "attestations": [...], "exclusions"}
// A realisation key ("sha256:<hex>!out", "/nix/store/...drv^out") is answered by the same status object
// with "path" = the key's canonical text, "realisation": true, realisation fingerprints, "outPath" (the
// agreed output path, or "") and "outPaths" (the output path of each fingerprint, in order), and
// realisation attestation objects:
//   {"key", "fingerprint" (the realisation fingerprint it signs), "outPath", "signature", "deriver",
//    "outputName", "system", "buildKind", "buildTime", "receivedTime"}
// Dispute object: {"id", "path", "state", "opened", "updated" (unix seconds), "fingerprints"} plus,
// with details, "signed_record" and "attestations". For a derivation output's dispute "path" is the
// realisation key, "realisation" is true and the attestations are realisation attestation objects.
//
// Pure functions; thread-safe. Output never throws: invalid UTF-8 from a node is replaced on dump.
#ifndef ATTEST_CLIENT_STATUS_JSON_H_
#define ATTEST_CLIENT_STATUS_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/realisation.h"
#include "nlohmann/json.hpp"
#include "proto/attest/v1/attest.pb.h"

namespace attest::client {

nlohmann::json AttestationToJson(const v1::Attestation& attestation);
// INVALID_ARGUMENT when the node's answer does not hold together (a malformed fingerprint, an
// attestation naming a fingerprint that is not there).
absl::StatusOr<nlohmann::json> PathStatusToJson(const v1::PathStatus& status);
nlohmann::json FingerprintTallyToJson(const v1::FingerprintTally& tally);
// A closure answer: {"closure": root, "verdict", "policy_version", "policy_hash", "not_confirmed":
// [paths], "members": [PathStatusToJson of each, root first]}. `attest verify` recognises it by
// "closure". INVALID_ARGUMENT as PathStatusToJson.
absl::StatusOr<nlohmann::json> ClosureToJson(const v1::ClosureResponse& closure);

// What a dispute is about, as text: its store path, or its realisation key.
std::string SubjectOf(const v1::Dispute& dispute);

enum class DisputeDetail { kSummary, kFull };
nlohmann::json DisputeToJson(const v1::Dispute& dispute, DisputeDetail detail);

// Parses an attestation object (as AttestationToJson writes it) into the domain type, validating the
// claim, signature and metadata. INVALID_ARGUMENT naming the field.
absl::StatusOr<consensus::Attestation> AttestationFromJson(const nlohmann::json& object);

// A realisation attestation object (see the top) for the claim `fingerprint` (checked by the caller).
nlohmann::json RealisationAttestationToJson(const consensus::Realisation& claim, const std::string& signature,
                                            const v1::BuildMetadata& metadata, int64_t received_unix);
// Parses a realisation attestation object: the fingerprint strictly (consensus::Realisation::
// ParseFingerprint), "key" and "outPath" must be the fingerprint's, signature and metadata as for
// paths. INVALID_ARGUMENT naming the field.
absl::StatusOr<consensus::RealisationAttestation> RealisationAttestationFromJson(const nlohmann::json& object);

// "UNKNOWN", "PENDING", "CONFIRMED", "DISPUTED"; "UNSPECIFIED" for an unset verdict.
std::string VerdictText(v1::Verdict verdict);
std::string BuildKindText(v1::BuildKind kind);

// json.dump that never throws: invalid UTF-8 is replaced. indent < 0 for one line.
std::string DumpJson(const nlohmann::json& value, int indent = 2);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_STATUS_JSON_H_
