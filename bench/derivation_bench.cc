// Derivation storage: bytes per stored .drv file, deduplicated across builders, on a closure shaped like
// a real stdenv build.
//
// nixpkgs is not at hand, so the closure is SYNTHETIC: this program writes a Nix expression shaped like
// nixpkgs' Linux stdenv and a package set on top of it, and real Nix (nix-instantiate, isolated: its own
// NIX_CONF_DIR, HOME, caches, a chroot store under the scratch directory) writes the .drv files:
//   - bootstrap: two fixed-output fetches with `builtin:fetchurl` (a busybox, a tools tarball) and the
//     derivation that unpacks them;
//   - stages 0 to 4: a stdenv per stage (setup script as an input source, preHook text, initial path)
//     and, in stages 1 to 4, a rebuild of part of the toolchain (binutils, gcc, glibc, coreutils, ...)
//     with the previous stage's stdenv, bintools and cc wrappers per stage; their sources are
//     fixed-output `builtin:fetchurl` derivations shared between stages;
//   - packages (--packages, 300 by default) on the final stdenv, each with a fixed-output source
//     fetched through the package set's curl (long impureEnvVars and mirror lists, as nixpkgs' fetchurl
//     writes), 0 to 6 libraries (the .dev output of multi-output ones) and 1 to 3 build tools as inputs,
//     5 to 24 configure flags (some naming input paths), nixpkgs' empty dependency variables, a third of
//     them with several outputs, some with patches (input sources), and hook scripts (preConfigure,
//     postInstall, postPatch) of 1 to 4 KB;
//   - one top derivation listing every package's outputs (like a NixOS system-path), whose output the
//     builder attests.
// The .drv files of the top derivation's closure are then sent to a DerivationIntake on a real
// SqliteAttestationStore in this process (the node's code path for Rebuilds.SubmitDerivations), as
// builder A of operator a after attesting the top output, then as builder B of operator b (its own
// attestation first): B's MissingDerivations must find nothing missing and its full send must add
// nothing. Database growth is the file size after a WAL checkpoint (TRUNCATE), with the store closed.
//
//   derivation_bench [--packages 300] [--seed 1] [--dir DIR] [--nix-bin DIR]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/bench_support.h"
#include "consensus/attestation.h"
#include "consensus/derivation.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "server/derivation_intake.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::bench {
namespace {

struct Args {
  int packages = 300;
  uint64_t seed = 1;
  std::string dir;
  std::string nix_bin;  // directory of nix-instantiate and nix-store; "" for PATH
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "derivation_bench: %s\n", message.c_str());
  std::exit(1);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--packages")
      args.packages = std::atoi(value.c_str());
    else if (flag == "--seed")
      args.seed = std::strtoull(value.c_str(), nullptr, 10);
    else if (flag == "--dir")
      args.dir = value;
    else if (flag == "--nix-bin")
      args.nix_bin = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (argc % 2 == 0 || args.packages < 10 || args.packages > 5000) {
    std::fprintf(stderr, "usage: derivation_bench [--packages 10..5000] [--seed N] [--dir DIR] [--nix-bin DIR]\n");
    std::exit(2);
  }
  return args;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out) Die("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------------------------------------------
// The Nix expression.

// A Nix double-quoted string built from literal text and interpolations (which give the derivation
// its input derivations, as in nixpkgs).
class NixString final {
 public:
  NixString& Text(std::string_view text) {
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '\\' || c == '"') {
        body_ += '\\';
        body_ += c;
      } else if (c == '\n') {
        body_ += "\\n";
      } else if (c == '\t') {
        body_ += "\\t";
      } else if (c == '$' && i + 1 < text.size() && text[i + 1] == '{') {
        body_ += "\\$";
      } else {
        body_ += c;
      }
    }
    return *this;
  }
  NixString& Ref(std::string_view expression) {
    absl::StrAppend(&body_, "${", absl::string_view(expression.data(), expression.size()), "}");
    return *this;
  }
  std::string Literal() const { return "\"" + body_ + "\""; }

 private:
  std::string body_;
};

std::string Quote(std::string_view text) { return NixString().Text(text).Literal(); }

std::string HexHash(const std::string& seed) {
  const auto digest = consensus::Sha256(seed);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t byte : digest) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 15];
  }
  return hex;
}

// A derivation of the expression: its Nix variable and outputs.
struct Node {
  std::string var;
  std::vector<std::string> outputs{"out"};
  std::string name;
  bool has_dev() const { return std::find(outputs.begin(), outputs.end(), "dev") != outputs.end(); }
  bool has_bin() const { return std::find(outputs.begin(), outputs.end(), "bin") != outputs.end(); }
  // What a dependent names: the dev output of a library that has one, as nixpkgs does.
  std::string Dev() const { return has_dev() ? var + ".dev" : var; }
  std::string Bin() const { return has_bin() ? var + ".bin" : var; }
};

// Shell lines in the style of nixpkgs hooks; {name}, {file}, {n}, {word} are filled in, {dep} is an
// interpolation of an input's path.
constexpr const char* kHookLines[] = {
    "substituteInPlace {file} --replace '/usr/bin/{word}' '{dep}/bin/{word}'",
    "substituteInPlace Makefile.in --replace 'INSTALL_DIR = /usr/local' \"INSTALL_DIR = $out\"",
    "sed -i -e 's|@PREFIX@|'\"$out\"'|g' -e 's|@LIBDIR@|'\"$out/lib\"'|g' {file}",
    "for f in $out/bin/*; do wrapProgram \"$f\" --prefix PATH : {dep}/bin --set {NAME}_HOME \"$out/share/{name}\"; done",
    "mkdir -p $out/share/{name}/{word} $out/lib/pkgconfig $dev/include/{name}",
    "install -Dm644 {file} $out/share/doc/{name}/{word}.txt",
    "ln -s $out/lib/lib{name}.so.{n} $out/lib/lib{name}.so",
    "rm -rf $out/share/{name}/tests $out/libexec/{name}/debug-{n}",
    "export NIX_CFLAGS_COMPILE=\"$NIX_CFLAGS_COMPILE -I{dep}/include -DHAVE_{NAME}_{n}=1\"",
    "if [ -e {file} ]; then patchShebangs {file}; fi",
    "moveToOutput \"lib/cmake\" \"$dev\"",
    "chmod +x scripts/{word}-{n}.sh && patchShebangs scripts",
    "echo '#define {NAME}_VERSION_{n} \"{n}.{n}\"' >> config.h",
    "cp -r {dep}/share/aclocal/{word}.m4 m4/ || true",
    "find $out -name '*.la' -delete",
    "[ -d $out/etc/{name} ] && mv $out/etc/{name} $out/share/{name}/etc-{n}",
    "configureFlagsArray+=(\"--with-{word}-dir={dep}/lib\" \"CFLAGS=-O2 -g -D{NAME}_EXTRA={n}\")",
    "remove-references-to -t {dep} $out/lib/lib{name}.so.{n}",
    "makeWrapper $out/libexec/{name}/{word} $out/bin/{word} --prefix LD_LIBRARY_PATH : {dep}/lib",
    "cat > $out/nix-support/setup-hook <<EOF\naddToSearchPath {NAME}_PATH \\$1/lib/{name}-{n}\nEOF",
};

constexpr const char* kWords[] = {"config", "install", "tests", "doc",  "locale", "plugins", "bindings", "tools",
                                  "python", "perl",    "shell", "data", "man",    "include", "examples", "util"};

constexpr const char* kNames[] = {
    "openssl",   "zlib",       "nghttp2",     "libssh2",    "brotli",      "zstd",      "curl",       "libffi",
    "pcre2",     "glib",       "gettext",     "libxml2",    "libxslt",     "expat",     "sqlite",     "readline",
    "ncurses",   "python3",    "perl",        "pkg-config", "cmake",       "meson",     "ninja",      "autoconf",
    "automake",  "libtool",    "gnum4",       "bison",      "flex",        "libiconv",  "icu",        "libpng",
    "libjpeg",   "libtiff",    "freetype",    "fontconfig", "harfbuzz",    "cairo",     "pango",      "pixman",
    "libX11",    "libXext",    "libxcb",      "xorgproto",  "mesa",        "libdrm",    "wayland",    "dbus",
    "systemd",   "util-linux", "e2fsprogs",   "acl",        "attr",        "libcap",    "kmod",       "lz4",
    "libarchive", "libuv",     "libevent",    "gnutls",     "nettle",      "libtasn1",  "p11-kit",    "libidn2",
    "libunistring", "gmp",     "mpfr",        "boost",      "protobuf",    "grpc",      "abseil-cpp", "re2",
    "c-ares",    "libsodium",  "jq",          "oniguruma",  "git",         "openssh",   "gnupg",      "libgcrypt",
    "libgpg-error", "libassuan", "npth",      "pinentry",   "nix",         "editline",  "lowdown",    "nlohmann_json",
    "gtest",     "libseccomp", "busybox",     "rsync",      "tmux",        "vim",       "less",       "man-db",
};

std::string Pick(std::mt19937_64& rng, std::span<const char* const> pool) {
  return pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
}

std::string Upper(std::string text) {
  for (char& c : text) c = c == '-' || c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// About `bytes` of hook script text for package `name`, naming inputs from `deps`.
std::string HookScript(std::mt19937_64& rng, const std::string& name, const std::vector<std::string>& deps,
                       size_t bytes) {
  NixString text;
  size_t written = 0;
  while (written < bytes) {
    std::string line = kHookLines[std::uniform_int_distribution<size_t>(0, std::size(kHookLines) - 1)(rng)];
    const std::string word = Pick(rng, kWords);
    const std::string n = std::to_string(std::uniform_int_distribution<int>(1, 40)(rng));
    const std::string file = Pick(rng, kWords) + "/" + word + (n.size() == 1 ? ".c" : ".in");
    auto replace_all = [&](const std::string& from, const std::string& to) {
      for (size_t at; (at = line.find(from)) != std::string::npos;) line.replace(at, from.size(), to);
    };
    replace_all("{name}", name);
    replace_all("{NAME}", Upper(name));
    replace_all("{word}", word);
    replace_all("{file}", file);
    replace_all("{n}", n);
    line += "\n";
    written += line.size();
    // {dep}: an interpolation of one of the package's inputs (or, without inputs, plain text).
    for (size_t at; (at = line.find("{dep}")) != std::string::npos;) {
      text.Text(line.substr(0, at));
      if (deps.empty()) {
        text.Text("/usr");
      } else {
        text.Ref(deps[std::uniform_int_distribution<size_t>(0, deps.size() - 1)(rng)]);
        written += 50;
      }
      line.erase(0, at + 5);
    }
    text.Text(line);
  }
  return text.Literal();
}

// nixpkgs' fetchurl passes these (the proxies and every mirror variable) as impureEnvVars.
std::string ImpureEnvVars() {
  std::string list = "[ \"http_proxy\" \"https_proxy\" \"ftp_proxy\" \"all_proxy\" \"no_proxy\" \"NIX_CURL_FLAGS\" "
                     "\"NIX_HASHED_MIRRORS\" \"NIX_CONNECT_TIMEOUT\"";
  for (const char* mirror : {"alsa", "apache", "bioc", "bitlbee", "centos", "cpan", "debian", "fedora", "gcc", "gentoo",
                             "gnome", "gnu", "gnupg", "hackage", "ibiblioPubLinux", "imagemagick", "kde", "kernel",
                             "luarocks", "mariadb", "mozilla", "mysql", "openbsd", "opensuse", "osdn", "postgresql",
                             "pypi", "qt", "sageupstream", "samba", "savannah", "sourceforge", "steamrt", "tcsh",
                             "testpypi", "ubuntu", "xfce", "xorg"}) {
    absl::StrAppend(&list, " \"NIX_MIRRORS_", mirror, "\"");
  }
  return list + " ]";
}

class ExpressionWriter final {
 public:
  ExpressionWriter(const Args& args) : args_(args), rng_(args.seed) {}

  std::string Write() {
    Preamble();
    Bootstrap();
    std::map<std::string, Node> latest;  // toolchain package -> its newest build
    Node stdenv = Stdenv(0, bootstrap_, {}, {});
    for (int stage = 1; stage <= 4; ++stage) stdenv = Stage(stage, stdenv, latest);
    final_stdenv_ = stdenv;
    Packages(latest);
    Top();
    return out_ + "in { inherit top; }\n";
  }

 private:
  void Let(const std::string& var, const std::string& value) { absl::StrAppend(&out_, "  ", var, " = ", value, ";\n"); }

  void Preamble() {
    out_ = "let\n  system = \"x86_64-linux\";\n";
    std::string builder_text = "source $stdenv/setup\ngenericBuild\n";
    Let("defaultBuilder", "builtins.toFile \"default-builder.sh\" " + Quote(builder_text));
    // stdenv's setup script: an input source of every stdenv (kept as a file in nixpkgs too).
    std::mt19937_64 rng(7);
    Let("setupScript", "builtins.toFile \"setup.sh\" " + HookScript(rng, "stdenv", {}, 24000));
    Let("fetchurlBuilder", "builtins.toFile \"builder.sh\" " + HookScript(rng, "fetchurl", {}, 3000));
    Let("mirrorsFile", "builtins.toFile \"mirrors-list\" " + HookScript(rng, "mirrors", {}, 6000));
    Let("unpackBootstrapTools",
        "builtins.toFile \"unpack-bootstrap-tools.sh\" " + HookScript(rng, "bootstrap", {}, 2500));
    Let("wrapperScript", "builtins.toFile \"cc-wrapper.sh\" " + HookScript(rng, "wrapper", {}, 8000));
    Let("impureEnvVars", ImpureEnvVars());
  }

  // A fixed-output fetch with Nix's builtin fetcher (nixpkgs' fetchurlBoot and <nix/fetchurl.nix>).
  Node BootFetch(const std::string& file, bool executable) {
    Node node{.var = "src_" + Ident(file), .name = file};
    if (boot_fetched_.insert(node.var).second) {
      const std::string url = "https://ftp.gnu.org/gnu/" + file;
      Let(node.var, "derivation { name = " + Quote(file) + "; builder = \"builtin:fetchurl\"; system = \"builtin\"; " +
                        "url = " + Quote(url) + "; urls = [ " + Quote(url) + " ]; executable = " +
                        (executable ? "true" : "false") + "; unpack = false; outputHash = \"" +
                        HexHash("source|" + file) + "\"; outputHashAlgo = \"sha256\"; outputHashMode = \"" +
                        (executable ? "recursive" : "flat") +
                        "\"; preferLocalBuild = true; impureEnvVars = [ \"http_proxy\" \"https_proxy\" "
                        "\"ftp_proxy\" \"all_proxy\" \"no_proxy\" ]; }");
      ++derivations_;
    }
    return node;
  }

  void Bootstrap() {
    const Node busybox = BootFetch("busybox", true);
    const Node tarball = BootFetch("bootstrap-tools.tar.xz", false);
    bootstrap_ = Node{.var = "bootstrapTools", .name = "bootstrap-tools"};
    Let(bootstrap_.var, "derivation { name = \"bootstrap-tools\"; inherit system; builder = " + busybox.var +
                            "; args = [ \"ash\" \"-e\" unpackBootstrapTools ]; tarball = " + tarball.var +
                            "; langC = true; langCC = true; isGNU = true; hardeningUnsupportedFlags = [ "
                            "\"fortify3\" \"zerocallusedregs\" \"trivialautovarinit\" ]; }");
    ++derivations_;
  }

  Node Stdenv(int stage, const Node& shell_from, const std::vector<Node>& wrappers,
              const std::vector<Node>& initial_path) {
    Node node{.var = "stdenv" + std::to_string(stage), .name = "stdenv-linux"};
    std::string initial = "[";
    for (const Node& p : initial_path) absl::StrAppend(&initial, " ", p.Bin());
    if (initial_path.empty()) absl::StrAppend(&initial, " ", bootstrap_.var);
    initial += " ]";
    std::string natives = "[";
    for (const Node& w : wrappers) absl::StrAppend(&natives, " ", w.var);
    natives += " ]";
    std::vector<std::string> deps{shell_from.var};
    std::string pre_hook = HookScript(rng_, "stdenv-stage" + std::to_string(stage), deps, 1500);
    Let(node.var, "derivation { name = " + Quote(stage == 4 ? "stdenv-linux" : "bootstrap-stage" +
                                                                                std::to_string(stage) + "-stdenv-linux") +
                      "; inherit system; builder = " + NixString().Ref(shell_from.Bin()).Text("/bin/bash").Literal() +
                      "; args = [ \"-e\" ./stdenv-builder.sh ]; setup = setupScript; " +
                      "shell = " + NixString().Ref(shell_from.Bin()).Text("/bin/bash").Literal() +
                      "; initialPath = " + initial + "; defaultNativeBuildInputs = " + natives +
                      "; defaultBuildInputs = \"\"; preHook = " + pre_hook +
                      "; disallowedRequisites = \"\"; propagatedBuildInputs = \"\"; propagatedNativeBuildInputs = \"\"; "
                      "hostPlatform = \"x86_64-linux\"; "
                      "buildPlatform = \"x86_64-linux\"; targetPlatform = \"x86_64-linux\"; }");
    ++derivations_;
    return node;
  }

  static std::string Ident(const std::string& text) {
    std::string ident;
    for (char c : text) ident += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return ident;
  }

  // One package: `var`, built with `stdenv` from `src`, with inputs.
  Node Package(const std::string& var, const std::string& pname, const Node& stdenv, const Node& shell,
               const Node& src, const std::vector<Node>& libraries, const std::vector<Node>& tools,
               std::vector<std::string> outputs) {
    Node node{.var = var, .outputs = outputs, .name = pname};
    const std::string version = std::to_string(std::uniform_int_distribution<int>(0, 12)(rng_)) + "." +
                                std::to_string(std::uniform_int_distribution<int>(0, 40)(rng_)) + "." +
                                std::to_string(std::uniform_int_distribution<int>(0, 9)(rng_));
    std::vector<std::string> dep_exprs;
    std::string build_inputs = "[", native_inputs = "[";
    for (const Node& lib : libraries) {
      absl::StrAppend(&build_inputs, " ", lib.Dev());
      dep_exprs.push_back(lib.Dev());
    }
    for (const Node& tool : tools) {
      absl::StrAppend(&native_inputs, " ", tool.Bin());
      dep_exprs.push_back(tool.Bin());
    }
    build_inputs += " ]";
    native_inputs += " ]";
    std::string flags = "[";
    const int flag_count = std::uniform_int_distribution<int>(5, 24)(rng_);
    for (int f = 0; f < flag_count; ++f) {
      const std::string word = Pick(rng_, kWords);
      const int kind = std::uniform_int_distribution<int>(0, 3)(rng_);
      if (kind == 0 && !libraries.empty()) {
        const Node& lib = libraries[static_cast<size_t>(f) % libraries.size()];
        absl::StrAppend(&flags, " ", NixString().Text("--with-" + lib.name + "=").Ref(lib.Dev()).Literal());
      } else if (kind == 1) {
        absl::StrAppend(&flags, " \"--enable-", word, "\"");
      } else if (kind == 2) {
        absl::StrAppend(&flags, " \"--disable-", word, "-", f, "\"");
      } else {
        absl::StrAppend(&flags, " \"--with-", word, "-dir=/var/lib/", pname, "/", word, "\"");
      }
    }
    flags += " ]";
    std::string outputs_list = "[";
    for (const std::string& o : outputs) absl::StrAppend(&outputs_list, " \"", o, "\"");
    outputs_list += " ]";
    std::string patches = "[";
    if (std::uniform_int_distribution<int>(0, 3)(rng_) == 0) {
      for (int p = 0; p < std::uniform_int_distribution<int>(1, 3)(rng_); ++p) {
        absl::StrAppend(&patches, " (builtins.toFile ", Quote(pname + "-fix-" + std::to_string(p) + ".patch"), " ",
                        HookScript(rng_, pname, {}, 400), ")");
      }
    }
    patches += " ]";
    const size_t hook_bytes = std::uniform_int_distribution<size_t>(1000, 4000)(rng_);
    const size_t split = std::uniform_int_distribution<size_t>(hook_bytes / 4, hook_bytes / 2)(rng_);
    Let(var, "derivation { name = " + Quote(pname + "-" + version) + "; pname = " + Quote(pname) +
                 "; version = " + Quote(version) + "; inherit system; builder = " +
                 NixString().Ref(shell.Bin()).Text("/bin/bash").Literal() +
                 "; args = [ \"-e\" defaultBuilder ]; stdenv = " + stdenv.var + "; src = " + src.var +
                 "; outputs = " + outputs_list + "; buildInputs = " + build_inputs + "; nativeBuildInputs = " +
                 native_inputs + "; configureFlags = " + flags + "; patches = " + patches +
                 "; propagatedBuildInputs = \"\"; propagatedNativeBuildInputs = \"\"; depsBuildBuild = \"\"; "
                 "depsBuildBuildPropagated = \"\"; depsBuildTarget = \"\"; depsBuildTargetPropagated = \"\"; "
                 "depsHostHost = \"\"; depsHostHostPropagated = \"\"; depsTargetTarget = \"\"; "
                 "depsTargetTargetPropagated = \"\"; cmakeFlags = \"\"; mesonFlags = \"\"; doCheck = " +
                 (std::uniform_int_distribution<int>(0, 1)(rng_) ? "true" : "false") +
                 "; doInstallCheck = false; strictDeps = false; enableParallelBuilding = true; "
                 "preConfigure = " +
                 HookScript(rng_, pname, dep_exprs, split) + "; postInstall = " +
                 HookScript(rng_, pname, dep_exprs, hook_bytes - split) + "; }");
    ++derivations_;
    return node;
  }

  // nixpkgs' fetchurl: a fixed-output derivation built with the package set's curl.
  Node Fetchurl(const std::string& file, const Node& stdenv, const Node& shell, const Node& curl) {
    Node node{.var = "src_" + Ident(file), .name = file};
    const std::string url = "mirror://sourceforge/" + file;
    Let(node.var, "derivation { name = " + Quote(file) + "; inherit system; builder = " +
                      NixString().Ref(shell.Bin()).Text("/bin/bash").Literal() +
                      "; args = [ \"-e\" fetchurlBuilder ]; stdenv = " + stdenv.var +
                      "; nativeBuildInputs = [ " + curl.Bin() + " ]; urls = [ " + Quote(url) + " " +
                      Quote("https://downloads.example.org/releases/" + file) + " ]; outputHash = \"" +
                      HexHash("source|" + file) +
                      "\"; outputHashAlgo = \"sha256\"; outputHashMode = \"flat\"; curlOpts = \"\"; "
                      "curlOptsList = \"\"; downloadToTemp = \"\"; executable = \"\"; postFetch = \"\"; "
                      "mirrorsFile = mirrorsFile; impureEnvVars = impureEnvVars; preferHashedMirrors = true; "
                      "preferLocalBuild = true; showURLs = false; SSL_CERT_FILE = \"/no-cert-file.crt\"; "
                      "nixpkgsVersion = \"23.05\"; outputs = [ \"out\" ]; }");
    ++derivations_;
    return node;
  }

  // A wrapper (bintools-wrapper, cc-wrapper) of a stage: large environment, a script as input source.
  Node Wrapper(const std::string& var, const std::string& name, const Node& wrapped, const Node& libc,
               const Node& shell) {
    Node node{.var = var, .name = name};
    Let(var, "derivation { name = " + Quote(name) + "; inherit system; builder = " +
                 NixString().Ref(shell.Bin()).Text("/bin/bash").Literal() +
                 "; args = [ \"-e\" wrapperScript ]; wrapped = " + wrapped.var + "; libc = " + libc.Dev() +
                 "; libc_bin = " + libc.var + "; libc_dev = " + libc.Dev() + "; shell = " +
                 NixString().Ref(shell.Bin()).Text("/bin/bash").Literal() +
                 "; wrapperName = \"" + Upper(name) + "\"; expandResponseParams = \"\"; hardeningUnsupportedFlags = "
                 "\"\"; isGNU = true; langC = true; langCC = true; propagatedBuildInputs = \"\"; "
                 "postFixup = " +
                 HookScript(rng_, name, {wrapped.var, libc.Dev()}, 3500) + "; }");
    ++derivations_;
    return node;
  }

  Node Stage(int stage, const Node& previous, std::map<std::string, Node>& latest) {
    static const std::vector<std::vector<std::string>> kStagePackages = {
        {},
        {"gnu-config", "linux-headers", "zlib", "gnum4", "bison", "perl", "binutils", "glibc"},
        {"gmp", "mpfr", "libmpc", "isl", "zlib", "binutils", "gcc", "glibc", "patchelf", "expand-response-params"},
        {"gcc", "bash", "coreutils", "gnumake", "gnused", "gnugrep", "gawk", "findutils", "diffutils", "patch", "gzip",
         "bzip2", "xz", "gnutar", "file", "which", "texinfo", "gettext", "perl", "zlib"},
        {"binutils", "gcc", "glibc", "bash", "coreutils", "gnumake", "gnused", "gnugrep", "gawk", "findutils",
         "diffutils", "patch", "gzip", "bzip2", "xz", "gnutar", "patchelf", "file", "which", "gmp", "mpfr",
         "libmpc", "isl", "zlib"},
    };
    const Node shell = latest.contains("bash") ? latest["bash"] : bootstrap_;
    std::vector<Node> built;
    for (const std::string& pname : kStagePackages[static_cast<size_t>(stage)]) {
      const Node src = BootFetch(pname + "-" + std::to_string(pname.size() % 7 + 1) + ".tar.xz", false);
      std::vector<Node> libraries;
      const int want = std::uniform_int_distribution<int>(0, 3)(rng_);
      for (int k = 0; k < want && !built.empty(); ++k) {
        libraries.push_back(built[std::uniform_int_distribution<size_t>(0, built.size() - 1)(rng_)]);
      }
      std::sort(libraries.begin(), libraries.end(), [](const Node& a, const Node& b) { return a.var < b.var; });
      libraries.erase(std::unique(libraries.begin(), libraries.end(),
                                  [](const Node& a, const Node& b) { return a.var == b.var; }),
                      libraries.end());
      std::vector<std::string> outputs{"out"};
      if (pname == "glibc" || pname == "gcc" || pname == "binutils") outputs = {"bin", "dev", "out"};
      if (pname == "zlib" || pname == "gmp" || pname == "mpfr" || pname == "xz" || pname == "bzip2") {
        outputs = {"dev", "out"};
      }
      const Node node = Package("s" + std::to_string(stage) + "_" + Ident(pname),
                                "bootstrap-stage" + std::to_string(stage) + "-" + pname, previous, shell, src,
                                libraries, {}, outputs);
      built.push_back(node);
      latest[pname] = node;
    }
    const Node& libc = latest.contains("glibc") ? latest["glibc"] : bootstrap_;
    const Node bintools = Wrapper("s" + std::to_string(stage) + "_bintools", "bintools-wrapper-stage" +
                                  std::to_string(stage), latest.contains("binutils") ? latest["binutils"] : bootstrap_,
                                  libc, shell);
    const Node cc = Wrapper("s" + std::to_string(stage) + "_cc", "gcc-wrapper-stage" + std::to_string(stage),
                            latest.contains("gcc") ? latest["gcc"] : bootstrap_, libc, shell);
    std::vector<Node> initial_path;
    for (const char* tool : {"coreutils", "findutils", "diffutils", "gnused", "gnugrep", "gawk", "gnutar", "gzip",
                             "bzip2", "gnumake", "bash", "patch", "xz", "file"}) {
      if (latest.contains(tool)) initial_path.push_back(latest[tool]);
    }
    const Node new_shell = latest.contains("bash") ? latest["bash"] : bootstrap_;
    return Stdenv(stage, new_shell, {bintools, cc}, initial_path);
  }

  void Packages(std::map<std::string, Node>& latest) {
    shell_ = latest["bash"];
    const Node& shell = shell_;
    // The first packages (curl and its libraries) are fetched with the builtin fetcher, the rest with
    // curl, as nixpkgs does.
    const std::vector<std::string> boot_fetched{"openssl", "zlib", "nghttp2", "libssh2", "brotli", "zstd", "curl"};
    std::optional<Node> curl;
    for (int i = 0; i < args_.packages; ++i) {
      std::string pname = kNames[static_cast<size_t>(i) % std::size(kNames)];
      if (i >= static_cast<int>(std::size(kNames))) pname += "-" + std::to_string(i / std::size(kNames));
      std::vector<Node> libraries, tools;
      if (i < static_cast<int>(boot_fetched.size())) {
        for (const Node& p : packages_) libraries.push_back(p);  // curl needs all before it
      } else {
        // Libraries: biased to the early (widely used) ones.
        const int want = std::uniform_int_distribution<int>(0, 6)(rng_);
        for (int k = 0; k < want; ++k) {
          const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
          const size_t at = static_cast<size_t>(u * u * static_cast<double>(packages_.size()));
          libraries.push_back(packages_[std::min(at, packages_.size() - 1)]);
        }
        // Tools: pkg-config, cmake, meson, ninja, autoconf, automake, libtool, python3, perl (indices
        // 17 to 25 once built).
        const int tool_count = std::uniform_int_distribution<int>(1, 3)(rng_);
        for (int k = 0; k < tool_count; ++k) {
          const size_t at = std::uniform_int_distribution<size_t>(17, 25)(rng_);
          if (at < packages_.size()) tools.push_back(packages_[at]);
        }
      }
      auto by_var = [](const Node& a, const Node& b) { return a.var < b.var; };
      auto same_var = [](const Node& a, const Node& b) { return a.var == b.var; };
      std::sort(libraries.begin(), libraries.end(), by_var);
      libraries.erase(std::unique(libraries.begin(), libraries.end(), same_var), libraries.end());
      std::sort(tools.begin(), tools.end(), by_var);
      tools.erase(std::unique(tools.begin(), tools.end(), same_var), tools.end());
      const std::string file = pname + "-" + std::to_string(i % 13) + "." + std::to_string(i % 7) + ".tar.gz";
      const Node src = curl ? Fetchurl(file, final_stdenv_, shell, *curl) : BootFetch(file, false);
      std::vector<std::string> outputs{"out"};
      const int shape = std::uniform_int_distribution<int>(0, 5)(rng_);
      if (shape == 0) outputs = {"dev", "out"};
      if (shape == 1) outputs = {"bin", "dev", "man", "out"};
      const Node node = Package("p" + std::to_string(i), pname, final_stdenv_, shell, src, libraries, tools, outputs);
      packages_.push_back(node);
      if (pname == "curl") curl = node;
    }
  }

  void Top() {
    std::string paths = "[";
    for (const Node& p : packages_) {
      for (const std::string& o : p.outputs) {
        if (o == "out" || o == "bin") absl::StrAppend(&paths, " ", p.var, ".", o);
      }
    }
    paths += " ]";
    std::vector<std::string> deps;
    for (size_t i = 0; i < packages_.size(); i += 10) deps.push_back(packages_[i].var);
    Let("top", "derivation { name = \"system-path\"; inherit system; builder = " +
                   NixString().Ref(shell_.Bin()).Text("/bin/bash").Literal() +
                   "; args = [ \"-e\" defaultBuilder ]; stdenv = " + final_stdenv_.var + "; paths = " + paths +
                   "; pathsToLink = [ \"/bin\" \"/etc/xdg\" \"/etc/gtk-2.0\" \"/etc/gtk-3.0\" \"/lib\" \"/sbin\" "
                   "\"/share/emacs\" \"/share/hunspell\" \"/share/nano\" \"/share/org\" \"/share/themes\" "
                   "\"/share/vim-plugins\" \"/share/vulkan\" \"/share/kservices5\" \"/share/kservicetypes5\" "
                   "\"/share/kxmlgui5\" \"/share/systemd\" \"/share/thumbnailers\" ]; extraOutputsToInstall = [ "
                   "\"man\" ]; ignoreCollisions = true; checkCollisionContents = true; meta = \"\"; "
                   "passAsFile = [ \"buildCommand\" \"paths\" ]; buildCommand = " +
                   HookScript(rng_, "system-path", deps, 4000) + "; }");
    ++derivations_;
  }

  const Args& args_;
  std::mt19937_64 rng_;
  std::string out_;
  Node bootstrap_;
  Node final_stdenv_;
  Node shell_;  // the final stage's bash
  std::vector<Node> packages_;
  std::set<std::string> boot_fetched_;
  int derivations_ = 0;
};

// ---------------------------------------------------------------------------------------------------
// Running Nix, isolated.

struct Nix {
  std::string dir;  // holds etc/nix.conf, home, cache, tmp
  std::string bin;

  // Runs `program args` with Nix's environment isolated; returns stdout, dies with stderr on failure.
  std::string Run(const std::string& program, const std::string& arguments) const {
    const std::string err = dir + "/last-command.err";
    std::string command = "env";
    for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR"}) {
      absl::StrAppend(&command, " -u ", var);
    }
    absl::StrAppend(&command, " NIX_CONF_DIR=", dir, "/etc HOME=", dir, "/home XDG_CACHE_HOME=", dir,
                    "/cache TMPDIR=", dir, "/tmp ", bin.empty() ? "" : bin + "/", program, " ", arguments, " 2>",
                    err);
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) Die("cannot run " + program);
    std::string output;
    char buffer[65536];
    while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
    if (::pclose(pipe) != 0) Die(program + " failed (is Nix installed? apt-get install nix-bin):\n" + ReadFile(err));
    return output;
  }
};

// ---------------------------------------------------------------------------------------------------
// Measuring.

// The database file's size after a TRUNCATE checkpoint of its WAL (no other connection open).
int64_t CheckpointedSize(const std::string& database) {
  {
    auto db = storage::sqlite::Connection::Open(database, storage::sqlite::OpenMode::kReadWrite, absl::Seconds(5));
    if (!db.ok()) Die(std::string(db.status().message()));
    auto busy = (*db)->QueryInt("PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the WAL");
    if (!busy.ok()) Die(std::string(busy.status().message()));
    if (*busy != 0) Die("the WAL checkpoint was blocked by another connection");
  }
  std::error_code error;
  const auto wal = std::filesystem::file_size(database + "-wal", error);
  if (!error && wal != 0) Die("the WAL is not empty after the checkpoint: " + std::to_string(wal) + " bytes");
  return static_cast<int64_t>(std::filesystem::file_size(database));
}

// Pages of the derivation tables and their indexes (dbstat), by name.
std::vector<std::pair<std::string, int64_t>> DerivationTableBytes(const std::string& database) {
  auto db = storage::sqlite::Connection::Open(database, storage::sqlite::OpenMode::kReadOnly, absl::Seconds(5));
  if (!db.ok()) Die(std::string(db.status().message()));
  std::vector<std::pair<std::string, int64_t>> bytes;
  for (const char* name : {"derivations", "sqlite_autoindex_derivations_1", "derivation_inputs", "derivation_outputs",
                           "derivation_outputs_by_path"}) {
    auto value = (*db)->QueryInt(
        absl::StrCat("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = '", name, "'"), "reading dbstat");
    if (!value.ok()) Die(std::string(value.status().message()));
    bytes.emplace_back(name, *value);
  }
  return bytes;
}

std::unique_ptr<storage::SqliteAttestationStore> OpenStore(const std::string& database) {
  auto store = storage::SqliteAttestationStore::Open(database, {});
  if (!store.ok()) Die(std::string(store.status().message()));
  return std::move(*store);
}

// Builder `key` attests every output of the top derivation (as its post-build hook and push would).
void AttestOutputs(const std::string& database, const consensus::Derivation& top, const consensus::SecretKey& key) {
  auto store = OpenStore(database);
  storage::WriteBatch batch;
  for (const consensus::DerivationOutput& output : top.outputs) {
    if (!output.path) Die("the top derivation has an output without a path");
    auto claim = consensus::PathInfo::Create(*output.path,
                                             consensus::NarHash::FromDigest(consensus::Sha256(output.path->full())),
                                             123456, {});
    if (!claim.ok()) Die(std::string(claim.status().message()));
    batch.attestations.push_back(storage::StoredAttestation{consensus::SignAttestation(*claim, key),
                                                            absl::ToUnixSeconds(absl::Now()), std::nullopt, ""});
  }
  auto written = store->Write(batch);
  if (!written.ok()) Die(std::string(written.status().message()));
}

struct SendResult {
  size_t stored = 0;
  size_t already_present = 0;
  size_t missing_before = 0;  // MissingDerivations before the send
  double seconds = 0;
};

SendResult Send(const std::string& database, const std::vector<server::DerivationUpload>& uploads) {
  auto store = OpenStore(database);
  server::DerivationIntake intake(store.get(), store.get(), [] { return absl::Now(); });
  SendResult result;
  std::vector<std::string> paths;
  for (const auto& upload : uploads) paths.push_back(upload.store_path);
  auto missing = intake.Missing(paths);
  if (!missing.ok()) Die(std::string(missing.status().message()));
  result.missing_before = missing->size();
  const auto start = std::chrono::steady_clock::now();
  auto verdicts = intake.Submit(uploads);
  result.seconds = SecondsSince(start);
  if (!verdicts.ok()) Die("SubmitDerivations failed: " + std::string(verdicts.status().message()));
  for (size_t i = 0; i < verdicts->size(); ++i) {
    const server::DerivationVerdict& verdict = (*verdicts)[i];
    if (verdict.outcome == server::DerivationOutcome::kRejected) {
      Die("the node rejected " + uploads[i].store_path + ": " + std::string(verdict.reason.message()));
    }
    (verdict.outcome == server::DerivationOutcome::kStored ? result.stored : result.already_present) += 1;
  }
  return result;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") + "/derivation-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Die("mkdtemp failed");
    dir = pattern;
  }
  for (const char* sub : {"store", "nix", "db"}) std::filesystem::remove_all(dir + "/" + sub);
  for (const char* sub : {"nix/etc", "nix/home", "nix/cache", "nix/tmp", "db"}) {
    std::filesystem::create_directories(dir + "/" + sub);
  }
  WriteFile(dir + "/nix/etc/nix.conf",
            "experimental-features = nix-command\nsubstituters =\nbuild-users-group =\nsandbox = false\n");
  const Nix nix{.dir = dir + "/nix", .bin = args.nix_bin};
  const std::string store = dir + "/store";

  // 1. The closure, written by real Nix.
  ExpressionWriter writer(args);
  WriteFile(dir + "/closure.nix", writer.Write());
  // stdenv-builder.sh is a path literal in the expression (an input source copied into the store).
  WriteFile(dir + "/stdenv-builder.sh", "source $setup\nmkdir -p $out\ncp $setup $out/setup\n");
  auto start = std::chrono::steady_clock::now();
  std::string top_drv = nix.Run("nix-instantiate", "--store " + store + " " + dir + "/closure.nix -A top");
  while (!top_drv.empty() && (top_drv.back() == '\n' || top_drv.back() == ' ')) top_drv.pop_back();
  const double instantiate_seconds = SecondsSince(start);
  const std::string requisites = nix.Run("nix-store", "--store " + store + " --query --requisites " + top_drv);
  std::vector<server::DerivationUpload> uploads;
  size_t sources = 0, fixed = 0, multi_output = 0, input_derivation_edges = 0;
  std::vector<size_t> sizes;
  std::optional<consensus::Derivation> top;
  {
    std::istringstream lines(requisites);
    for (std::string path; std::getline(lines, path);) {
      if (path.empty()) continue;
      if (path.size() < 4 || path.compare(path.size() - 4, 4, ".drv") != 0) {
        ++sources;
        continue;
      }
      std::string contents = ReadFile(store + path);
      auto parsed = consensus::ParseDerivation(contents, path);
      if (!parsed.ok()) Die(std::string(parsed.status().message()));
      if (parsed->outputs.size() == 1 && parsed->outputs[0].kind() == consensus::DerivationOutput::Kind::kFixed) ++fixed;
      if (parsed->outputs.size() > 1) ++multi_output;
      input_derivation_edges += parsed->input_derivations.size();
      if (path == top_drv) top = *parsed;
      sizes.push_back(contents.size());
      uploads.push_back(server::DerivationUpload{.store_path = path, .contents = std::move(contents)});
    }
  }
  if (!top) Die("the top derivation " + top_drv + " is not in its own closure");
  size_t total = 0;
  for (size_t size : sizes) total += size;
  std::sort(sizes.begin(), sizes.end());
  const double mean = static_cast<double>(total) / static_cast<double>(sizes.size());
  std::string version = nix.Run("nix-instantiate", "--version");
  while (!version.empty() && version.back() == '\n') version.pop_back();
  std::printf("SYNTHETIC closure (shaped like a nixpkgs stdenv build; see bench/README.md), written by %s\n",
              version.c_str());
  std::printf(
      "  bootstrap (2 builtin fetches, unpack) -> stdenv stages 0-4 (toolchain rebuilds, wrappers) -> %d packages "
      "-> 1 top derivation\n",
      args.packages);
  std::printf("  instantiated in %.1f s; top %s\n", instantiate_seconds, top_drv.c_str());
  std::printf(
      ".drv files: %zu (%zu fixed-output, %zu with several outputs; %zu input-derivation edges; %zu input sources "
      "not sent)\n",
      uploads.size(), fixed, multi_output, input_derivation_edges, sources);
  std::printf("sizes: total %zu bytes, mean %.0f, median %zu, p90 %zu, max %zu\n", total, mean,
              sizes[sizes.size() / 2], sizes[sizes.size() * 9 / 10], sizes.back());

  // 2. The node's store: builder A attests the top output and sends the closure; then builder B.
  const std::string database = dir + "/db/attest.db";
  const consensus::SecretKey builder_a = BenchKey("derivation-bench-builder-a");
  const consensus::SecretKey builder_b = BenchKey("derivation-bench-builder-b");
  AttestOutputs(database, *top, builder_a);
  const int64_t before_a = CheckpointedSize(database);
  const SendResult a = Send(database, uploads);
  const int64_t after_a = CheckpointedSize(database);
  AttestOutputs(database, *top, builder_b);
  const int64_t before_b = CheckpointedSize(database);
  const SendResult b = Send(database, uploads);
  const int64_t after_b = CheckpointedSize(database);
  {
    auto reopened = OpenStore(database);
    auto stats = reopened->GetDerivationStats();
    if (!stats.ok()) Die(std::string(stats.status().message()));
    if (stats->derivations != static_cast<int64_t>(uploads.size()) ||
        stats->content_bytes != static_cast<int64_t>(total)) {
      Die("the store holds " + std::to_string(stats->derivations) + " derivations of " +
          std::to_string(stats->content_bytes) + " bytes; expected " + std::to_string(uploads.size()) + " of " +
          std::to_string(total));
    }
  }

  const int64_t growth_a = after_a - before_a;
  std::printf(
      "builder A: %zu missing before the send; %zu stored, %zu already present, in %.2f s (verification and one "
      "transaction)\n",
      a.missing_before, a.stored, a.already_present, a.seconds);
  std::printf("  database %lld -> %lld bytes (checkpointed): growth %lld bytes, %.0f bytes per stored .drv (%.2f x "
              "the file's size)\n",
              static_cast<long long>(before_a), static_cast<long long>(after_a), static_cast<long long>(growth_a),
              static_cast<double>(growth_a) / static_cast<double>(a.stored),
              static_cast<double>(growth_a) / static_cast<double>(a.stored) / mean);
  std::printf("builder B: %zu missing before the send; sending all anyway: %zu stored, %zu already present, in %.2f s\n",
              b.missing_before, b.stored, b.already_present, b.seconds);
  std::printf("  database %lld -> %lld bytes (checkpointed): growth %lld bytes; bytes per stored .drv over both "
              "builders' sends: %.0f\n",
              static_cast<long long>(before_b), static_cast<long long>(after_b),
              static_cast<long long>(after_b - before_b),
              static_cast<double>(growth_a + (after_b - before_b)) / static_cast<double>(uploads.size()));
  std::printf("derivation tables (dbstat pages):");
  int64_t table_total = 0;
  for (const auto& [name, bytes] : DerivationTableBytes(database)) {
    std::printf(" %s %lld,", name.c_str(), static_cast<long long>(bytes));
    table_total += bytes;
  }
  std::printf(" total %lld bytes, %.0f per .drv\n", static_cast<long long>(table_total),
              static_cast<double>(table_total) / static_cast<double>(uploads.size()));
  if (a.stored != uploads.size() || b.stored != 0 || b.missing_before != 0 || after_b != before_b) {
    Die("the second builder's send added something; deduplication failed");
  }
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
