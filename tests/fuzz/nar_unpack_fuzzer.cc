// A NAR from another party's binary cache unpacked into a directory (storage::NarUnpacker), the way a
// dispute's two sides are unpacked for diffoscope. Properties: an accepted NAR leaves exactly its tree
// at the target, a refused one leaves nothing, and nothing ever appears beside the target.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "storage/nar_unpack.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// The directory the targets are made in, once per process (removed by the OS's temp cleaning; each
// input's tree is removed right after it is checked).
const std::string& WorkDirectory() {
  static const std::string directory = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "nar-unpack-fuzz.XXXXXX").string();
    FUZZ_CHECK(::mkdtemp(pattern.data()) != nullptr, pattern);
    return pattern;
  }();
  return directory;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::storage;
  const std::string& directory = WorkDirectory();
  const std::string target = directory + "/out";
  // Small limits, so the fuzzer reaches them.
  UnpackLimits limits{.max_file_bytes = 1 << 16, .max_entries = 64, .max_depth = 8, .max_name_bytes = 64};
  absl::StatusOr<std::unique_ptr<NarUnpacker>> unpacker = NarUnpacker::Create(target, limits);
  FUZZ_CHECK(unpacker.ok(), std::string(unpacker.status().message()));
  // Fed in two pieces, so a boundary falls inside some token.
  const size_t half = size / 2;
  absl::Status status = (*unpacker)->Feed(std::span<const uint8_t>(data, half));
  if (status.ok()) status = (*unpacker)->Feed(std::span<const uint8_t>(data + half, size - half));
  if (status.ok()) status = (*unpacker)->Finish();
  unpacker->reset();  // removes the tree unless Finish succeeded
  std::error_code error;
  const bool exists = std::filesystem::symlink_status(target, error).type() != std::filesystem::file_type::not_found;
  FUZZ_CHECK(exists == status.ok(), std::string(status.message()));
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    FUZZ_CHECK(entry.path() == target, entry.path().string());
    ++entries;
  }
  FUZZ_CHECK(entries == (status.ok() ? 1u : 0u), std::string(status.message()));
  if (status.ok()) FUZZ_CHECK(RemoveTree(target).ok(), target);
  return 0;
}
