// bitnet-import-trained: writes a GGUF model from the files that the training
// tool exports (tools/train/export.py: PREFIX.json + PREFIX.bin), with the
// project's own GGUF writer and ternary encoders.
//
//   bitnet-import-trained --in /tmp/run/export --out models/austen.gguf
//   bitnet-import-trained --in /tmp/run/export --type i2_s --out m.gguf
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/ggml_types.h"
#include "tools/cli_args.h"
#include "tools/trained_import.h"

namespace bitnet::cli {
namespace {

constexpr char kProgram[] = "bitnet-import-trained";

absl::Status Run(int argc, char** argv) {
  std::string in, out, type = "tq2_0", embd_type = "f16", name;
  ArgParser args(kProgram,
                 "Writes a GGUF model from a tools/train/ export (PREFIX.json + PREFIX.bin).");
  args.String("-i,--in", &in, "export prefix: reads PREFIX.json and PREFIX.bin (required)",
              "PREFIX");
  args.String("-o,--out", &out, "output GGUF file (required)", "FILE");
  args.Choice("--type", &type, {"tq2_0", "tq1_0", "i2_s"}, "ternary type of the linear weights");
  args.Choice("--embd-type", &embd_type, {"f16", "f32", "q8_0", "q6_k"},
              "type of token_embd (also the tied output projection)");
  args.String("--name", &name, "general.name (default: the export's name)");
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return s;
  if (args.help_requested()) {
    std::fputs(args.Usage().c_str(), stdout);
    return absl::OkStatus();
  }
  if (in.empty()) return absl::InvalidArgumentError("--in: required (the export prefix)");
  if (out.empty()) return absl::InvalidArgumentError("--out: required (the GGUF file to write)");
  trained::ImportOptions options;
  absl::StatusOr<ggml::Type> t = ggml::TypeFromName(type);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("--type: ", t.status().message()));
  options.ternary_type = *t;
  absl::StatusOr<ggml::Type> e = ggml::TypeFromName(embd_type);
  if (!e.ok()) return absl::InvalidArgumentError(absl::StrCat("--embd-type: ", e.status().message()));
  options.embd_type = *e;
  options.name = name;
  if (absl::Status s = trained::ImportTrained(in + ".json", in + ".bin", out, options); !s.ok()) {
    return s;
  }
  std::printf("%s: wrote %s\n", kProgram, out.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace bitnet::cli

int main(int argc, char** argv) {
  absl::Status s = bitnet::cli::Run(argc, argv);
  return s.ok() ? 0 : bitnet::cli::ReportError(bitnet::cli::kProgram, s);
}
