// Writes the generated part of the seed corpora (tests/fuzz/corpus/<target>/gen-*): well-formed
// inputs made with the project's own encoders and the fuzz keys (fuzz_support.h), so the fuzzers
// start from inputs whose signatures verify against fuzz_policy.h. Run after changing a format:
//   cmake --build build-fuzz --target make_fuzz_seeds && build-fuzz/tests/fuzz/make_fuzz_seeds tests/fuzz/corpus
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "client/spool.h"
#include "consensus/attestation.h"
#include "consensus/checkpoint.h"
#include "consensus/dispute.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/realisation.h"
#include "consensus/resolution.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "proto/attest/v1/attest.pb.h"
#include "proto/convert.h"
#include "storage/path_record.h"
#include "tests/fuzz/fuzz_policy.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace attest;
using namespace attest::consensus;

std::filesystem::path out_dir;

void Write(const std::string& target, const std::string& name, std::string_view bytes) {
  const std::filesystem::path dir = out_dir / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / ("gen-" + name), std::ios::binary) << bytes;
}

template <typename T>
T Must(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::cerr << value.status() << "\n";
    std::exit(1);
  }
  return *std::move(value);
}

StorePath Path(std::string_view base) { return Must(StorePath::Parse(Cat("/nix/store/", base))); }

PathInfo Claim(std::string_view base, std::string_view contents, std::vector<StorePath> refs = {}) {
  return Must(PathInfo::Create(Path(base), NarHash::FromDigest(Sha256(contents)), 4096, std::move(refs)));
}

// FuzzedDataProvider's ConsumeRandomLengthString: a backslash followed by another character ends it.
std::string ProviderString(std::string_view s) {
  std::string out;
  for (char c : s) {
    out.push_back(c);
    if (c == '\\') out.push_back('\\');
  }
  return out + "\\;";
}

template <typename Message>
void WriteRequest(const std::string& name, char kind, const Message& message) {
  Write("request", name, std::string(1, kind) + message.SerializeAsString());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_fuzz_seeds <corpus dir>\n";
    return 2;
  }
  out_dir = argv[1];
  const Policy policy = fuzz::FuzzPolicy();
  const SecretKey alice = fuzz::FuzzKey("alice-builder-1");
  const SecretKey bob = fuzz::FuzzKey("bob-builder-1");
  const SecretKey node = fuzz::FuzzKey("node-1");
  const SecretKey witness = fuzz::FuzzKey("witness-1");
  const SecretKey maintainer = fuzz::FuzzKey("maintainer-1");
  const SecretKey outsider = fuzz::FuzzKey("outsider-1");

  const PathInfo lib = Claim("0c8vlxbh8dkhfj2bnq9ppp1z9mdxczjq-lib-1.0", "lib");
  const PathInfo hello = Claim("1b9p07z77phvv2hf6gm9f28syp39f1ag-hello-2.12", "hello", {lib.path});
  const PathInfo evil = Claim("1b9p07z77phvv2hf6gm9f28syp39f1ag-hello-2.12", "evil", {lib.path});
  BuildMetadata metadata{.deriver = "/nix/store/2fjgb79nkh53vm9rcqkml79zrhhkav42-hello-2.12.drv",
                         .output_name = "out",
                         .system = "x86_64-linux",
                         .build_kind = BuildKind::kRebuild,
                         .build_time_unix = 1700000000};
  const Attestation a = SignAttestation(hello, alice, metadata);
  const Attestation b = SignAttestation(evil, bob);
  const Attestation o = SignAttestation(lib, outsider);

  // Text forms.
  Write("nix_text", "fingerprint", hello.Fingerprint());
  Write("nix_text", "store-path", hello.path.full());
  Write("nix_text", "signature", a.signature.ToString());
  Write("nix_text", "public-key", alice.public_key().ToString());
  Write("nix_text", "nar-hash", hello.nar_hash.ToNix32());
  Write("nix_text", "sri", hello.nar_hash.ToSri());

  // Log entries, a dispute record, a resolution, a bundle of them.
  std::vector<std::string> entries;
  entries.push_back(Must(EncodeAttestationEntry(AttestationEntry{.attestation = a, .received_unix = 1700000100})));
  entries.push_back(Must(EncodeAttestationEntry(
      AttestationEntry{.attestation = o, .observed_key = outsider.public_key(), .received_unix = 1700000200})));
  const std::vector<Attestation> both = {a, b};
  const DisputeRecord record =
      Must(MakeDisputeRecord(policy, hello.path, std::span<const Attestation>(both), Tally(policy, both), 1700000300));
  const std::string dispute_note = SignDisputeRecord(record, node).Serialize();
  entries.push_back(Must(EncodeDisputeEntry(dispute_note)));
  Resolution resolution{.dispute_id = record.id,
                        .subject = hello.path,
                        .outcome = ResolutionOutcome::kMalicious,
                        .fingerprints = {evil.Fingerprint(), hello.Fingerprint()},
                        .builders = {"bob-builder-1"},
                        .time_unix = 1700000400,
                        .note = "bob's build differs; reproduced by alice and carol"};
  std::sort(resolution.fingerprints.begin(), resolution.fingerprints.end());
  const std::string resolution_note = Must(SignResolution(resolution, maintainer)).Serialize();
  entries.push_back(Must(EncodeResolutionEntry(resolution_note)));
  for (size_t i = 0; i < entries.size(); ++i) Write("log_entry", Cat("entry-", i), entries[i]);
  Write("entry_bundle", "bundle", Must(EncodeEntryBundle(entries)));
  Write("dispute", "text", record.ToNoteText());
  Write("dispute", "note", dispute_note);
  Write("resolution", "text", resolution.ToNoteText());
  Write("resolution", "note", resolution_note);
  Write("signed_note", "dispute", dispute_note);
  {
    // A derivation output's dispute: two builders realised it as two different paths.
    const RealisationKey key = Must(RealisationKey::Parse(Cat(metadata.deriver, "^out")));
    const Realisation one = Must(Realisation::Create(key, hello.path));
    const Realisation two =
        Must(Realisation::Create(key, Must(StorePath::Parse("/nix/store/0c8vlxbh8dkhfj2bnq9ppp1z9mdxczjq-hello-2.12"))));
    const std::vector<RealisationAttestation> held = {SignRealisation(one, alice), SignRealisation(two, bob)};
    const std::vector<const RealisationAttestation*> borrowed = {&held[0], &held[1]};
    const DisputeRecord realisation_record = Must(MakeDisputeRecord(
        policy, key, borrowed, TallyRealisation(policy, borrowed, TallyOptions{}), 1700000300));
    Write("dispute", "realisation-text", realisation_record.ToNoteText());
    Write("dispute", "realisation-note", SignDisputeRecord(realisation_record, node).Serialize());
  }
  Write("signed_note", "vkey", NoteVerifierKey(node.public_key()));

  // A checkpoint of those entries, signed and cosigned.
  MerkleHash root = EmptyTreeHash();
  {
    CompactRange range;
    for (const std::string& entry : entries) range.Append(LeafHash(entry));
    root = range.Root();
  }
  const Checkpoint checkpoint{.origin = "node-1", .size = entries.size(), .root = root};
  SignedNote signed_checkpoint = Must(SignCheckpoint(checkpoint, node));
  Write("checkpoint", "body", checkpoint.Body());
  Write("checkpoint", "note", signed_checkpoint.Serialize());
  signed_checkpoint.signatures.push_back(Must(Cosign(checkpoint, 1700000500, witness)));
  Write("cosignature", "note", signed_checkpoint.Serialize());
  Write("cosignature", "vkey", CosignatureVerifierKey(witness.public_key()));
  Write("signed_note", "cosigned", signed_checkpoint.Serialize());

  // Requests (first byte: the method, see request_fuzzer.cc).
  v1::SubmitRequest submit;
  *submit.add_attestations() = proto::ToProto(a);
  *submit.add_attestations() = proto::ToProto(b);
  WriteRequest("submit", 0, submit);
  v1::StatusRequest status;
  status.add_store_paths(hello.path.full());
  status.add_store_paths(lib.path.full());
  WriteRequest("status", 1, status);
  v1::ListDisputesRequest list;
  list.set_page_size(10);
  list.set_state("open");
  list.set_name("hello");
  list.set_operator_("alice-ci");
  WriteRequest("list-disputes", 2, list);
  v1::GetDisputeRequest get;
  get.set_id(record.id);
  WriteRequest("get-dispute", 3, get);
  v1::ResolveDisputeRequest resolve;
  resolve.set_signed_statement(resolution_note);
  WriteRequest("resolve", 4, resolve);
  v1::GetInclusionProofRequest inclusion;
  inclusion.set_index(1);
  inclusion.set_tree_size(3);
  WriteRequest("inclusion", 5, inclusion);
  v1::GetConsistencyProofRequest consistency;
  consistency.set_old_size(1);
  consistency.set_new_size(3);
  WriteRequest("consistency", 6, consistency);
  WriteRequest("attestation", 7, proto::ToProto(a));

  // HTTP routes (path, then query name/value pairs, as http_route_fuzzer.cc reads them).
  const std::vector<std::vector<std::string>> routes = {
      {"/healthz"},
      {"/metrics"},
      {"/nix-cache-info"},
      {Cat("/", hello.path.hash_part(), ".narinfo")},
      {"/nar/hello.nar"},
      {"/log/checkpoint"},
      {"/log/tile/0/000.p/2"},
      {"/log/tile/entries/000.p/2"},
      {"/federation/checkpoint/peer-1"},
      {"/disputes"},
      {"/disputes", "state", "open", "format", "json"},
      {Cat("/disputes/", record.id)},
      {"/search", "path", hello.path.full()},
  };
  for (size_t i = 0; i < routes.size(); ++i) {
    std::string seed;
    for (const std::string& part : routes[i]) seed += ProviderString(part);
    Write("http_route", Cat("route-", i), seed);
  }

  // Stored and spooled records.
  storage::PathRecord path_record;
  path_record.claims.push_back(storage::RecordClaim{.nar_hash = hello.nar_hash.digest(), .nar_size = 4096,
                                                    .references = {lib.path}});
  path_record.signatures.push_back(storage::RecordSignature{.claim = 0, .key_id = 1, .received_unix = 1700000100,
                                                            .output_id = 2, .system_id = 3, .build_kind = 2,
                                                            .build_time_unix = 1700000000, .origin_id = 1});
  std::vector<uint8_t> blob;
  // Bound to the path the fuzzer decodes with (path_record_fuzzer.cc); the same record without its
  // checksum (format 2) is a seed too, so mutations reach the structure.
  storage::EncodePathRecord(path_record, "/nix/store/00000000000000000000000000000000-fuzz-record", blob);
  Write("path_record", "record", std::string(blob.begin(), blob.end()));
  std::vector<uint8_t> format2(blob.begin(), blob.end() - 8);
  format2[0] = 2;
  Write("path_record", "record-format-2", std::string(format2.begin(), format2.end()));
  client::SpoolRecord spool{.store_path = hello.path.full(),
                            .drv_path = metadata.deriver,
                            .output_name = "out",
                            .queued_at_unix_ms = 1700000000000,
                            .acknowledged_by = {"127.0.0.1:7700"},
                            .attempts = 1,
                            .last_error = "node unreachable"};
  Write("spool_record", "record", client::SerialiseSpoolRecord(spool));
  std::cout << "seeds written under " << out_dir << "\n";
  return 0;
}
