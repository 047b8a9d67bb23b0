#include "client/status_json.h"

#include "absl/status/status.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::StdView;
using nlohmann::json;

json StringList(const google::protobuf::RepeatedPtrField<std::string>& values) {
  json list = json::array();
  for (const std::string& v : values) list.push_back(v);
  return list;
}

// The node answers "sha256:<nix32>"; normalise anyway so the output is one form whatever it sent.
std::string NormalisedNarHash(const std::string& text) {
  auto hash = consensus::NarHash::Parse(text);
  return hash.ok() ? hash->ToNix32() : text;
}

absl::StatusOr<std::string> StringField(const json& object, std::string_view name, bool required) {
  const auto it = object.find(std::string(name));
  if (it == object.end() || it->is_null()) {
    if (required) return absl::InvalidArgumentError(Cat("has no \"", name, "\""));
    return std::string();
  }
  if (!it->is_string()) return absl::InvalidArgumentError(Cat("\"", name, "\" is not a string"));
  return it->get<std::string>();
}

}  // namespace

std::string VerdictText(v1::Verdict verdict) {
  switch (verdict) {
    case v1::UNKNOWN:
      return "UNKNOWN";
    case v1::PENDING:
      return "PENDING";
    case v1::CONFIRMED:
      return "CONFIRMED";
    case v1::DISPUTED:
      return "DISPUTED";
    default:
      return "UNSPECIFIED";
  }
}

std::string BuildKindText(v1::BuildKind kind) {
  switch (kind) {
    case v1::BUILD_KIND_FIRST_BUILD:
      return std::string(consensus::BuildKindName(consensus::BuildKind::kFirstBuild));
    case v1::BUILD_KIND_REBUILD:
      return std::string(consensus::BuildKindName(consensus::BuildKind::kRebuild));
    case v1::BUILD_KIND_CHECK:
      return std::string(consensus::BuildKindName(consensus::BuildKind::kCheck));
    case v1::BUILD_KIND_IMPORTED:
      return std::string(consensus::BuildKindName(consensus::BuildKind::kImported));
    default:
      return std::string(consensus::BuildKindName(consensus::BuildKind::kUnspecified));
  }
}

json AttestationToJson(const v1::Attestation& attestation) {
  const v1::PathInfo& info = attestation.path_info();
  const v1::BuildMetadata& meta = attestation.metadata();
  json object = {
      {"path", info.store_path()},
      {"narHash", NormalisedNarHash(info.nar_hash())},
      {"narSize", info.nar_size()},
      {"references", StringList(info.references())},
      {"signature", attestation.signature()},
      {"deriver", meta.deriver()},
      {"outputName", meta.output_name()},
      {"system", meta.system()},
      {"buildKind", BuildKindText(meta.build_kind())},
      {"buildTime", meta.build_time_unix()},
  };
  if (attestation.received_unix() != 0) object["receivedTime"] = attestation.received_unix();
  return object;
}

json FingerprintTallyToJson(const v1::FingerprintTally& tally) {
  return json{{"fingerprint", tally.fingerprint()},
              {"operators", StringList(tally.operators())},
              {"builders", StringList(tally.builders())}};
}

json RealisationAttestationToJson(const consensus::Realisation& claim, const std::string& signature,
                                 const v1::BuildMetadata& meta, int64_t received_unix) {
  json object = {
      {"key", claim.key.ToString()},
      {"fingerprint", claim.Fingerprint()},
      {"outPath", claim.out_path.full()},
      {"signature", signature},
      {"deriver", meta.deriver()},
      {"outputName", meta.output_name()},
      {"system", meta.system()},
      {"buildKind", BuildKindText(meta.build_kind())},
      {"buildTime", meta.build_time_unix()},
  };
  if (received_unix != 0) object["receivedTime"] = received_unix;
  return object;
}

namespace {

// The status of a realisation key (see the header).
// The fields a path's and a realisation key's status objects share (see the top of status_json.h).
json StatusObject(const v1::PathStatus& status, bool agreed, json fingerprints, json attestations) {
  return json{{"path", status.store_path()},
              {"verdict", VerdictText(status.verdict())},
              {"fingerprint", agreed ? status.fingerprints(0).fingerprint() : ""},
              {"fingerprints", std::move(fingerprints)},
              {"flagged_builders", StringList(status.flagged_builders())},
              {"dispute_id", status.dispute_id()},
              {"quorum", status.quorum()},
              {"policy_hash", status.policy_hash()},
              {"policy_version", status.policy_version()},
              {"rule", status.rule()},
              {"quorum_text", status.quorum_text()},
              {"quorum_explanation", status.quorum_explanation()},
              {"attestations", std::move(attestations)},
              {"exclusions", StringList(status.exclusions())}};
}

absl::StatusOr<json> RealisationStatusToJson(const v1::PathStatus& status) {
  json fingerprints = json::array();
  json out_paths = json::array();
  std::vector<consensus::Realisation> claims;
  for (int f = 0; f < status.fingerprints_size(); ++f) {
    const v1::FingerprintTally& tally = status.fingerprints(f);
    fingerprints.push_back(FingerprintTallyToJson(tally));
    absl::StatusOr<consensus::Realisation> claim = consensus::Realisation::ParseFingerprint(tally.fingerprint());
    if (!claim.ok()) {
      return absl::InvalidArgumentError(Cat("the node's answer for ", status.store_path(),
                                            " has a malformed realisation fingerprint ", f, ": ",
                                            StdView(claim.status().message())));
    }
    out_paths.push_back(claim->out_path.full());
    claims.push_back(*std::move(claim));
  }
  json attestations = json::array();
  for (const v1::CountedAttestation& counted : status.attestations()) {
    if (counted.fingerprint_index() < 0 || static_cast<size_t>(counted.fingerprint_index()) >= claims.size()) {
      return absl::InvalidArgumentError(Cat("the node's answer for ", status.store_path(),
                                            " has an attestation of fingerprint ", counted.fingerprint_index(),
                                            " but only ", claims.size(), " fingerprints"));
    }
    attestations.push_back(RealisationAttestationToJson(claims[counted.fingerprint_index()], counted.signature(),
                                                        counted.metadata(), counted.received_unix()));
  }
  const bool agreed = (status.verdict() == v1::CONFIRMED || status.verdict() == v1::PENDING) && !claims.empty();
  json object = StatusObject(status, agreed, std::move(fingerprints), std::move(attestations));
  object["realisation"] = true;
  object["outPath"] = agreed ? claims.front().out_path.full() : "";
  object["outPaths"] = std::move(out_paths);
  return object;
}

}  // namespace

absl::StatusOr<json> PathStatusToJson(const v1::PathStatus& status) {
  if (consensus::RealisationKey::LooksLikeKey(status.store_path())) return RealisationStatusToJson(status);
  json fingerprints = json::array();
  std::vector<consensus::PathInfo> claims;
  for (int f = 0; f < status.fingerprints_size(); ++f) {
    const v1::FingerprintTally& tally = status.fingerprints(f);
    fingerprints.push_back(FingerprintTallyToJson(tally));
    absl::StatusOr<consensus::PathInfo> claim = consensus::PathInfo::ParseFingerprint(tally.fingerprint());
    if (!claim.ok()) {
      return absl::InvalidArgumentError(Cat("the node's answer for ", status.store_path(), " has a malformed fingerprint ", f,
                                            ": ", StdView(claim.status().message())));
    }
    claims.push_back(*std::move(claim));
  }
  // The node sends each claim once; every attestation object carries its claim again, so that each one
  // can be checked on its own.
  json attestations = json::array();
  for (const v1::CountedAttestation& counted : status.attestations()) {
    if (counted.fingerprint_index() < 0 || static_cast<size_t>(counted.fingerprint_index()) >= claims.size()) {
      return absl::InvalidArgumentError(Cat("the node's answer for ", status.store_path(),
                                            " has an attestation of fingerprint ", counted.fingerprint_index(),
                                            " but only ", claims.size(), " fingerprints"));
    }
    v1::Attestation attestation;
    *attestation.mutable_path_info() = proto::ToProto(claims[counted.fingerprint_index()]);
    attestation.set_signature(counted.signature());
    *attestation.mutable_metadata() = counted.metadata();
    attestation.set_received_unix(counted.received_unix());
    attestations.push_back(AttestationToJson(attestation));
  }
  const bool agreed = (status.verdict() == v1::CONFIRMED || status.verdict() == v1::PENDING) &&
                      status.fingerprints_size() > 0;
  return StatusObject(status, agreed, std::move(fingerprints), std::move(attestations));
}

std::string SubjectOf(const v1::Dispute& dispute) {
  return dispute.store_path().empty() ? dispute.realisation_key() : dispute.store_path();
}

json DisputeToJson(const v1::Dispute& dispute, DisputeDetail detail) {
  json fingerprints = json::array();
  for (const auto& tally : dispute.fingerprints()) fingerprints.push_back(FingerprintTallyToJson(tally));
  json object = {{"id", dispute.id()},
                 {"path", SubjectOf(dispute)},
                 {"realisation", !dispute.realisation_key().empty()},
                 {"state", dispute.state()},
                 {"opened", dispute.opened_unix()},
                 {"updated", dispute.updated_unix()},
                 {"fingerprints", std::move(fingerprints)}};
  if (detail == DisputeDetail::kFull) {
    object["signed_record"] = dispute.signed_record();
    json attestations = json::array();
    for (const auto& attestation : dispute.attestations())
      attestations.push_back(AttestationToJson(attestation));
    // A derivation output's counted realisation attestations; one whose fingerprint does not parse is
    // shown as the node sent it rather than dropped.
    for (const auto& attestation : dispute.realisations()) {
      absl::StatusOr<consensus::Realisation> claim = consensus::Realisation::ParseFingerprint(attestation.fingerprint());
      if (!claim.ok()) {
        attestations.push_back({{"fingerprint", attestation.fingerprint()},
                                {"signature", attestation.signature()},
                                {"error", std::string(claim.status().message())}});
        continue;
      }
      attestations.push_back(
          RealisationAttestationToJson(*claim, attestation.signature(), attestation.metadata(), attestation.received_unix()));
    }
    object["attestations"] = std::move(attestations);
    json resolutions = json::array();
    for (const auto& resolution : dispute.resolutions()) {
      resolutions.push_back({{"outcome", resolution.outcome()},
                             {"maintainer", resolution.maintainer()},
                             {"time", resolution.time_unix()},
                             {"note", resolution.note()},
                             {"builders", resolution.builders()},
                             {"fingerprints", resolution.fingerprints()},
                             {"received", resolution.received_unix()},
                             {"origin", resolution.origin()},
                             {"signed_statement", resolution.signed_statement()}});
    }
    object["resolutions"] = std::move(resolutions);
  }
  return object;
}

namespace {

absl::StatusOr<consensus::BuildMetadata> MetadataFromJson(const json& object) {
  consensus::BuildMetadata metadata;
  for (auto [name, field] : {std::pair<std::string_view, std::string*>{"deriver", &metadata.deriver},
                             {"outputName", &metadata.output_name},
                             {"system", &metadata.system}}) {
    auto value = StringField(object, name, false);
    if (!value.ok()) return value.status();
    *field = *std::move(value);
  }
  auto kind = StringField(object, "buildKind", false);
  if (!kind.ok()) return kind.status();
  bool kind_known = false;
  for (auto candidate :
       {consensus::BuildKind::kUnspecified, consensus::BuildKind::kFirstBuild, consensus::BuildKind::kRebuild,
        consensus::BuildKind::kCheck, consensus::BuildKind::kImported}) {
    if (kind->empty() || *kind == consensus::BuildKindName(candidate)) {
      metadata.build_kind = kind->empty() ? consensus::BuildKind::kUnspecified : candidate;
      kind_known = true;
      break;
    }
  }
  if (!kind_known)
    return absl::InvalidArgumentError(Cat("unknown buildKind ", consensus::QuoteForError(*kind)));
  if (auto time = object.find("buildTime"); time != object.end() && !time->is_null()) {
    if (!time->is_number_integer()) return absl::InvalidArgumentError("\"buildTime\" is not an integer");
    metadata.build_time_unix = time->get<int64_t>();
  }
  return metadata;
}

}  // namespace

absl::StatusOr<consensus::Attestation> AttestationFromJson(const json& object) {
  if (!object.is_object()) return absl::InvalidArgumentError("is not a JSON object");
  auto path_text = StringField(object, "path", true);
  if (!path_text.ok()) return path_text.status();
  auto path = consensus::StorePath::Parse(*path_text);
  if (!path.ok()) return absl::InvalidArgumentError(Cat("path: ", path.status().message()));
  auto hash_text = StringField(object, "narHash", true);
  if (!hash_text.ok()) return hash_text.status();
  auto nar_hash = consensus::NarHash::Parse(*hash_text);
  if (!nar_hash.ok()) return absl::InvalidArgumentError(Cat("narHash: ", nar_hash.status().message()));
  const auto size = object.find("narSize");
  if (size == object.end() || !size->is_number_unsigned()) {
    return absl::InvalidArgumentError("\"narSize\" is missing or not a non-negative integer");
  }
  std::vector<consensus::StorePath> references;
  const auto refs = object.find("references");
  if (refs == object.end() || !refs->is_array())
    return absl::InvalidArgumentError("\"references\" is not a list");
  for (const json& ref : *refs) {
    if (!ref.is_string()) return absl::InvalidArgumentError("a reference is not a string");
    auto parsed = consensus::StorePath::Parse(ref.get_ref<const std::string&>());
    if (!parsed.ok()) return absl::InvalidArgumentError(Cat("reference: ", parsed.status().message()));
    references.push_back(*std::move(parsed));
  }
  auto claim =
      consensus::PathInfo::Create(*std::move(path), *nar_hash, size->get<uint64_t>(), std::move(references));
  if (!claim.ok()) return claim.status();
  auto signature_text = StringField(object, "signature", true);
  if (!signature_text.ok()) return signature_text.status();
  auto signature = consensus::Signature::Parse(*signature_text);
  if (!signature.ok()) return absl::InvalidArgumentError(Cat("signature: ", signature.status().message()));

  absl::StatusOr<consensus::BuildMetadata> metadata = MetadataFromJson(object);
  if (!metadata.ok()) return metadata.status();
  if (absl::Status s = consensus::ValidateBuildMetadata(*metadata); !s.ok()) return s;
  return consensus::Attestation{*std::move(claim), *std::move(signature), *std::move(metadata)};
}

absl::StatusOr<consensus::RealisationAttestation> RealisationAttestationFromJson(const json& object) {
  if (!object.is_object()) return absl::InvalidArgumentError("is not a JSON object");
  absl::StatusOr<std::string> fingerprint = StringField(object, "fingerprint", true);
  if (!fingerprint.ok()) return fingerprint.status();
  absl::StatusOr<consensus::Realisation> claim = consensus::Realisation::ParseFingerprint(*fingerprint);
  if (!claim.ok()) return absl::InvalidArgumentError(Cat("fingerprint: ", claim.status().message()));
  absl::StatusOr<std::string> key = StringField(object, "key", false);
  if (!key.ok()) return key.status();
  if (!key->empty() && *key != claim->key.ToString()) {
    return absl::InvalidArgumentError(
        Cat("\"key\" is ", consensus::QuoteForError(*key), " but the fingerprint is about ", claim->key.ToString()));
  }
  absl::StatusOr<std::string> out_path = StringField(object, "outPath", false);
  if (!out_path.ok()) return out_path.status();
  if (!out_path->empty() && *out_path != claim->out_path.full()) {
    return absl::InvalidArgumentError(Cat("\"outPath\" is ", consensus::QuoteForError(*out_path),
                                          " but the fingerprint names ", claim->out_path.full()));
  }
  absl::StatusOr<std::string> signature_text = StringField(object, "signature", true);
  if (!signature_text.ok()) return signature_text.status();
  absl::StatusOr<consensus::Signature> signature = consensus::Signature::Parse(*signature_text);
  if (!signature.ok()) return absl::InvalidArgumentError(Cat("signature: ", signature.status().message()));
  absl::StatusOr<consensus::BuildMetadata> metadata = MetadataFromJson(object);
  if (!metadata.ok()) return metadata.status();
  if (absl::Status s = consensus::ValidateRealisationMetadata(*claim, *metadata); !s.ok()) return s;
  return consensus::RealisationAttestation{*std::move(claim), *std::move(signature), *std::move(metadata)};
}

std::string DumpJson(const json& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

absl::StatusOr<json> ClosureToJson(const v1::ClosureResponse& closure) {
  json members = json::array();
  for (const v1::PathStatus& member : closure.members()) {
    absl::StatusOr<json> object = PathStatusToJson(member);
    if (!object.ok()) return object.status();
    members.push_back(*std::move(object));
  }
  json not_confirmed = json::array();
  for (const std::string& path : closure.not_confirmed()) not_confirmed.push_back(path);
  return json{{"closure", closure.store_path()},
              {"verdict", VerdictText(closure.verdict())},
              {"policy_version", closure.policy_version()},
              {"policy_hash", closure.policy_hash()},
              {"not_confirmed", std::move(not_confirmed)},
              {"members", std::move(members)}};
}

}  // namespace attest::client
