// NAR serialisation of file trees (client::DumpNar / HashNar): the input describes a small tree
// (regular files with any bytes and names, executables, symlinks with any target, nested
// directories), which is created in a temporary directory and dumped. The output must equal the
// NAR an independent encoder here writes from the description (so entry order, padding and the
// executable flag are checked), and HashNar must agree with it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "client/nar.h"
#include "consensus/sha256.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

struct Tree {
  enum class Type { kRegular, kSymlink, kDirectory } type = Type::kRegular;
  std::string contents;  // or the symlink's target
  bool executable = false;
  std::map<std::string, Tree> entries;  // std::string orders bytes as unsigned, as NAR does
};

Tree Describe(FuzzedDataProvider& input, int depth) {
  Tree tree;
  tree.type = static_cast<Tree::Type>(input.ConsumeIntegralInRange<int>(0, depth < 3 ? 2 : 1));
  switch (tree.type) {
    case Tree::Type::kRegular:
      tree.executable = input.ConsumeBool();
      tree.contents = input.ConsumeRandomLengthString(300);
      break;
    case Tree::Type::kSymlink:
      tree.contents = input.ConsumeRandomLengthString(64);
      tree.contents.erase(std::remove(tree.contents.begin(), tree.contents.end(), '\0'), tree.contents.end());
      if (tree.contents.empty()) tree.contents = "target";
      break;
    case Tree::Type::kDirectory: {
      const int count = input.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < count; ++i) {
        std::string name = input.ConsumeRandomLengthString(16);
        for (char& c : name) {
          if (c == '/' || c == '\0') c = '_';
        }
        if (name.empty() || name == "." || name == ".." || tree.entries.contains(name)) continue;
        tree.entries.emplace(name, Describe(input, depth + 1));
      }
      break;
    }
  }
  return tree;
}

void Create(const Tree& tree, const std::string& path) {
  switch (tree.type) {
    case Tree::Type::kRegular: {
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, tree.executable ? 0755 : 0644);
      if (fd < 0 || ::write(fd, tree.contents.data(), tree.contents.size()) !=
                        static_cast<ssize_t>(tree.contents.size())) {
        std::abort();
      }
      ::close(fd);
      break;
    }
    case Tree::Type::kSymlink:
      if (::symlink(tree.contents.c_str(), path.c_str()) != 0) std::abort();
      break;
    case Tree::Type::kDirectory:
      if (::mkdir(path.c_str(), 0755) != 0) std::abort();
      for (const auto& [name, entry] : tree.entries) Create(entry, path + "/" + name);
      break;
  }
}

void Str(std::string& out, std::string_view s) {
  uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  out.append(s);
  out.append((8 - s.size() % 8) % 8, '\0');
}

void Encode(const Tree& tree, std::string& out) {
  Str(out, "(");
  Str(out, "type");
  switch (tree.type) {
    case Tree::Type::kRegular:
      Str(out, "regular");
      if (tree.executable) {
        Str(out, "executable");
        Str(out, "");
      }
      Str(out, "contents");
      Str(out, tree.contents);
      break;
    case Tree::Type::kSymlink:
      Str(out, "symlink");
      Str(out, "target");
      Str(out, tree.contents);
      break;
    case Tree::Type::kDirectory:
      Str(out, "directory");
      for (const auto& [name, entry] : tree.entries) {
        Str(out, "entry");
        Str(out, "(");
        Str(out, "name");
        Str(out, name);
        Str(out, "node");
        Encode(entry, out);
        Str(out, ")");
      }
      break;
  }
  Str(out, ")");
}

// On a memory file system when there is one: every input creates and removes a tree, and on a disk
// that, not the code under test, bounds the rate (about 30 executions a second here, against about
// 1,200 on /dev/shm).
const std::string& WorkDir() {
  static const std::string dir = [] {
    std::string pattern = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm/attest-fuzz-nar-XXXXXX"
                                                         : "/tmp/attest-fuzz-nar-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    return pattern;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest;
  FuzzedDataProvider input(data, size);
  const Tree tree = Describe(input, 0);
  const std::string root = WorkDir() + "/t";
  std::filesystem::remove_all(root);
  Create(tree, root);

  std::string expected;
  Str(expected, "nix-archive-1");
  Encode(tree, expected);
  std::string dumped;
  const absl::Status status = client::DumpNar(root, [&](std::string_view chunk) {
    dumped.append(chunk);
    return absl::OkStatus();
  });
  FUZZ_CHECK(status.ok(), status.ToString());
  FUZZ_CHECK(dumped == expected, "DumpNar differs from the reference encoding");
  absl::StatusOr<client::NarDigest> digest = client::HashNar(root);
  FUZZ_CHECK(digest.ok(), digest.status().ToString());
  FUZZ_CHECK(digest->size == expected.size(), "HashNar size");
  FUZZ_CHECK(digest->hash.digest() == consensus::Sha256(expected), "HashNar hash");
  std::filesystem::remove_all(root);
  return 0;
}
