// NarVerifier throughput per compression: how fast a node can check a NAR file while relaying it.
//
// Makes a NAR of one regular file (default 256 MiB of mixed content: text, random bytes, repeated
// records, zeros; it compresses about as well as a store path's binaries and data), compresses it with
// the real tools (xz, bzip2, zstd, as caches make them), holds each file in memory, and feeds it to a
// NarVerifier in 1 MiB pieces, as a relay would hand over what arrives. Prints, per compression, the
// median wall and CPU time of `--runs` runs, the NAR MB/s (per wall and per CPU second) and file MB/s,
// and for reference the tool's own decompression (`xz -dc FILE > /dev/null`, wall time) of the same file.
//
//   nar_verify_bench [--size-mib 256] [--runs 3] [--dir DIR]
//
// With --dir the NAR and compressed files are kept there and reused (compressing 256 MiB with xz takes
// a minute or two); without, they go to a fresh directory under $TMPDIR (or /var/tmp), deleted at the end.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/bench_support.h"
#include "consensus/sha256.h"
#include "storage/nar_verifier.h"

namespace attest::bench {
namespace {

struct Args {
  int64_t size_mib = 256;
  int runs = 3;
  std::string dir;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "nar_verify_bench: %s\n", message.c_str());
  std::exit(1);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Die("missing value after " + flag);
    const std::string value = argv[i + 1];
    if (flag == "--size-mib") args.size_mib = std::atoll(value.c_str());
    else if (flag == "--runs") args.runs = std::atoi(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else Die("unknown flag " + flag + " (usage: nar_verify_bench [--size-mib 256] [--runs 3] [--dir DIR])");
  }
  if (args.size_mib <= 0 || args.runs <= 0) Die("--size-mib and --runs must be positive");
  return args;
}

void AppendNarString(std::string& out, std::string_view s) {
  uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(s);
  out.append((8 - s.size() % 8) % 8, '\0');
}

// File contents in 4 KiB blocks of four kinds, chosen pseudo-randomly.
std::string MixedContents(uint64_t size) {
  std::string s;
  s.reserve(size);
  uint64_t x = 0x9e3779b97f4a7c15;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  while (s.size() < size) {
    const size_t end = std::min<uint64_t>(size, s.size() + 4096);
    switch (next() % 4) {
      case 0:  // text
        while (s.size() < end) {
          s += "word";
          s += std::to_string(next() % 5000);
          s.push_back(next() % 8 == 0 ? '\n' : ' ');
        }
        break;
      case 1:  // random bytes
        while (s.size() < end) s.push_back(static_cast<char>(next()));
        break;
      case 2: {  // records with a few changing fields
        uint32_t i = 0;
        while (s.size() < end) {
          char record[16] = {'R', 'E', 'C', 0, static_cast<char>(i), static_cast<char>(i >> 8), 0, 0,
                             static_cast<char>(next() % 4), 0, 0, 0, 1, 0, 0, 0};
          s.append(record, sizeof record);
          ++i;
        }
        break;
      }
      default:
        s.append(end - s.size(), '\0');
    }
    s.resize(end);
  }
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void Shell(const std::string& command) {
  if (std::system(command.c_str()) != 0) Die("failed: " + command);
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  const bool keep = !dir.empty();
  if (!keep) {
    const char* tmp = std::getenv("TMPDIR");
    dir = std::string(tmp != nullptr ? tmp : "/var/tmp") + "/nar_verify_bench." + std::to_string(getpid());
  }
  std::filesystem::create_directories(dir);
  const std::string marker = dir + "/size-mib-" + std::to_string(args.size_mib);
  const std::string nar_path = dir + "/nar";
  if (!std::filesystem::exists(marker)) {
    std::fprintf(stderr, "making a %lld MiB NAR and compressing it (xz -6 -T1, bzip2 -9, zstd -3) in %s\n",
                 static_cast<long long>(args.size_mib), dir.c_str());
    std::string nar;
    for (std::string_view token : {"nix-archive-1", "(", "type", "regular", "contents"}) AppendNarString(nar, token);
    AppendNarString(nar, MixedContents(static_cast<uint64_t>(args.size_mib) << 20));
    AppendNarString(nar, ")");
    std::ofstream(nar_path, std::ios::binary).write(nar.data(), static_cast<std::streamsize>(nar.size()));
    Shell("xz -6 -T1 -c " + nar_path + " > " + nar_path + ".xz");
    Shell("bzip2 -9 -c " + nar_path + " > " + nar_path + ".bz2");
    Shell("zstd -3 -q -c " + nar_path + " > " + nar_path + ".zst");
    std::ofstream(marker) << "";
  }
  const std::string nar = ReadFile(nar_path);
  const consensus::NarHash nar_hash = consensus::NarHash::FromDigest(consensus::Sha256(nar));
  std::printf("NAR: %.1f MiB, %s\n", nar.size() / 1048576.0, nar_hash.ToNix32().c_str());
  // MB/s per CPU second is the steadier figure on a shared machine; per wall second what a client sees.
  std::printf("%-6s %9s %7s %8s %7s %10s %14s %10s %14s\n", "format", "file MiB", "ratio", "wall s", "cpu s",
              "NAR MB/s", "NAR MB/cpu-s", "file MB/s", "tool -dc MB/s");

  struct Format {
    std::string compression, path, tool;
  };
  const std::vector<Format> formats = {{"none", nar_path, "cat"},
                                       {"xz", nar_path + ".xz", "xz -dc"},
                                       {"bzip2", nar_path + ".bz2", "bzip2 -dc"},
                                       {"zstd", nar_path + ".zst", "zstd -dc -q"}};
  for (const Format& format : formats) {
    const std::string file = format.compression == "none" ? nar : ReadFile(format.path);
    std::vector<double> walls, cpus, tools;
    for (int run = 0; run < args.runs; ++run) {
      storage::NarFileExpectation expected;
      expected.compression = format.compression;
      expected.nar_hash = nar_hash;
      expected.nar_size = nar.size();
      expected.file_size = file.size();
      auto verifier = storage::NarVerifier::Create(expected);
      if (!verifier.ok()) Die(verifier.status().ToString());
      const double cpu0 = CpuSeconds();
      const auto start = std::chrono::steady_clock::now();
      absl::Status status;
      const std::string_view view(file);
      for (size_t at = 0; at < view.size() && status.ok(); at += 1 << 20) {
        std::string_view piece = view.substr(at, 1 << 20);
        status = (*verifier)->Feed(std::span(reinterpret_cast<const uint8_t*>(piece.data()), piece.size()));
      }
      if (status.ok()) status = (*verifier)->Finish();
      walls.push_back(SecondsSince(start));
      cpus.push_back(CpuSeconds() - cpu0);
      if (!status.ok()) Die(format.compression + ": " + status.ToString());

      const auto tool_start = std::chrono::steady_clock::now();
      Shell(format.tool + " " + format.path + " > /dev/null");
      tools.push_back(SecondsSince(tool_start));
    }
    const double wall = Median(walls);
    const double cpu = Median(cpus);
    std::printf("%-6s %9.1f %7.2f %8.3f %7.3f %10.0f %14.0f %10.0f %14.0f\n", format.compression.c_str(),
                file.size() / 1048576.0, static_cast<double>(nar.size()) / file.size(), wall, cpu,
                nar.size() / wall / 1e6, nar.size() / cpu / 1e6, file.size() / wall / 1e6,
                nar.size() / Median(tools) / 1e6);
    std::fflush(stdout);
  }
  if (!keep) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
