#include "storage/nar_verifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "consensus/sha256.h"
#include "consensus/text.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using consensus::AsBytes;

// A NAR string: 8-byte little-endian length, the bytes, zero padding to a multiple of 8.
void AppendNarString(std::string& out, std::string_view s) {
  uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(s);
  out.append((8 - s.size() % 8) % 8, '\0');
}

// The NAR of one regular (non-executable) file, as `nix-store --dump` writes it.
std::string NarOfRegularFile(std::string_view contents) {
  std::string nar;
  for (std::string_view token : {"nix-archive-1", "(", "type", "regular", "contents"}) AppendNarString(nar, token);
  AppendNarString(nar, contents);
  AppendNarString(nar, ")");
  return nar;
}

// About 300 KB that compress but not to nothing: several buffers' worth of NAR in every format.
std::string SampleContents() {
  std::string s;
  uint32_t x = 12345;
  for (int i = 0; s.size() < 300'000; ++i) {
    s += "line " + std::to_string(i) + ": ";
    for (int j = 0; j < 16; ++j) {
      x = x * 1103515245 + 12345;
      s.push_back(static_cast<char>('a' + (x >> 16) % 26));
    }
    s.push_back('\n');
  }
  return s;
}

consensus::NarHash HashOf(std::string_view bytes) { return consensus::NarHash::FromDigest(consensus::Sha256(bytes)); }

// Compresses with the real command-line tool.
std::string Compress(const std::string& compression, const std::string& data) {
  std::vector<std::string> argv;
  if (compression == "xz") argv = {"xz", "-c", "-T1"};
  if (compression == "bzip2") argv = {"bzip2", "-c"};
  if (compression == "zstd") argv = {"zstd", "-q", "-c"};
  if (compression == "none") return data;
  testing::RunResult r = testing::Run(argv, data);
  EXPECT_EQ(r.exit_code, 0) << compression << ": " << r.err;
  return r.out;
}

// Runs a shell pipeline and returns its stdout (bombs made from /dev/zero without holding them here).
std::string Shell(const std::string& command) {
  testing::RunResult r = testing::Run({"sh", "-c", command}, "", std::chrono::seconds(300));
  EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
  return r.out;
}

NarFileExpectation Expect(const std::string& compression, std::string_view nar) {
  NarFileExpectation e;
  e.compression = compression;
  e.nar_hash = HashOf(nar);
  e.nar_size = nar.size();
  return e;
}

// Feeds `file` in pieces of `piece` bytes, then finishes; the first error.
absl::Status VerifyInPieces(NarVerifier& verifier, std::string_view file, size_t piece) {
  for (size_t at = 0; at < file.size(); at += piece) {
    std::string_view part = file.substr(at, piece);
    if (absl::Status s = verifier.Feed(AsBytes(part)); !s.ok()) return s;
  }
  return verifier.Finish();
}

absl::Status Verify(const NarFileExpectation& expected, std::string_view file, size_t piece = 65536) {
  absl::StatusOr<std::unique_ptr<NarVerifier>> v = NarVerifier::Create(expected);
  if (!v.ok()) return v.status();
  return VerifyInPieces(**v, file, piece);
}

const std::vector<std::string> kCompressed = {"xz", "bzip2", "zstd"};
const std::vector<std::string> kAll = {"xz", "bzip2", "zstd", "none"};

class NarVerifierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    nar_ = new std::string(NarOfRegularFile(SampleContents()));
    files_ = new std::map<std::string, std::string>();
    for (const std::string& c : kAll) (*files_)[c] = Compress(c, *nar_);
  }
  static void TearDownTestSuite() {
    delete nar_;
    delete files_;
  }
  static const std::string& Nar() { return *nar_; }
  static const std::string& File(const std::string& c) { return files_->at(c); }

 private:
  static std::string* nar_;
  static std::map<std::string, std::string>* files_;
};
std::string* NarVerifierTest::nar_ = nullptr;
std::map<std::string, std::string>* NarVerifierTest::files_ = nullptr;

TEST_F(NarVerifierTest, HandWrittenNarIsWhatNixDumps) {
  testing::TempDir dir;
  std::string contents = "hello, world\nsecond line";
  testing::WriteFileOrDie(dir.File("f"), contents);
  testing::RunResult r = testing::Run({"nix-store", "--dump", dir.File("f")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, NarOfRegularFile(contents));
  EXPECT_TRUE(Verify(Expect("none", r.out), r.out).ok());
}

TEST_F(NarVerifierTest, EachCompressionVerifiesInAnyPieceSize) {
  for (const std::string& c : kAll) {
    const std::string& file = File(c);
    if (c != "none") {
      ASSERT_LT(file.size(), Nar().size() / 2) << c;  // really compressed
    }
    for (size_t piece : {size_t{1}, size_t{7}, size_t{65536}, file.size()}) {
      NarFileExpectation e = Expect(c, Nar());
      e.file_size = file.size();
      e.file_hash = HashOf(file);
      absl::StatusOr<std::unique_ptr<NarVerifier>> v = NarVerifier::Create(e);
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_TRUE(VerifyInPieces(**v, file, piece).ok()) << c << " in pieces of " << piece;
      EXPECT_EQ((*v)->nar_bytes(), Nar().size());
      EXPECT_EQ((*v)->file_bytes(), file.size());
    }
    // Without FileHash and FileSize, too.
    EXPECT_TRUE(Verify(Expect(c, Nar()), file).ok()) << c;
  }
}

TEST_F(NarVerifierTest, EmptyPiecesAreHarmless) {
  for (const std::string& c : kAll) {
    auto v = NarVerifier::Create(Expect(c, Nar()));
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE((*v)->Feed({}).ok());
    ASSERT_TRUE((*v)->Feed(AsBytes(File(c))).ok());
    ASSERT_TRUE((*v)->Feed({}).ok());
    EXPECT_TRUE((*v)->Finish().ok()) << c;
  }
}

TEST_F(NarVerifierTest, MissingCompressionMeansBzip2AsNixReadsIt) {
  auto v = NarVerifier::Create(Expect("", Nar()));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)->compression(), "bzip2");
  EXPECT_TRUE(VerifyInPieces(**v, File("bzip2"), 4096).ok());
}

TEST_F(NarVerifierTest, ConcatenatedStreamsAreOneFile) {
  std::string first = Nar().substr(0, 100'000);
  std::string second = Nar().substr(100'000);
  for (const std::string& c : kCompressed) {
    std::string file = Compress(c, first) + Compress(c, second);
    EXPECT_TRUE(Verify(Expect(c, Nar()), file, 1000).ok()) << c;
  }
}

TEST_F(NarVerifierTest, WrongHashIsDataLossNamingBoth) {
  for (const std::string& c : kAll) {
    NarFileExpectation e = Expect(c, Nar());
    consensus::NarHash actual = e.nar_hash;
    e.nar_hash = HashOf("other contents");
    absl::Status s = Verify(e, File(c));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
    EXPECT_NE(s.message().find(e.nar_hash.ToNix32()), std::string_view::npos) << s;
    EXPECT_NE(s.message().find(actual.ToNix32()), std::string_view::npos) << s;
  }
}

TEST_F(NarVerifierTest, ShortNarIsDataLossAtFinish) {
  for (const std::string& c : kAll) {
    NarFileExpectation e = Expect(c, Nar());
    e.nar_size += 1;
    auto v = NarVerifier::Create(e);
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE((*v)->Feed(AsBytes(File(c))).ok()) << c;
    absl::Status s = (*v)->Finish();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c;
    EXPECT_NE(s.message().find("shorter than its NarSize"), std::string_view::npos) << s;
  }
}

TEST_F(NarVerifierTest, LongNarIsRefusedWhileFeedingAtOneBytePastNarSize) {
  for (const std::string& c : kAll) {
    NarFileExpectation e = Expect(c, Nar());
    e.nar_size = 100'000;
    auto v = NarVerifier::Create(e);
    ASSERT_TRUE(v.ok());
    absl::Status s = (*v)->Feed(AsBytes(File(c)));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
    EXPECT_NE(s.message().find("longer than its NarSize 100000"), std::string_view::npos) << s;
    EXPECT_EQ((*v)->nar_bytes(), 100'001u) << c;
    // The error sticks.
    EXPECT_EQ((*v)->Feed(AsBytes(std::string_view("x"))), s);
    EXPECT_EQ((*v)->Finish(), s);
  }
}

// 1 GiB of zeros in 1,024 concatenated streams of 1 MiB, and 64 MiB of zeros in one stream, against a
// NarSize of 1 MiB: refused after NarSize + 1 bytes, having read only the first part of the file.
TEST_F(NarVerifierTest, DecompressionBombStopsAtNarSize) {
  const std::string mib_of_zeros(1 << 20, '\0');
  for (const std::string& c : kCompressed) {
    std::string one = Compress(c, mib_of_zeros);
    std::string concatenated;
    for (int i = 0; i < 1024; ++i) concatenated += one;
    std::string tool = c == "xz" ? "xz -c -T1 -0" : c == "bzip2" ? "bzip2 -c -1" : "zstd -q -c -1";
    std::string single = Shell("head -c 67108864 /dev/zero | " + tool);
    for (const std::string* bomb : {&concatenated, &single}) {
      NarFileExpectation e;
      e.compression = c;
      e.nar_hash = HashOf("");
      e.nar_size = 1 << 20;
      auto v = NarVerifier::Create(e);
      ASSERT_TRUE(v.ok());
      absl::Status s = VerifyInPieces(**v, *bomb, 4096);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
      EXPECT_NE(s.message().find("longer than its NarSize"), std::string_view::npos) << s;
      EXPECT_EQ((*v)->nar_bytes(), (1u << 20) + 1) << c;
      // Stopped early: not even a quarter of the compressed file was read.
      EXPECT_LT((*v)->file_bytes(), bomb->size() / 4 + 4096) << c << " of " << bomb->size() << " bytes";
    }
  }
}

TEST_F(NarVerifierTest, TheNarSinkReceivesExactlyTheDecompressedNar) {
  for (const std::string& c : kAll) {
    auto v = NarVerifier::Create(Expect(c, Nar()));
    ASSERT_TRUE(v.ok()) << c;
    std::string received;
    (*v)->SetNarSink([&](std::span<const uint8_t> bytes) {
      received.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      return absl::OkStatus();
    });
    EXPECT_TRUE(VerifyInPieces(**v, File(c), 7777).ok()) << c;
    EXPECT_EQ(received, Nar()) << c;
  }
}

TEST_F(NarVerifierTest, TheNarSinkNeverGetsBytesPastNarSizeAndItsErrorsEndTheTransfer) {
  // A NAR one byte longer than promised: the sink sees at most NarSize bytes.
  NarFileExpectation e = Expect("none", Nar());
  e.nar_size -= 1;
  auto v = NarVerifier::Create(e);
  ASSERT_TRUE(v.ok());
  uint64_t sunk = 0;
  (*v)->SetNarSink([&](std::span<const uint8_t> bytes) {
    sunk += bytes.size();
    return absl::OkStatus();
  });
  EXPECT_EQ(VerifyInPieces(**v, File("none"), 4096).code(), absl::StatusCode::kDataLoss);
  EXPECT_LE(sunk, e.nar_size);
  // A failing sink (a full disk) ends the transfer with its own error.
  auto w = NarVerifier::Create(Expect("xz", Nar()));
  ASSERT_TRUE(w.ok());
  (*w)->SetNarSink([](std::span<const uint8_t>) { return absl::UnavailableError("disk full"); });
  absl::Status s = VerifyInPieces(**w, File("xz"), 4096);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*w)->Finish().code(), absl::StatusCode::kUnavailable) << "the error is latched";
}

TEST_F(NarVerifierTest, CorruptByteInTheMiddleIsDataLoss) {
  for (const std::string& c : kAll) {
    std::string file = File(c);
    file[file.size() / 2] ^= 0x55;
    absl::Status s = Verify(Expect(c, Nar()), file, 1000);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
  }
}

TEST_F(NarVerifierTest, TruncatedFileIsDataLoss) {
  for (const std::string& c : kCompressed) {
    absl::Status s = Verify(Expect(c, Nar()), std::string_view(File(c)).substr(0, File(c).size() / 2));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
    EXPECT_NE(s.message().find("ends early"), std::string_view::npos) << s;
  }
}

TEST_F(NarVerifierTest, TrailingGarbageIsDataLoss) {
  const std::string long_garbage = "this is not a compressed stream, just bytes after the end";
  for (const std::string& c : kCompressed) {
    // Long garbage is seen while feeding; three bytes (less than any header) at Finish.
    for (const std::string& garbage : {long_garbage, std::string("abc")}) {
      auto v = NarVerifier::Create(Expect(c, Nar()));
      ASSERT_TRUE(v.ok());
      absl::Status s = VerifyInPieces(**v, File(c) + garbage, 7);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
      EXPECT_NE(s.message().find("after the end of the " + c + " data"), std::string_view::npos) << s;
    }
  }
  absl::Status s = Verify(Expect("none", Nar()), Nar() + long_garbage);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

TEST_F(NarVerifierTest, DataInAnotherFormatIsDataLoss) {
  for (const std::string& c : kCompressed) {
    const std::string& other = File(c == "xz" ? "zstd" : "xz");
    for (const std::string* file : {&Nar(), &other}) {
      absl::Status s = Verify(Expect(c, Nar()), *file);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
      EXPECT_NE(s.message().find("not " + c + " data"), std::string_view::npos) << s;
    }
  }
}

TEST_F(NarVerifierTest, EmptyFileIsDataLoss) {
  for (const std::string& c : kAll) {
    absl::Status s = Verify(Expect(c, Nar()), "");
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
  }
}

TEST_F(NarVerifierTest, UnsupportedAndUnknownCompressionsAreRefused) {
  for (std::string c : {"br", "gzip", "lz4", "lzip"}) {
    absl::StatusOr<std::unique_ptr<NarVerifier>> v = NarVerifier::Create(Expect(c, Nar()));
    EXPECT_EQ(v.status().code(), absl::StatusCode::kUnimplemented) << c;
    EXPECT_NE(v.status().message().find("\"" + c + "\""), std::string_view::npos) << v.status();
  }
  for (std::string c : {"rar", "XZ", "xz "}) {
    absl::StatusOr<std::unique_ptr<NarVerifier>> v = NarVerifier::Create(Expect(c, Nar()));
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << c;
    EXPECT_NE(v.status().message().find("unknown NAR compression"), std::string_view::npos) << v.status();
  }
  NarFileExpectation zero = Expect("xz", Nar());
  zero.nar_size = 0;
  EXPECT_EQ(NarVerifier::Create(zero).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NarVerifierTest, FileSizeMismatchIsDataLoss) {
  for (const std::string& c : kAll) {
    const std::string& file = File(c);
    NarFileExpectation smaller = Expect(c, Nar());
    smaller.file_size = file.size() - 1;
    auto v = NarVerifier::Create(smaller);
    ASSERT_TRUE(v.ok());
    absl::Status s = (*v)->Feed(AsBytes(file));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
    EXPECT_NE(s.message().find("longer than its FileSize"), std::string_view::npos) << s;
    EXPECT_EQ((*v)->nar_bytes(), 0u) << "refused before decompressing";

    NarFileExpectation larger = Expect(c, Nar());
    larger.file_size = file.size() + 1;
    s = Verify(larger, file);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
    EXPECT_NE(s.message().find("shorter than its FileSize"), std::string_view::npos) << s;
  }
}

TEST_F(NarVerifierTest, FileHashMismatchIsDataLoss) {
  for (const std::string& c : kAll) {
    NarFileExpectation e = Expect(c, Nar());
    e.file_hash = HashOf("another file");
    absl::Status s = Verify(e, File(c));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c << ": " << s;
    EXPECT_NE(s.message().find("FileHash mismatch"), std::string_view::npos) << s;
    EXPECT_NE(s.message().find(HashOf(File(c)).ToNix32()), std::string_view::npos) << s;
  }
}

TEST_F(NarVerifierTest, CallsAfterFinishAreRefused) {
  auto v = NarVerifier::Create(Expect("zstd", Nar()));
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE((*v)->Feed(AsBytes(File("zstd"))).ok());
  ASSERT_TRUE((*v)->Finish().ok());
  EXPECT_EQ((*v)->Feed(AsBytes(std::string_view("x"))).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*v)->Finish().code(), absl::StatusCode::kFailedPrecondition);
}

uint32_t Crc32(std::string_view bytes) {
  uint32_t crc = 0xffffffff;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320 & (0u - (crc & 1)));
  }
  return ~crc;
}

TEST_F(NarVerifierTest, XzNeedingTooMuchDecoderMemoryIsResourceExhausted) {
  // The xz file with its first block header saying LZMA2 with a 192 MiB dictionary (property byte 31),
  // over the 128 MiB limit; compressing with such a dictionary would need gigabytes, so it is patched.
  std::string file = File("xz");
  const size_t header = 12;  // the stream header; the block header follows
  const size_t block_header_size = (static_cast<unsigned char>(file[header]) + 1) * 4;
  size_t props = file.find(std::string("\x21\x01", 2), header);
  ASSERT_LT(props, header + block_header_size);
  file[props + 2] = 31;
  uint32_t crc = Crc32(std::string_view(file).substr(header, block_header_size - 4));
  for (int i = 0; i < 4; ++i) file[header + block_header_size - 4 + i] = static_cast<char>(crc >> (8 * i));
  absl::Status s = Verify(Expect("xz", Nar()), file);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("193 MiB"), std::string_view::npos) << s;
}

}  // namespace
}  // namespace attest::storage
