#include "storage/nar_verifier.h"

#include <bzlib.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <array>
#include <climits>
#include <utility>

#include "consensus/text.h"

namespace attest::storage {
namespace {

using consensus::Cat;

constexpr uint64_t kXzMemoryLimit = uint64_t{128} << 20;
constexpr int kZstdWindowLogMax = 27;  // 128 MiB windows

// What one decoder call did.
struct Step final {
  size_t consumed = 0;
  size_t produced = 0;
};

}  // namespace

// One compressed format, decoded incrementally. Errors carry the problem only; NarVerifier adds where.
class NarVerifier::Decoder {
 public:
  virtual ~Decoder() = default;
  // Decodes from `in` into `out`. Returns how much of each was used. Must make progress when `in` is
  // non-empty or output is pending and `out` has room.
  virtual absl::StatusOr<Step> Decode(std::span<const uint8_t> in, std::span<uint8_t> out) = 0;
  // After the last input: OK when the data ended at the end of a complete stream, else DATA_LOSS.
  virtual absl::Status CheckComplete() const = 0;
};

namespace {

// Where a decoder is between streams. The file is complete only at a boundary after at least one stream.
struct StreamPosition final {
  uint64_t streams_done = 0;
  uint64_t bytes_in_stream = 0;  // compressed bytes consumed since the last stream ended
  bool at_boundary = true;

  void Consumed(size_t n) {
    if (n > 0) {
      at_boundary = false;
      bytes_in_stream += n;
    }
  }
  void StreamEnded() {
    ++streams_done;
    bytes_in_stream = 0;
    at_boundary = true;
  }
  // The error for data that does not start a stream: the file's start, or trailing bytes after one.
  absl::Status NotAStream(std::string_view format, std::string_view detail) const {
    if (streams_done == 0) {
      return absl::DataLossError(Cat("the file is not ", format, " data (", detail, ")"));
    }
    return absl::DataLossError(Cat("trailing data after the end of the ", format, " data (", detail, ")"));
  }
  absl::Status CheckComplete(std::string_view format) const {
    if (at_boundary && streams_done > 0) return absl::OkStatus();
    if (at_boundary) return absl::DataLossError(Cat("the file is empty: no ", format, " data"));
    if (streams_done == 0) {
      return absl::DataLossError(Cat("the ", format, " data ends early, after ", bytes_in_stream,
                                     " bytes (a truncated file?)"));
    }
    return absl::DataLossError(Cat("the ", bytes_in_stream, " bytes after the end of the ", format,
                                   " data are not a complete ", format,
                                   " stream (trailing data, or a truncated file)"));
  }
};

class XzDecoder final : public NarVerifier::Decoder {
 public:
  ~XzDecoder() override { lzma_end(&stream_); }

  absl::Status Start() {
    // No LZMA_CONCATENATED: a stream's end is seen here, so data after it is told apart from corruption.
    lzma_ret ret = lzma_stream_decoder(&stream_, kXzMemoryLimit, 0);
    if (ret == LZMA_MEM_ERROR) return absl::ResourceExhaustedError("cannot allocate the xz decoder");
    if (ret != LZMA_OK) return absl::InternalError(Cat("lzma_stream_decoder failed (", static_cast<int>(ret), ")"));
    restart_ = false;
    return absl::OkStatus();
  }

  absl::StatusOr<Step> Decode(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    if (restart_ && !in.empty()) {
      if (absl::Status s = Start(); !s.ok()) return s;
    }
    if (restart_) return Step{};
    stream_.next_in = in.data();
    stream_.avail_in = in.size();
    stream_.next_out = out.data();
    stream_.avail_out = out.size();
    lzma_ret ret = lzma_code(&stream_, LZMA_RUN);
    Step step{in.size() - stream_.avail_in, out.size() - stream_.avail_out};
    position_.Consumed(step.consumed);
    switch (ret) {
      case LZMA_OK:
      case LZMA_BUF_ERROR:  // no progress possible with what was given: more input needed
      case LZMA_NO_CHECK:
      case LZMA_UNSUPPORTED_CHECK:
        return step;
      case LZMA_STREAM_END:
        position_.StreamEnded();
        restart_ = true;
        return step;
      case LZMA_FORMAT_ERROR:
        return position_.NotAStream("xz", "no xz stream header");
      case LZMA_MEMLIMIT_ERROR:
        return absl::ResourceExhaustedError(Cat("the xz data needs ", (lzma_memusage(&stream_) + (1 << 20) - 1) >> 20,
                                                " MiB of decoder memory, more than the ", kXzMemoryLimit >> 20,
                                                " MiB allowed (compressed with too large a dictionary)"));
      case LZMA_MEM_ERROR:
        return absl::ResourceExhaustedError("cannot allocate memory for the xz decoder");
      case LZMA_OPTIONS_ERROR:
        return absl::DataLossError("corrupt xz data (unsupported options in a header)");
      case LZMA_DATA_ERROR:
        return absl::DataLossError("corrupt xz data");
      default:
        return absl::DataLossError(Cat("corrupt xz data (liblzma error ", static_cast<int>(ret), ")"));
    }
  }

  absl::Status CheckComplete() const override { return position_.CheckComplete("xz"); }

 private:
  lzma_stream stream_ = LZMA_STREAM_INIT;
  StreamPosition position_;
  bool restart_ = true;
};

class Bzip2Decoder final : public NarVerifier::Decoder {
 public:
  ~Bzip2Decoder() override { End(); }

  absl::StatusOr<Step> Decode(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    if (!open_ && !in.empty()) {
      stream_ = bz_stream{};
      int ret = BZ2_bzDecompressInit(&stream_, 0, 0);
      if (ret == BZ_MEM_ERROR) return absl::ResourceExhaustedError("cannot allocate the bzip2 decoder");
      if (ret != BZ_OK) return absl::InternalError(Cat("BZ2_bzDecompressInit failed (", ret, ")"));
      open_ = true;
    }
    if (!open_) return Step{};
    const size_t in_size = std::min<size_t>(in.size(), UINT_MAX);
    const size_t out_size = std::min<size_t>(out.size(), UINT_MAX);
    // libbz2 takes non-const pointers but does not write the input.
    stream_.next_in = const_cast<char*>(reinterpret_cast<const char*>(in.data()));
    stream_.avail_in = static_cast<unsigned>(in_size);
    stream_.next_out = reinterpret_cast<char*>(out.data());
    stream_.avail_out = static_cast<unsigned>(out_size);
    int ret = BZ2_bzDecompress(&stream_);
    Step step{in_size - stream_.avail_in, out_size - stream_.avail_out};
    position_.Consumed(step.consumed);
    switch (ret) {
      case BZ_OK:
        return step;
      case BZ_STREAM_END:
        position_.StreamEnded();
        End();
        return step;
      case BZ_DATA_ERROR_MAGIC:
        return position_.NotAStream("bzip2", "no bzip2 stream header");
      case BZ_MEM_ERROR:
        return absl::ResourceExhaustedError("cannot allocate memory for the bzip2 decoder");
      case BZ_DATA_ERROR:
        return absl::DataLossError("corrupt bzip2 data");
      default:
        return absl::DataLossError(Cat("corrupt bzip2 data (libbz2 error ", ret, ")"));
    }
  }

  absl::Status CheckComplete() const override { return position_.CheckComplete("bzip2"); }

 private:
  void End() {
    if (open_) BZ2_bzDecompressEnd(&stream_);
    open_ = false;
  }

  bz_stream stream_{};
  StreamPosition position_;
  bool open_ = false;
};

class ZstdDecoder final : public NarVerifier::Decoder {
 public:
  ~ZstdDecoder() override { ZSTD_freeDCtx(context_); }

  absl::Status Start() {
    context_ = ZSTD_createDCtx();
    if (context_ == nullptr) return absl::ResourceExhaustedError("cannot allocate the zstd decoder");
    size_t ret = ZSTD_DCtx_setParameter(context_, ZSTD_d_windowLogMax, kZstdWindowLogMax);
    if (ZSTD_isError(ret)) return absl::InternalError(Cat("zstd: ", ZSTD_getErrorName(ret)));
    return absl::OkStatus();
  }

  absl::StatusOr<Step> Decode(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    size_t ret = ZSTD_decompressStream(context_, &output, &input);
    Step step{input.pos, output.pos};
    if (ZSTD_isError(ret)) {
      switch (ZSTD_getErrorCode(ret)) {
        case ZSTD_error_prefix_unknown:
          return position_.NotAStream("zstd", "no zstd frame header");
        case ZSTD_error_frameParameter_windowTooLarge:
          return absl::ResourceExhaustedError(Cat("the zstd data needs a window larger than the ",
                                                  (size_t{1} << kZstdWindowLogMax) >> 20,
                                                  " MiB allowed (compressed with --long or --ultra settings)"));
        case ZSTD_error_memory_allocation:
          return absl::ResourceExhaustedError("cannot allocate memory for the zstd decoder");
        default:
          return absl::DataLossError(Cat("corrupt zstd data (", ZSTD_getErrorName(ret), ")"));
      }
    }
    position_.Consumed(step.consumed);
    // 0: a frame is complete and flushed. A call that did nothing says nothing new (at a boundary,
    // zstd answers a hint for the next frame's header).
    if (ret == 0 && (step.consumed > 0 || step.produced > 0)) position_.StreamEnded();
    return step;
  }

  absl::Status CheckComplete() const override { return position_.CheckComplete("zstd"); }

 private:
  ZSTD_DCtx* context_ = nullptr;
  StreamPosition position_;
};

// "the xz file", or "the file" when it is not compressed.
std::string TheFile(const std::string& compression) {
  return compression == "none" ? "the file" : Cat("the ", compression, " file");
}

}  // namespace

class NarVerifier::Sha256 final {
 public:
  static absl::StatusOr<std::unique_ptr<Sha256>> Create() {
    std::unique_ptr<Sha256> sha(new Sha256());
    if (sha->context_ == nullptr || EVP_DigestInit_ex(sha->context_, EVP_sha256(), nullptr) != 1) {
      return absl::InternalError("OpenSSL could not set up SHA-256 (is libcrypto working?)");
    }
    return sha;
  }
  ~Sha256() { EVP_MD_CTX_free(context_); }

  absl::Status Update(std::span<const uint8_t> bytes) {
    if (bytes.empty()) return absl::OkStatus();
    if (EVP_DigestUpdate(context_, bytes.data(), bytes.size()) != 1) {
      return absl::InternalError("OpenSSL SHA-256 update failed");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<consensus::NarHash> Final() {
    consensus::NarHash::Digest digest{};
    unsigned length = 0;
    if (EVP_DigestFinal_ex(context_, digest.data(), &length) != 1 || length != digest.size()) {
      return absl::InternalError("OpenSSL SHA-256 final failed");
    }
    return consensus::NarHash::FromDigest(digest);
  }

 private:
  Sha256() : context_(EVP_MD_CTX_new()) {}
  EVP_MD_CTX* context_;
};

absl::StatusOr<std::unique_ptr<NarVerifier>> NarVerifier::Create(NarFileExpectation expected) {
  if (expected.compression.empty()) expected.compression = "bzip2";
  if (expected.nar_size == 0) {
    return absl::InvalidArgumentError("NarSize 0: no NAR is empty (the narinfo is malformed)");
  }
  std::unique_ptr<Decoder> decoder;
  const std::string& compression = expected.compression;
  if (compression == "xz") {
    auto xz = std::make_unique<XzDecoder>();
    if (absl::Status s = xz->Start(); !s.ok()) return s;
    decoder = std::move(xz);
  } else if (compression == "bzip2") {
    decoder = std::make_unique<Bzip2Decoder>();
  } else if (compression == "zstd") {
    auto zstd = std::make_unique<ZstdDecoder>();
    if (absl::Status s = zstd->Start(); !s.ok()) return s;
    decoder = std::move(zstd);
  } else if (compression == "none") {
  } else if (compression == "br" || compression == "gzip" || compression == "lz4" || compression == "lzip") {
    return absl::UnimplementedError(Cat("NAR files compressed with \"", compression,
                                        "\" are not verified by this node (it decompresses xz, bzip2, "
                                        "zstd and none); a cache with such files cannot be a source"));
  } else {
    return absl::InvalidArgumentError(Cat("unknown NAR compression ", consensus::QuoteForError(compression),
                                          " (Nix knows xz, bzip2, zstd, br, gzip, lz4, lzip and none)"));
  }
  absl::StatusOr<std::unique_ptr<Sha256>> nar_sha = Sha256::Create();
  if (!nar_sha.ok()) return nar_sha.status();
  std::unique_ptr<Sha256> file_sha;
  if (expected.file_hash.has_value() && decoder != nullptr) {
    absl::StatusOr<std::unique_ptr<Sha256>> sha = Sha256::Create();
    if (!sha.ok()) return sha.status();
    file_sha = *std::move(sha);
  }
  return std::unique_ptr<NarVerifier>(
      new NarVerifier(std::move(expected), std::move(decoder), *std::move(nar_sha), std::move(file_sha)));
}

NarVerifier::NarVerifier(NarFileExpectation expected, std::unique_ptr<Decoder> decoder,
                         std::unique_ptr<Sha256> nar_sha, std::unique_ptr<Sha256> file_sha)
    : expected_(std::move(expected)),
      decoder_(std::move(decoder)),
      nar_sha_(std::move(nar_sha)),
      file_sha_(std::move(file_sha)),
      buffer_(decoder_ != nullptr ? std::make_unique<uint8_t[]>(kBufferBytes) : nullptr) {}

NarVerifier::~NarVerifier() = default;

absl::Status NarVerifier::Feed(std::span<const uint8_t> bytes) {
  if (!failed_.ok()) return failed_;
  if (finished_) return absl::FailedPreconditionError("NarVerifier::Feed after Finish");
  failed_ = FeedUnlatched(bytes);
  return failed_;
}

absl::Status NarVerifier::Finish() {
  if (!failed_.ok()) {
    finished_ = true;
    return failed_;
  }
  if (finished_) return absl::FailedPreconditionError("NarVerifier::Finish called twice");
  finished_ = true;
  failed_ = FinishUnlatched();
  return failed_;
}

absl::Status NarVerifier::TakeNar(std::span<const uint8_t> nar) {
  nar_bytes_ += nar.size();
  if (nar_bytes_ > expected_.nar_size) {
    return absl::DataLossError(Cat("the NAR is longer than its NarSize ", expected_.nar_size,
                                   " (stopped after ", nar_bytes_, " bytes): the source serves other contents"));
  }
  if (absl::Status s = nar_sha_->Update(nar); !s.ok()) return s;
  if (nar_sink_ && !nar.empty()) return nar_sink_(nar);
  return absl::OkStatus();
}

absl::Status NarVerifier::FeedUnlatched(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return absl::OkStatus();
  if (expected_.file_size.has_value() && bytes.size() > *expected_.file_size - file_bytes_) {
    return absl::DataLossError(Cat(TheFile(expected_.compression), " is longer than its FileSize ",
                                   *expected_.file_size, " (", file_bytes_ + bytes.size(), " bytes received)"));
  }
  const uint64_t offset = file_bytes_;
  file_bytes_ += bytes.size();
  if (decoder_ == nullptr) {
    // One byte past NarSize is enough to refuse; the rest is not hashed.
    return TakeNar(bytes.first(static_cast<size_t>(std::min<uint64_t>(bytes.size(), expected_.nar_size - nar_bytes_ + 1))));
  }
  if (file_sha_ != nullptr) {
    if (absl::Status s = file_sha_->Update(bytes); !s.ok()) return s;
  }
  std::span<const uint8_t> in = bytes;
  while (true) {
    // Never more room than one byte past NarSize: a bomb is stopped there, not after a whole buffer.
    const size_t room = static_cast<size_t>(std::min<uint64_t>(kBufferBytes, expected_.nar_size - nar_bytes_ + 1));
    absl::StatusOr<Step> step = decoder_->Decode(in, std::span<uint8_t>(buffer_.get(), room));
    if (!step.ok()) {
      return absl::Status(step.status().code(),
                          Cat(step.status().message(), " (in file bytes ", offset + (bytes.size() - in.size()),
                              " to ", offset + bytes.size(), ")"));
    }
    in = in.subspan(step->consumed);
    if (absl::Status s = TakeNar(std::span<const uint8_t>(buffer_.get(), step->produced)); !s.ok()) return s;
    // Done when the input is used up and the decoder had room to spare (nothing left pending in it).
    if (in.empty() && step->produced < room) return absl::OkStatus();
    if (step->consumed == 0 && step->produced == 0 && !in.empty()) {
      return absl::InternalError(Cat("the ", expected_.compression, " decoder made no progress"));
    }
  }
}

absl::Status NarVerifier::FinishUnlatched() {
  if (expected_.file_size.has_value() && file_bytes_ < *expected_.file_size) {
    return absl::DataLossError(Cat(TheFile(expected_.compression), " is shorter than its FileSize ",
                                   *expected_.file_size, " (", file_bytes_, " bytes): a truncated transfer?"));
  }
  if (decoder_ != nullptr) {
    if (absl::Status s = decoder_->CheckComplete(); !s.ok()) return s;
  }
  if (nar_bytes_ < expected_.nar_size) {
    return absl::DataLossError(Cat("the NAR is shorter than its NarSize ", expected_.nar_size, " (",
                                   nar_bytes_, " bytes)"));
  }
  absl::StatusOr<consensus::NarHash> nar_hash = nar_sha_->Final();
  if (!nar_hash.ok()) return nar_hash.status();
  if (!(*nar_hash == expected_.nar_hash)) {
    return absl::DataLossError(Cat("NAR hash mismatch: the narinfo says ", expected_.nar_hash.ToNix32(),
                                   ", the NAR hashes to ", nar_hash->ToNix32(),
                                   ": the source serves other contents"));
  }
  if (expected_.file_hash.has_value()) {
    consensus::NarHash file_hash = *nar_hash;
    if (file_sha_ != nullptr) {
      absl::StatusOr<consensus::NarHash> h = file_sha_->Final();
      if (!h.ok()) return h.status();
      file_hash = *h;
    }
    if (!(file_hash == *expected_.file_hash)) {
      return absl::DataLossError(Cat("FileHash mismatch: the narinfo says ", expected_.file_hash->ToNix32(),
                                     ", ", TheFile(expected_.compression), " hashes to ", file_hash.ToNix32(),
                                     " (the NAR inside is right: the narinfo and the file disagree)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace attest::storage
