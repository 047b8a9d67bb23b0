#include "consensus/derivation_paths.h"

#include <algorithm>
#include <cstddef>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "consensus/encoding.h"
#include "consensus/sha256.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kDrvExtension = ".drv";

// Nix's compressHash: XOR-folds the digest into 20 bytes, the hash part of every store path.
std::array<uint8_t, 20> Compress20(const Sha256Digest& digest) {
  std::array<uint8_t, 20> out{};
  for (size_t i = 0; i < digest.size(); ++i) out[i % out.size()] ^= digest[i];
  return out;
}

// Nix's printString: the inverse of ParseDerivation's string reader, which accepts exactly these escapes.
void AppendEscaped(std::string& out, std::string_view s) {
  out.push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out.push_back(c);
    }
  }
  out.push_back('"');
}

// Nix's printUnquotedString: the bytes as they are between quotes. Nix writes the platform and the
// output names of input derivations this way; the hash Nix computes over a derivation it has read
// back is taken over this form, so HashModulo must use it too.
void AppendRaw(std::string& out, std::string_view s) {
  out.push_back('"');
  out.append(s);
  out.push_back('"');
}

template <typename Range, typename Append>
void AppendList(std::string& out, const Range& range, Append append) {
  out.push_back('[');
  bool first = true;
  for (const auto& element : range) {
    if (!first) out.push_back(',');
    first = false;
    append(element);
  }
  out.push_back(']');
}

// The name of the derivation as Nix reads it back: the .drv path's name without ".drv" (the "name"
// environment variable is absent with __structuredAttrs, so the path is the one reliable source).
std::string_view DrvName(const StorePath& drv_path) {
  std::string_view name = drv_path.name();
  if (name.size() > kDrvExtension.size() && name.ends_with(kDrvExtension)) {
    name.remove_suffix(kDrvExtension.size());
  }
  return name;
}

// Nix's outputPathName.
std::string OutputPathName(std::string_view drv_name, std::string_view output_name) {
  if (output_name == "out") return std::string(drv_name);
  return Cat(drv_name, "-", output_name);
}

// How the outputs of a derivation get their paths. Nix 2.8 (Derivation::type) refuses any mix.
enum class PathKind { kInputAddressed, kFixed };

// Floating content-addressed and deferred outputs: refused (their paths cannot be checked beforehand),
// or hashed like input-addressed ones (for realisation keys: Nix 2.8's hashDerivationModulo treats
// them alike, only the kind of the result differs).
enum class FloatingOutputs { kRefuse, kHashLikeInputAddressed };

absl::StatusOr<PathKind> ClassifyOutputs(const StorePath& drv_path, const Derivation& drv,
                                         FloatingOutputs floating = FloatingOutputs::kRefuse) {
  size_t input_addressed = 0;
  size_t fixed = 0;
  for (const DerivationOutput& output : drv.outputs) {
    switch (output.kind()) {
      case DerivationOutput::Kind::kInputAddressed:
        ++input_addressed;
        break;
      case DerivationOutput::Kind::kFixed:
        if (output.hash_algo.starts_with("text:")) {
          return absl::FailedPreconditionError(
              Cat(drv_path.full(), ": output ", QuoteForError(output.name), " is text-hashed (", output.hash_algo,
                  "), a form of experimental dynamic derivations whose output paths attest does not check"));
        }
        ++fixed;
        break;
      case DerivationOutput::Kind::kFloating:
      case DerivationOutput::Kind::kDeferred:
        if (floating == FloatingOutputs::kHashLikeInputAddressed) {
          ++input_addressed;
          break;
        }
        return absl::FailedPreconditionError(
            Cat(drv_path.full(), ": output ", QuoteForError(output.name), " is ",
                output.kind() == DerivationOutput::Kind::kFloating ? "floating content-addressed" : "deferred",
                ": its path is known only after the build, so attest cannot check it beforehand"));
    }
  }
  if (input_addressed > 0 && fixed > 0) {
    return absl::InvalidArgumentError(Cat(drv_path.full(), ": mixes input-addressed and fixed-output outputs, which "
                                          "Nix refuses to build (is the file damaged?)"));
  }
  if (fixed > 0 && (fixed > 1 || drv.outputs.front().name != "out")) {
    return absl::InvalidArgumentError(Cat(drv_path.full(), ": a fixed-output derivation has exactly one output, "
                                          "named out (Nix refuses anything else)"));
  }
  if (input_addressed == 0 && fixed == 0) {
    return absl::InvalidArgumentError(Cat(drv_path.full(), ": the derivation has no outputs"));
  }
  return fixed > 0 ? PathKind::kFixed : PathKind::kInputAddressed;
}

// Nix's makeFixedOutputPath for the single output of a fixed-output derivation (Nix never reads this
// path from the file; it computes it).
absl::StatusOr<StorePath> FixedOutputPath(const StorePath& drv_path, const DerivationOutput& output) {
  const std::string name = OutputPathName(DrvName(drv_path), output.name);
  if (output.hash_algo == "r:sha256") {
    absl::StatusOr<std::vector<uint8_t>> bytes = HexDecode(output.hash);
    if (!bytes.ok() || bytes->size() != 32) {
      return absl::InvalidArgumentError(Cat(drv_path.full(), ": the hash of output out is not 64 hex digits"));
    }
    Sha256Digest digest{};
    std::copy(bytes->begin(), bytes->end(), digest.begin());
    return MakeStorePath("source", digest, name);
  }
  return MakeStorePath("output:out", Sha256(Cat("fixed:out:", output.hash_algo, ":", output.hash, ":")), name);
}

// Nix's hashDerivationModulo for a fixed-output derivation: independent of how the output is built.
absl::StatusOr<Sha256Digest> FixedOutputHash(const StorePath& drv_path, const Derivation& drv) {
  const DerivationOutput& output = drv.outputs.front();
  absl::StatusOr<StorePath> path = FixedOutputPath(drv_path, output);
  if (!path.ok()) return path.status();
  return Sha256(Cat("fixed:out:", output.hash_algo, ":", output.hash, ":", path->full()));
}

enum class OutputMasking { kKeep, kEmpty };

// Nix's Derivation::unparse with actualInputs, for an input-addressed derivation: the ATerm over which
// hashDerivationModulo is taken. Nix hashes its in-memory derivation, whose maps and sets are sorted,
// so this form sorts outputs, input sources, output names and environment; a file Nix wrote is sorted
// already.
std::string UnparseForHash(const Derivation& drv, OutputMasking masking,
                           const std::map<std::string, std::set<std::string>>& inputs) {
  std::vector<const DerivationOutput*> outputs;
  outputs.reserve(drv.outputs.size());
  for (const DerivationOutput& output : drv.outputs) outputs.push_back(&output);
  std::sort(outputs.begin(), outputs.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  std::vector<const StorePath*> sources;
  sources.reserve(drv.input_sources.size());
  for (const StorePath& source : drv.input_sources) sources.push_back(&source);
  std::sort(sources.begin(), sources.end(), [](const auto* a, const auto* b) { return *a < *b; });
  std::vector<const std::pair<std::string, std::string>*> env;
  env.reserve(drv.env.size());
  for (const auto& entry : drv.env) env.push_back(&entry);
  std::sort(env.begin(), env.end(), [](const auto* a, const auto* b) { return a->first < b->first; });

  std::string out = "Derive(";
  AppendList(out, outputs, [&](const DerivationOutput* output) {
    out.push_back('(');
    AppendRaw(out, output->name);
    out.push_back(',');
    AppendRaw(out, masking == OutputMasking::kEmpty || !output->path ? "" : output->path->full());
    out.push_back(',');
    // Nix's unparse writes a floating content-addressed output as ("<name>","","<method><algo>","")
    // (e.g. "r:sha256"); input-addressed and deferred outputs have no hash algorithm.
    AppendRaw(out, output->kind() == DerivationOutput::Kind::kFloating ? output->hash_algo : "");
    out += ",\"\")";
  });
  out.push_back(',');
  AppendList(out, inputs, [&](const auto& input) {
    out.push_back('(');
    AppendRaw(out, input.first);
    out.push_back(',');
    AppendList(out, input.second, [&](const std::string& name) { AppendRaw(out, name); });
    out.push_back(')');
  });
  out.push_back(',');
  AppendList(out, sources, [&](const StorePath* source) { AppendRaw(out, source->full()); });
  out.push_back(',');
  AppendRaw(out, drv.platform);
  out.push_back(',');
  AppendEscaped(out, drv.builder);
  out.push_back(',');
  AppendList(out, drv.args, [&](const std::string& arg) { AppendEscaped(out, arg); });
  out.push_back(',');
  AppendList(out, env, [&](const std::pair<std::string, std::string>* entry) {
    out.push_back('(');
    AppendEscaped(out, entry->first);
    out.push_back(',');
    const bool is_output = drv.FindOutput(entry->first) != nullptr;
    AppendEscaped(out, masking == OutputMasking::kEmpty && is_output ? "" : entry->second);
    out.push_back(')');
  });
  out.push_back(')');
  return out;
}

}  // namespace

absl::StatusOr<StorePath> MakeStorePath(std::string_view type, const Sha256Digest& hash, std::string_view name) {
  const Sha256Digest digest = Sha256(Cat(type, ":sha256:", HexEncode(hash), ":", kStoreDir, ":", name));
  const std::array<uint8_t, 20> compressed = Compress20(digest);
  absl::StatusOr<StorePath> path = StorePath::Parse(Cat(kStoreDir, "/", Nix32Encode(compressed), "-", name));
  if (!path.ok()) {
    return absl::InvalidArgumentError(
        Cat("cannot name a store path ", QuoteForError(name), ": ", path.status().message()));
  }
  return path;
}

absl::StatusOr<StorePath> TextStorePath(std::string_view name, std::string_view contents,
                                        std::span<const StorePath> references) {
  std::vector<const StorePath*> sorted;
  sorted.reserve(references.size());
  for (const StorePath& reference : references) sorted.push_back(&reference);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return *a < *b; });
  sorted.erase(std::unique(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return *a == *b; }),
               sorted.end());
  std::string type = "text";
  for (const StorePath* reference : sorted) {
    type.push_back(':');
    type += reference->full();
  }
  return MakeStorePath(type, Sha256(contents), name);
}

std::vector<StorePath> DerivationReferences(const Derivation& drv) {
  std::vector<StorePath> references;
  references.reserve(drv.input_derivations.size() + drv.input_sources.size());
  for (const DerivationInput& input : drv.input_derivations) references.push_back(input.drv_path);
  references.insert(references.end(), drv.input_sources.begin(), drv.input_sources.end());
  std::sort(references.begin(), references.end());
  references.erase(std::unique(references.begin(), references.end()), references.end());
  return references;
}

// Every string is escaped, where Nix writes the platform and input output names without escapes: the
// two agree on every file in which those hold none of " \ newline CR tab (any file Nix reads back as
// it wrote it), and escaping keeps UnparseDerivation(ParseDerivation(f)) == f for every f the parser
// accepts, since the parser takes exactly these escapes and refuses raw newlines, CRs and tabs.
std::string UnparseDerivation(const Derivation& drv) {
  std::string out = "Derive(";
  AppendList(out, drv.outputs, [&](const DerivationOutput& output) {
    out.push_back('(');
    AppendEscaped(out, output.name);
    out.push_back(',');
    AppendEscaped(out, output.path ? output.path->full() : "");
    out.push_back(',');
    AppendEscaped(out, output.hash_algo);
    out.push_back(',');
    AppendEscaped(out, output.hash);
    out.push_back(')');
  });
  out.push_back(',');
  AppendList(out, drv.input_derivations, [&](const DerivationInput& input) {
    out.push_back('(');
    AppendEscaped(out, input.drv_path.full());
    out.push_back(',');
    AppendList(out, input.output_names, [&](const std::string& name) { AppendEscaped(out, name); });
    out.push_back(')');
  });
  out.push_back(',');
  AppendList(out, drv.input_sources, [&](const StorePath& source) { AppendEscaped(out, source.full()); });
  out.push_back(',');
  AppendEscaped(out, drv.platform);
  out.push_back(',');
  AppendEscaped(out, drv.builder);
  out.push_back(',');
  AppendList(out, drv.args, [&](const std::string& arg) { AppendEscaped(out, arg); });
  out.push_back(',');
  AppendList(out, drv.env, [&](const std::pair<std::string, std::string>& entry) {
    out.push_back('(');
    AppendEscaped(out, entry.first);
    out.push_back(',');
    AppendEscaped(out, entry.second);
    out.push_back(')');
  });
  out.push_back(')');
  return out;
}

absl::StatusOr<Derivation> VerifyDerivationFile(const StorePath& drv_path, std::string_view contents) {
  if (!drv_path.IsDerivation()) {
    return absl::InvalidArgumentError(
        Cat(drv_path.full(), ": not a derivation path (the name does not end in .drv)"));
  }
  if (contents.size() > kMaxDerivationBytes) {
    return absl::InvalidArgumentError(Cat(drv_path.full(), ": the file has ", contents.size(),
                                          " bytes, more than the ", kMaxDerivationBytes,
                                          " a derivation may have here"));
  }
  absl::StatusOr<Derivation> drv = ParseDerivation(contents, drv_path.full());
  if (!drv.ok()) return drv.status();
  const std::vector<StorePath> references = DerivationReferences(*drv);
  absl::StatusOr<StorePath> computed = TextStorePath(drv_path.name(), contents, references);
  if (!computed.ok()) return computed.status();
  if (*computed != drv_path) {
    return absl::InvalidArgumentError(Cat(drv_path.full(), ": its contents give ", computed->full(),
                                          ": the file does not belong to this path"));
  }
  return drv;
}

void DerivationGraph::Add(const StorePath& drv_path, Derivation drv) {
  derivations_.try_emplace(drv_path, std::move(drv));
}

bool DerivationGraph::Contains(const StorePath& drv_path) const { return derivations_.contains(drv_path); }

const Derivation* DerivationGraph::Find(const StorePath& drv_path) const {
  auto it = derivations_.find(drv_path);
  return it == derivations_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::map<std::string, std::set<std::string>>> DerivationGraph::HashedInputs(
    const StorePath& drv_path, const Derivation& drv, const HashMap& input_hashes) const {
  std::map<std::string, std::set<std::string>> inputs;
  for (const DerivationInput& input : drv.input_derivations) {
    const Derivation* input_drv = Find(input.drv_path);
    auto hash = input_hashes.find(input.drv_path);
    if (input_drv == nullptr || hash == input_hashes.end()) {
      return absl::InternalError(Cat(drv_path.full(), ": input ", input.drv_path.full(), " was not hashed first"));
    }
    // Nix keys by the hash of each output used; every output of a derivation shares its hash (a
    // fixed-output derivation has only "out"), so two inputs with the same hash share one entry.
    std::set<std::string>& names = inputs[HexEncode(hash->second)];
    for (const std::string& name : input.output_names) {
      if (input_drv->FindOutput(name) == nullptr) {
        return absl::InvalidArgumentError(Cat(drv_path.full(), ": uses output ", QuoteForError(name), " of ",
                                              input.drv_path.full(), ", which has no such output"));
      }
      names.insert(name);
    }
  }
  return inputs;
}

absl::Status DerivationGraph::HashInputsOf(const StorePath& root, OutputKinds kinds) {
  HashMap& input_hashes = kinds == OutputKinds::kAny ? any_input_hashes_ : input_hashes_;
  const FloatingOutputs floating =
      kinds == OutputKinds::kAny ? FloatingOutputs::kHashLikeInputAddressed : FloatingOutputs::kRefuse;
  struct Frame {
    const StorePath* path;
    const Derivation* drv;
    size_t next_input;
  };
  // An explicit stack, not recursion: a chain of inputs is as long as whoever wrote the graph wants.
  std::vector<Frame> stack;
  absl::flat_hash_set<const StorePath*> on_stack;
  auto root_it = derivations_.find(root);
  if (root_it == derivations_.end()) {
    return absl::NotFoundError(Cat(root.full(), ": not in the derivation graph (add it first)"));
  }
  stack.push_back({&root_it->first, &root_it->second, 0});
  on_stack.insert(&root_it->first);
  while (!stack.empty()) {
    Frame& frame = stack.back();
    if (frame.next_input < frame.drv->input_derivations.size()) {
      const StorePath& input = frame.drv->input_derivations[frame.next_input++].drv_path;
      if (input_hashes.contains(input)) continue;
      auto it = derivations_.find(input);
      if (it == derivations_.end()) {
        return absl::NotFoundError(Cat(input.full(), ", an input derivation of ", frame.path->full(),
                                       ", is not in the derivation graph (fetch and add it first)"));
      }
      if (on_stack.contains(&it->first)) {
        return absl::InvalidArgumentError(Cat(frame.path->full(), ": its input derivation ", input.full(),
                                              " depends on it in turn; a cycle, which .drv files named by their "
                                              "contents cannot form"));
      }
      absl::StatusOr<PathKind> kind = ClassifyOutputs(it->first, it->second, floating);
      if (!kind.ok()) return kind.status();
      if (*kind == PathKind::kFixed) {
        // Nix does not look at the inputs of a fixed-output derivation.
        absl::StatusOr<Sha256Digest> hash = FixedOutputHash(it->first, it->second);
        if (!hash.ok()) return hash.status();
        input_hashes.emplace(it->first, *hash);
        continue;
      }
      if (stack.size() > static_cast<size_t>(kMaxDerivationDepth)) {
        return absl::InvalidArgumentError(Cat(root.full(), ": its chain of input derivations is longer than ",
                                              kMaxDerivationDepth, " (reached ", input.full(),
                                              "); attest does not follow chains that long"));
      }
      stack.push_back({&it->first, &it->second, 0});
      on_stack.insert(&it->first);
      continue;
    }
    // Every input is hashed: this one can be. Nix hashes an input derivation with its output paths
    // as written (pathDerivationModulo passes maskOutputs = false).
    if (frame.path != &root_it->first) {
      absl::StatusOr<std::map<std::string, std::set<std::string>>> inputs =
          HashedInputs(*frame.path, *frame.drv, input_hashes);
      if (!inputs.ok()) return inputs.status();
      input_hashes.emplace(*frame.path, Sha256(UnparseForHash(*frame.drv, OutputMasking::kKeep, *inputs)));
    }
    on_stack.erase(frame.path);
    stack.pop_back();
  }
  return absl::OkStatus();
}

absl::StatusOr<Sha256Digest> DerivationGraph::HashModulo(const StorePath& drv_path) {
  if (auto it = hashes_.find(drv_path); it != hashes_.end()) return it->second;
  const Derivation* drv = Find(drv_path);
  if (drv == nullptr) {
    return absl::NotFoundError(Cat(drv_path.full(), ": not in the derivation graph (add it first)"));
  }
  absl::StatusOr<PathKind> kind = ClassifyOutputs(drv_path, *drv);
  if (!kind.ok()) return kind.status();
  absl::StatusOr<Sha256Digest> hash;
  if (*kind == PathKind::kFixed) {
    hash = FixedOutputHash(drv_path, *drv);
  } else {
    if (absl::Status s = HashInputsOf(drv_path, OutputKinds::kWithPaths); !s.ok()) return s;
    absl::StatusOr<std::map<std::string, std::set<std::string>>> inputs = HashedInputs(drv_path, *drv, input_hashes_);
    if (!inputs.ok()) return inputs.status();
    hash = Sha256(UnparseForHash(*drv, OutputMasking::kEmpty, *inputs));
  }
  if (!hash.ok()) return hash.status();
  hashes_.emplace(drv_path, *hash);
  return hash;
}

absl::StatusOr<Sha256Digest> DerivationGraph::RealisationHash(const StorePath& drv_path) {
  if (auto it = realisation_hashes_.find(drv_path); it != realisation_hashes_.end()) return it->second;
  const Derivation* drv = Find(drv_path);
  if (drv == nullptr) {
    return absl::NotFoundError(Cat(drv_path.full(), ": not in the derivation graph (add it first)"));
  }
  absl::StatusOr<PathKind> kind = ClassifyOutputs(drv_path, *drv, FloatingOutputs::kHashLikeInputAddressed);
  if (!kind.ok()) return kind.status();
  absl::StatusOr<Sha256Digest> hash;
  if (*kind == PathKind::kFixed) {
    hash = FixedOutputHash(drv_path, *drv);
  } else {
    if (absl::Status s = HashInputsOf(drv_path, OutputKinds::kAny); !s.ok()) return s;
    absl::StatusOr<std::map<std::string, std::set<std::string>>> inputs =
        HashedInputs(drv_path, *drv, any_input_hashes_);
    if (!inputs.ok()) return inputs.status();
    hash = Sha256(UnparseForHash(*drv, OutputMasking::kEmpty, *inputs));
  }
  if (!hash.ok()) return hash.status();
  realisation_hashes_.emplace(drv_path, *hash);
  return hash;
}

absl::StatusOr<std::map<std::string, StorePath>> DerivationGraph::ExpectedOutputPaths(const StorePath& drv_path) {
  const Derivation* drv = Find(drv_path);
  if (drv == nullptr) {
    return absl::NotFoundError(Cat(drv_path.full(), ": not in the derivation graph (add it first)"));
  }
  absl::StatusOr<PathKind> kind = ClassifyOutputs(drv_path, *drv);
  if (!kind.ok()) return kind.status();
  std::map<std::string, StorePath> paths;
  if (*kind == PathKind::kFixed) {
    absl::StatusOr<StorePath> path = FixedOutputPath(drv_path, drv->outputs.front());
    if (!path.ok()) return path.status();
    paths.emplace(drv->outputs.front().name, *std::move(path));
    return paths;
  }
  absl::StatusOr<Sha256Digest> hash = HashModulo(drv_path);
  if (!hash.ok()) return hash.status();
  for (const DerivationOutput& output : drv->outputs) {
    absl::StatusOr<StorePath> path =
        MakeStorePath(Cat("output:", output.name), *hash, OutputPathName(DrvName(drv_path), output.name));
    if (!path.ok()) return absl::InvalidArgumentError(Cat(drv_path.full(), ": ", path.status().message()));
    paths.emplace(output.name, *std::move(path));
  }
  return paths;
}

absl::Status DerivationGraph::CheckOutputPaths(const StorePath& drv_path) {
  absl::StatusOr<std::map<std::string, StorePath>> expected = ExpectedOutputPaths(drv_path);
  if (!expected.ok()) return expected.status();
  const Derivation& drv = *Find(drv_path);
  for (const DerivationOutput& output : drv.outputs) {
    const StorePath& want = expected->at(output.name);
    // ClassifyOutputs let through only outputs with a path.
    if (!output.path || *output.path != want) {
      return absl::InvalidArgumentError(Cat(drv_path.full(), ": output ", output.name, " is written as ",
                                            output.path ? output.path->full() : "\"\"",
                                            " but the derivation gives ", want.full()));
    }
  }
  return absl::OkStatus();
}

}  // namespace attest::consensus
