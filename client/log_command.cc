// attest log checkpoint / verify: a node's transparency log, checked from outside the node.
//
// `verify` is the auditor's check: it trusts the node for nothing. The node key is pinned by the user
// once (--node-key) and remembered in a state file (client/log_state.h) with the last checkpoint that
// verified; every later run needs the node's new checkpoint to extend that one (RFC 9162 consistency
// proof), and each --entry to be included under the new root.
#include <grpcpp/grpcpp.h>

#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "client/commands.h"
#include "client/log_state.h"
#include "client/status_json.h"
#include "consensus/checkpoint.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/resolution.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"
#include "proto/attest/v1/attest.grpc.pb.h"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;

// The node's LogService and Policy.GetPolicy over one channel, with the rules of NodeApi
// (node_client.h): a deadline on every call covering its retries, only UNAVAILABLE retried, errors
// that keep the gRPC code and name the node and the method.
class LogNode final {
 public:
  LogNode(NodeOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)),
        channel_(std::move(channel)),
        log_(v1::LogService::NewStub(channel_)),
        policy_(v1::Policy::NewStub(channel_)) {}

  absl::StatusOr<v1::GetCheckpointResponse> GetCheckpoint() {
    return Call<v1::GetCheckpointResponse>("GetCheckpoint", [&](grpc::ClientContext* ctx, auto* out) {
      return log_->GetCheckpoint(ctx, v1::GetCheckpointRequest(), out);
    });
  }
  absl::StatusOr<v1::GetInclusionProofResponse> GetInclusionProof(uint64_t index, uint64_t tree_size) {
    v1::GetInclusionProofRequest request;
    request.set_index(index);
    request.set_tree_size(tree_size);
    return Call<v1::GetInclusionProofResponse>("GetInclusionProof", [&](grpc::ClientContext* ctx, auto* out) {
      return log_->GetInclusionProof(ctx, request, out);
    });
  }
  absl::StatusOr<v1::GetConsistencyProofResponse> GetConsistencyProof(uint64_t old_size, uint64_t new_size) {
    v1::GetConsistencyProofRequest request;
    request.set_old_size(old_size);
    request.set_new_size(new_size);
    return Call<v1::GetConsistencyProofResponse>("GetConsistencyProof", [&](grpc::ClientContext* ctx, auto* out) {
      return log_->GetConsistencyProof(ctx, request, out);
    });
  }
  absl::StatusOr<v1::PolicyInfo> GetPolicy() {
    return Call<v1::PolicyInfo>("GetPolicy", [&](grpc::ClientContext* ctx, auto* out) {
      return policy_->GetPolicy(ctx, v1::GetPolicyRequest(), out);
    });
  }

 private:
  static std::string Hint(grpc::StatusCode code, std::string_view method) {
    switch (code) {
      case grpc::StatusCode::UNIMPLEMENTED:
        return " (does that node keep a transparency log? an older attestd does not; and the HTTP port does not "
               "speak gRPC)";
      case grpc::StatusCode::NOT_FOUND:
        return method == "GetCheckpoint" ? " (the node has not signed its first checkpoint yet; try again shortly)"
                                         : "";
      case grpc::StatusCode::OUT_OF_RANGE:
        return " (the node has not signed a checkpoint that large; run again to fetch its latest)";
      default:
        return "";
    }
  }

  template <typename Response, typename Rpc>
  absl::StatusOr<Response> Call(std::string_view method, Rpc rpc) {
    Response response;
    absl::Status status = CallNode(
        options_, method, response, [&](grpc::ClientContext* context) { return rpc(context, &response); },
        [method](grpc::StatusCode code) { return Hint(code, method); });
    if (!status.ok()) return status;
    return response;
  }

  NodeOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::LogService::Stub> log_;
  std::unique_ptr<v1::Policy::Stub> policy_;
};

std::string RootText(const consensus::MerkleHash& root) { return consensus::Base64Encode(root); }

OptionSpec NodeKeyOption(std::string_view help) {
  return {"node-key", OptionKind::kValue, OptionRepeat::kOnce, "KEY", std::string(help)};
}

// --node-key, parsed; nullopt when absent. INVALID_ARGUMENT (a usage error) when malformed.
absl::StatusOr<std::optional<consensus::PublicKey>> NodeKeyFromArgs(const ParsedArgs& args) {
  const std::optional<std::string> text = args.Value("node-key");
  if (!text) return std::nullopt;
  absl::StatusOr<consensus::PublicKey> key = consensus::PublicKey::Parse(*text);
  if (!key.ok()) {
    return absl::InvalidArgumentError(Cat("--node-key: ", key.status().message(),
                                          " (give the node's public key as name:base64, as `attest key public` "
                                          "prints it)"));
  }
  return std::optional<consensus::PublicKey>(*std::move(key));
}

// What the node serves, before any trust: the note and the origin it claims (to find the key and
// the state file for it).
struct ServedCheckpoint final {
  std::string note;
  std::string claimed_origin;
};

absl::StatusOr<ServedCheckpoint> FetchCheckpoint(LogNode& node, std::string_view command, CommandEnv& env) {
  absl::StatusOr<v1::GetCheckpointResponse> response = node.GetCheckpoint();
  if (!response.ok()) return response.status();
  if (!response->publishing_error().empty()) {
    env.err << "attest " << command << ": warning: the node reports it has stopped signing new checkpoints: "
            << response->publishing_error() << " (the checkpoint below is its last good one)\n";
  }
  absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(response->checkpoint());
  absl::StatusOr<consensus::Checkpoint> body =
      note.ok() ? consensus::Checkpoint::ParseBody(note->text) : absl::StatusOr<consensus::Checkpoint>(note.status());
  if (!body.ok()) {
    return absl::InvalidArgumentError(Cat("the node served a malformed checkpoint: ", body.status().message()));
  }
  return ServedCheckpoint{.note = response->checkpoint(), .claimed_origin = body->origin};
}

int RunCheckpoint(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (!args.positionals().empty()) return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));
  auto pinned = NodeKeyFromArgs(args);
  if (!pinned.ok()) return UsageError(spec, env, std::string(pinned.status().message()));

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NodeChannel(*node_options);
  if (!channel.ok()) return Failure(spec, env, std::string(channel.status().message()));
  LogNode node(*node_options, *std::move(channel));
  absl::StatusOr<ServedCheckpoint> served = FetchCheckpoint(node, spec.name, env);
  if (!served.ok()) return Failure(spec, env, std::string(served.status().message()));

  const bool key_pinned = pinned->has_value();
  std::optional<consensus::PublicKey> key = *pinned;
  if (!key_pinned) {
    absl::StatusOr<v1::PolicyInfo> policy = node.GetPolicy();
    if (!policy.ok()) return Failure(spec, env, std::string(policy.status().message()));
    absl::StatusOr<consensus::PublicKey> reported = consensus::PublicKey::Parse(policy->node_public_key());
    if (!reported.ok()) {
      return Failure(spec, env,
                     Cat("the node reports no usable public key (", reported.status().message(),
                         "); pass --node-key KEY"));
    }
    key = *std::move(reported);
  }
  absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(served->note, *key);
  if (!checkpoint.ok()) {
    return Failure(spec, env,
                   Cat("the node's checkpoint does not verify with ", key_pinned ? "--node-key " : "its own key ",
                       key->ToString(), ": ", checkpoint.status().message(), "\nthe node served:\n", served->note));
  }

  if (args.Has("json")) {
    const json object{{"origin", checkpoint->origin},
                      {"size", checkpoint->size},
                      {"root", RootText(checkpoint->root)},
                      {"note", served->note},
                      {"key_pinned", key_pinned}};
    env.out << DumpJson(object) << "\n";
  } else {
    env.out << "origin  " << checkpoint->origin << "\n"
            << "size    " << checkpoint->size << "\n"
            << "root    " << RootText(checkpoint->root) << "\n"
            << "key     " << key->ToString()
            << (key_pinned ? " (given with --node-key)\n"
                           : " (NOT pinned: the key the node reports for itself, so this only shows the note is "
                             "self-consistent; pass --node-key KEY, obtained from the node's operator, to check "
                             "it against a key you trust)\n")
            << "\n"
            << served->note;
  }
  if (!key_pinned) {
    env.err << "attest " << spec.name << ": note: the key was not pinned (checked with the key the node reports)\n";
  }
  return kExitOk;
}

// Strict non-negative decimal (no sign, no spaces), as written for --entry.
std::optional<uint64_t> ParseIndex(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

absl::StatusOr<std::vector<consensus::MerkleHash>> ProofHashes(
    const google::protobuf::RepeatedPtrField<std::string>& hashes, std::string_view what) {
  std::vector<consensus::MerkleHash> proof;
  proof.reserve(hashes.size());
  for (const std::string& hash : hashes) {
    if (hash.size() != consensus::MerkleHash().size()) {
      return absl::FailedPreconditionError(
          Cat("the node's ", what, " holds a hash of ", hash.size(), " bytes (32 expected)"));
    }
    consensus::MerkleHash h;
    std::copy(hash.begin(), hash.end(), h.begin());
    proof.push_back(h);
  }
  return proof;
}

struct EntryCheck final {
  uint64_t index = 0;
  bool included = false;
  std::string kind;  // "attestation", "dispute", "resolution", "dispute part i/n of record ...", "policy version n
                     // sha256:..."; empty when unknown
  std::string path;  // the store path the entry is about
  std::string key;   // the attestation's signer, the dispute record's, or a policy's first approver
  std::string error;
};

// Fills kind, path and key from the entry bytes; an error when they do not parse.
void Describe(std::string_view bytes, EntryCheck& check) {
  absl::StatusOr<consensus::LogEntry> entry = consensus::ParseLogEntry(bytes);
  if (!entry.ok()) {
    check.error = Cat("the entry is included but malformed: ", entry.status().message());
    return;
  }
  if (entry->kind == consensus::LogEntryKind::kAttestation && entry->attestation) {
    check.kind = "attestation";
    check.path = entry->attestation->attestation.claim.path.full();
    check.key = entry->attestation->attestation.key_name();
    return;
  }
  if (entry->kind == consensus::LogEntryKind::kPolicy && entry->policy) {
    // A policy the node adopted: no store path; the first approval names who signed it.
    check.kind = Cat("policy version ", entry->policy->version, " ", entry->policy->policy_hash);
    if (!entry->policy->approvals.empty()) check.key = entry->policy->approvals.front().key_name;
    return;
  }
  if (entry->kind == consensus::LogEntryKind::kDisputePart && entry->part) {
    // A slice of a dispute record too large for one entry: the path and signer are in the whole
    // record, which the entries around this one complete.
    check.kind = Cat("dispute part ", entry->part->index, "/", entry->part->count, " of record ",
                     entry->part->record_sha256.substr(0, 16));
    return;
  }
  const bool resolution = entry->kind == consensus::LogEntryKind::kResolution;
  check.kind = resolution ? "resolution" : "dispute";
  absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(entry->note);
  if (!note.ok()) {
    check.error = Cat("the ", check.kind, " entry's note is malformed: ", note.status().message());
    return;
  }
  if (!note->signatures.empty()) check.key = note->signatures[0].key_name;
  if (resolution) {
    absl::StatusOr<consensus::Resolution> statement = consensus::Resolution::FromNoteText(note->text);
    if (!statement.ok()) {
      check.error = Cat("the resolution statement is malformed: ", statement.status().message());
      return;
    }
    check.path = statement->subject.ToString();
    return;
  }
  absl::StatusOr<consensus::DisputeRecord> record = consensus::DisputeRecord::FromNoteText(note->text);
  if (!record.ok()) {
    check.error = Cat("the dispute record is malformed: ", record.status().message());
    return;
  }
  check.path = record->subject.ToString();
}

// Checks that entry `index` is in the tree of `checkpoint`. A network failure is returned; a proof
// or entry that does not hold is recorded in the result.
absl::StatusOr<EntryCheck> CheckEntry(LogNode& node, const consensus::Checkpoint& checkpoint, uint64_t index) {
  EntryCheck check;
  check.index = index;
  if (index >= checkpoint.size) {
    check.error = Cat("not in the log: the checkpoint's size is ", checkpoint.size, " (entries are numbered from 0)");
    return check;
  }
  absl::StatusOr<v1::GetInclusionProofResponse> response = node.GetInclusionProof(index, checkpoint.size);
  if (!response.ok()) return response.status();
  absl::StatusOr<std::vector<consensus::MerkleHash>> proof = ProofHashes(response->hashes(), "inclusion proof");
  if (!proof.ok()) {
    check.error = std::string(proof.status().message());
    return check;
  }
  if (absl::Status s = consensus::VerifyInclusion(index, checkpoint.size, consensus::LeafHash(response->entry()),
                                                  *proof, checkpoint.root);
      !s.ok()) {
    check.error = Cat("the entry the node returned is not included under the checkpoint's root: ", s.message());
    return check;
  }
  check.included = true;
  Describe(response->entry(), check);
  return check;
}

void PrintEvidence(std::ostream& out, std::string_view reason, const LogState& previous,
                   const std::string& state_path, const consensus::Checkpoint& current, std::string_view current_note) {
  out << "INCONSISTENT: " << reason << "\n"
      << "Evidence: two checkpoints signed by " << previous.node_key.ToString() << ":\n\n"
      << "--- verified earlier (size " << previous.checkpoint.size << ", remembered in " << state_path << ")\n"
      << previous.note << "\n"
      << "--- served now (size " << current.size << ")\n"
      << current_note;
}

int RunVerify(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (!args.positionals().empty()) return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));
  auto given_key = NodeKeyFromArgs(args);
  if (!given_key.ok()) return UsageError(spec, env, std::string(given_key.status().message()));
  std::vector<uint64_t> indices;
  for (const std::string& text : args.Values("entry")) {
    std::optional<uint64_t> index = ParseIndex(text);
    if (!index) {
      return UsageError(spec, env,
                        Cat("--entry ", consensus::QuoteForError(text), " is not an entry index (0, 1, 2, ...)"));
    }
    indices.push_back(*index);
  }
  const std::optional<std::string> state_option = args.Value("state");
  if (state_option && state_option->empty()) return UsageError(spec, env, "--state needs a file name");
  const bool as_json = args.Has("json");

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NodeChannel(*node_options);
  if (!channel.ok()) return Failure(spec, env, std::string(channel.status().message()));
  LogNode node(*node_options, *std::move(channel));
  absl::StatusOr<ServedCheckpoint> served = FetchCheckpoint(node, spec.name, env);
  if (!served.ok()) return Failure(spec, env, std::string(served.status().message()));

  // Which state file: the one named, or the default one of the log the node claims to be. The claim
  // is not trusted: only the pinned key's signature decides.
  std::string state_path;
  if (state_option) {
    state_path = *state_option;
  } else {
    absl::StatusOr<std::string> path = DefaultLogStatePath(served->claimed_origin, env.env_var);
    if (!path.ok()) return Failure(spec, env, std::string(path.status().message()));
    state_path = *std::move(path);
  }
  absl::StatusOr<std::optional<LogState>> previous = LoadLogState(state_path);
  if (!previous.ok()) return Failure(spec, env, std::string(previous.status().message()));

  std::optional<consensus::PublicKey> key;
  if (previous->has_value()) {
    const LogState& state = **previous;
    if (state.checkpoint.origin != served->claimed_origin) {
      return Failure(spec, env,
                     Cat("the state file ", state_path, " is for the log ",
                         consensus::QuoteForError(state.checkpoint.origin), ", but the node serves the log ",
                         consensus::QuoteForError(served->claimed_origin), " (wrong --node or --state?)"));
    }
    if (given_key->has_value() && **given_key != state.node_key) {
      return Failure(spec, env,
                     Cat("--node-key ", (*given_key)->ToString(), " differs from the key pinned in ", state_path, ": ",
                         state.node_key.ToString(),
                         " (if the node's operator really changed its key, confirm that with them, then move the "
                         "state file away and run again with the new --node-key)"));
    }
    key = state.node_key;
  } else if (given_key->has_value()) {
    key = **given_key;
  } else {
    env.err << "attest " << spec.name << ": no key is pinned for the log "
            << consensus::QuoteForError(served->claimed_origin) << " (no state file " << state_path
            << "): pass --node-key KEY the first time, with the node's public key as its operator gives it to you "
               "(not as the node reports it: a node cannot vouch for itself); it is then pinned in the state file\n"
            << "Usage: " << spec.synopsis << "\n";
    return kExitUsage;
  }

  absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(served->note, *key);
  if (!checkpoint.ok()) {
    return Failure(spec, env,
                   Cat("the node's checkpoint does not verify with the ",
                       previous->has_value() ? Cat("key pinned in ", state_path, " ") : std::string("--node-key "),
                       key->ToString(), ": ", checkpoint.status().message(), "\nthe node served:\n", served->note));
  }

  // Does the log extend what was verified before?
  std::optional<std::string> inconsistency;
  if (previous->has_value()) {
    const consensus::Checkpoint& old = (**previous).checkpoint;
    if (checkpoint->size == old.size) {
      if (checkpoint->root != old.root) {
        inconsistency = Cat("the node signed two different roots for size ", old.size, " (a forked log)");
      }
    } else if (checkpoint->size < old.size) {
      inconsistency = Cat("the node's log shrank from size ", old.size, " to ", checkpoint->size,
                          " (a rolled-back or forked log)");
    } else if (old.size > 0) {
      absl::StatusOr<v1::GetConsistencyProofResponse> response =
          node.GetConsistencyProof(old.size, checkpoint->size);
      if (!response.ok()) return Failure(spec, env, std::string(response.status().message()));
      absl::StatusOr<std::vector<consensus::MerkleHash>> proof =
          ProofHashes(response->hashes(), "consistency proof");
      absl::Status verified = proof.ok() ? consensus::VerifyConsistency(old.size, checkpoint->size, old.root,
                                                                         checkpoint->root, *proof)
                                         : proof.status();
      if (!verified.ok()) {
        inconsistency = Cat("the node cannot prove that its log of size ", checkpoint->size, " extends the one of size ",
                            old.size, " verified earlier: ", verified.message());
      }
    }
  }

  std::vector<EntryCheck> entries;
  if (!inconsistency) {
    for (uint64_t index : indices) {
      absl::StatusOr<EntryCheck> check = CheckEntry(node, *checkpoint, index);
      if (!check.ok()) return Failure(spec, env, std::string(check.status().message()));
      entries.push_back(*std::move(check));
    }
  }
  bool all_included = true;
  for (const EntryCheck& e : entries) all_included = all_included && e.included && e.error.empty();

  // A flag and a value rather than std::optional: GCC 12 warns (wrongly) that the optional's value
  // may be read uninitialised.
  const bool has_previous = previous->has_value();
  const uint64_t previous_size = has_previous ? (**previous).checkpoint.size : 0;
  if (as_json) {
    json list = json::array();
    for (const EntryCheck& e : entries) {
      json item{{"index", e.index}, {"kind", e.kind}, {"path", e.path}, {"key", e.key}, {"included", e.included}};
      if (!e.error.empty()) item["error"] = e.error;
      list.push_back(std::move(item));
    }
    json object{{"origin", checkpoint->origin},
                {"size", checkpoint->size},
                {"root", RootText(checkpoint->root)},
                {"previous_size", has_previous ? json(previous_size) : json(nullptr)},
                {"consistent", !inconsistency.has_value()},
                {"entries", std::move(list)}};
    if (inconsistency) {
      object["error"] = *inconsistency;
      object["evidence"] = json{{"previous", (**previous).note}, {"current", served->note}};
    }
    env.out << DumpJson(object) << "\n";
  } else {
    env.out << "log       " << checkpoint->origin << "\n"
            << "size      " << checkpoint->size << "\n"
            << "root      " << RootText(checkpoint->root) << "\n";
    if (!has_previous) {
      env.out << "previous  none: first verification, key " << key->ToString() << " pinned\n";
    } else if (!inconsistency) {
      env.out << "previous  " << previous_size << ": "
              << (previous_size == checkpoint->size ? "same checkpoint" : "consistent") << "\n";
    }
    for (const EntryCheck& e : entries) {
      env.out << "entry " << e.index << "  ";
      if (e.included) {
        env.out << "included  " << e.kind << "  " << (e.path.empty() ? "-" : e.path) << "  "
                << (e.key.empty() ? "-" : e.key);
        if (!e.error.empty()) env.out << "  (" << e.error << ")";
      } else {
        env.out << "NOT INCLUDED: " << e.error;
      }
      env.out << "\n";
    }
    if (inconsistency) {
      env.out << "\n";
      PrintEvidence(env.out, *inconsistency, **previous, state_path, *checkpoint, served->note);
    }
  }

  if (inconsistency) {
    return Failure(spec, env,
                   Cat("log ", consensus::QuoteForError(checkpoint->origin), " is inconsistent: ", *inconsistency,
                       "; keep the two signed checkpoints printed as evidence (the state file ", state_path,
                       " is left unchanged)"));
  }
  if (!all_included) {
    return Failure(spec, env, Cat("not every --entry is included in the log; the state file ", state_path,
                                  " is left unchanged"));
  }
  absl::StatusOr<LogState> next = MakeLogState(*key, served->note);
  if (!next.ok()) return Failure(spec, env, Cat("internal error: ", next.status().message()));
  if (absl::Status s = SaveLogState(state_path, *next); !s.ok()) {
    return Failure(spec, env, Cat("the log verified, but its state could not be saved: ", s.message()));
  }
  if (!as_json) env.err << "attest " << spec.name << ": verified; state saved in " << state_path << "\n";
  return kExitOk;
}

}  // namespace

CommandSpec LogCheckpointCommand() {
  CommandSpec spec{
      .name = "log checkpoint",
      .synopsis = "attest log checkpoint --node ADDR [--node-key KEY] [--json]",
      .summary = "Fetch and verify a node's latest signed log checkpoint.",
      .description =
          "Every node keeps an append-only Merkle log (RFC 6962) of what was submitted to it and signs\n"
          "checkpoints of it (C2SP tlog-checkpoint) with its key; the log's origin is the key's name.\n"
          "Prints the checkpoint's origin, size and root (base64) and the signed note itself, after checking\n"
          "its signature with --node-key, or, without it, with the key the node reports for itself (the\n"
          "output then says the key was not pinned: that shows only that the note is well signed, not by\n"
          "whom). --json prints {origin, size, root, note, key_pinned}.\n"
          "\n"
          "To audit a log over time (consistency, inclusion of entries) use `attest log verify`.\n"
          "\n"
          "Exit status: 0 when the checkpoint verifies, 1 when it does not or the node cannot be asked, 2 on\n"
          "usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  attest log checkpoint --node 127.0.0.1:7700 --node-key node-a:Bq0u2yEo0mV8m1e2Zf2BFXXzXqXXmMXz1mNvMdsd5sA=\n",
      .run = RunCheckpoint,
  };
  spec.options.push_back(NodeKeyOption("the node's public key name:base64 to verify with (default: the key the "
                                       "node reports, which is not pinned)"));
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

CommandSpec LogVerifyCommand() {
  CommandSpec spec{
      .name = "log verify",
      .synopsis = "attest log verify --node ADDR [--state FILE] [--node-key KEY] [--entry N]... [--json]",
      .summary = "Audit a node's log: signature, consistency with the last run, inclusion of entries.",
      .description =
          "Fetches the node's latest checkpoint and checks, trusting nothing the node says about itself:\n"
          "  1. its signature, with the node key pinned in the state file (the first run pins --node-key;\n"
          "     there is no trust on first use from the node itself, and a --node-key other than the pinned\n"
          "     one is an error);\n"
          "  2. that it extends the checkpoint verified last time: the same size must have the same root, a\n"
          "     smaller size is a rollback, a larger one needs a valid consistency proof (RFC 9162);\n"
          "  3. for each --entry N, that entry N is included under the new root; its kind, store path and\n"
          "     signing key name are printed (the signatures inside the entry are not checked here).\n"
          "Only when everything holds is the state file replaced with the new checkpoint. When the node\n"
          "contradicts the remembered checkpoint, both signed checkpoints are printed: together they prove the\n"
          "node showed two histories.\n"
          "\n"
          "The state file (JSON: the pinned key and the last verified checkpoint) defaults to\n"
          "$XDG_STATE_HOME/attest/logs/<origin>.json, or ~/.local/state/attest/logs/<origin>.json ('/' in the\n"
          "origin becomes '_'); directories are created as needed.\n"
          "--json prints {origin, size, root, previous_size, consistent, entries: [{index, kind, path, key,\n"
          "included}]}, plus evidence {previous, current} when inconsistent.\n"
          "\n"
          "Exit status: 0 when everything holds, 1 on any verification failure or when the node cannot be\n"
          "asked, 2 on usage errors (including a first run without --node-key).",
      .options = NodeOptionSpecs(),
      .examples =
          "  # first run: pin the key the node's operator published\n"
          "  attest log verify --node 127.0.0.1:7700 --node-key node-a:Bq0u2yEo0mV8m1e2Zf2BFXXzXqXXmMXz1mNvMdsd5sA=\n"
          "  # later runs: consistency with the last run, and two entries included\n"
          "  attest log verify --node 127.0.0.1:7700 --entry 0 --entry 3\n",
      .run = RunVerify,
  };
  spec.options.push_back({"state", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
                          "the state file of this log (default: $XDG_STATE_HOME/attest/logs/<origin>.json)"});
  spec.options.push_back(NodeKeyOption("the node's public key name:base64; required on the first run, to pin it"));
  spec.options.push_back({"entry", OptionKind::kValue, OptionRepeat::kMany, "N",
                          "check that entry N (from 0) is included, and summarise it"});
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

}  // namespace attest::client
