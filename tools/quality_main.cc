// bitnet-quality: what the lossy serving choices cost in quality. Perplexity
// of a text (llama.cpp's method) on one node and through pipelines of 2, 4,
// ... stages with each activation wire format, under each kernel variant
// this CPU has, against the single-node reference (fp32 activations from
// embedding to logits, the default kernel variant).
//
//   bitnet-quality --model models/austen-4m.gguf --file models/austen-heldout.txt --ctx-size 256
//
// The pipelines run in one process (serving/local_pipeline.h): the same
// stage engines and wire encoding as the cluster, without the network; the
// serving tests check that the cluster gives the same tokens.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "kernels/kernel_variant.h"
#include "nlohmann/json.hpp"
#include "serving/activation_codec.h"
#include "serving/local_pipeline.h"
#include "tools/cli_args.h"
#include "tools/model_session.h"

namespace bitnet::cli {
namespace {

constexpr char kProgram[] = "bitnet-quality";

absl::StatusOr<std::vector<int>> ParseStages(const std::string& text) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--stages: '", part, "' is not a stage count >= 1"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError("--stages: give at least one stage count");
  return out;
}

absl::StatusOr<std::vector<kernels::KernelVariant>> ParseKernels(const std::string& text) {
  if (text == "all") return kernels::SupportedKernelVariants();
  std::vector<kernels::KernelVariant> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const auto v = kernels::KernelVariantFromName(std::string_view(part.data(), part.size()));
    if (!v || !kernels::KernelVariantSupported(*v)) {
      return absl::InvalidArgumentError(absl::StrCat("--kernels: '", part,
                                                     "' is not a kernel variant this CPU runs"));
    }
    out.push_back(*v);
  }
  if (out.empty()) return absl::InvalidArgumentError("--kernels: give 'all' or a list");
  return out;
}

// One row of the table: a pipeline shape and wire format, its perplexity
// under each kernel variant.
struct Row {
  int stages = 1;
  std::string wire;                        // "" for a single node (nothing crosses a wire)
  serving::LocalPipeline* pipe = nullptr;  // null for a single node
  std::vector<double> perplexity;          // per kernel variant
};

double DriftPercent(double ppl, double reference) { return 100.0 * (ppl - reference) / reference; }

void PrintTable(const std::vector<Row>& rows, const std::vector<kernels::KernelVariant>& variants,
                double reference) {
  std::string header = "| stages | wire |", rule = "|---|---|";
  for (kernels::KernelVariant v : variants) {
    absl::StrAppend(&header, " ", std::string(kernels::KernelVariantName(v)), " |");
    rule += "---|";
  }
  std::printf("%s\n%s\n", header.c_str(), rule.c_str());
  for (const Row& r : rows) {
    std::string line = absl::StrCat("| ", r.stages, " | ", r.wire.empty() ? "(single node)" : r.wire, " |");
    for (double p : r.perplexity) {
      absl::StrAppend(&line, absl::StrFormat(" %.4f (%+.3f%%) |", p, DriftPercent(p, reference)));
    }
    std::printf("%s\n", line.c_str());
  }
}

absl::Status Run(int argc, char** argv) {
  std::string model, file, stages_text = "1,2,4", wires_text = "fp32,fp16,int8-b32,int8-b64,int8";
  std::string kernels_text = "all";
  bool json = false;
  EngineFlags engine;
  engine.ctx_size = 512;
  engine.threads = 1;
  ArgParser args(kProgram,
                 "Perplexity of a text on one node and through pipelines with each wire format "
                 "and kernel variant, against the single-node reference.");
  AddModelFlag(args, &model);
  args.String("-f,--file", &file, "text file to score (required)", "FILE");
  args.String("--stages", &stages_text, "pipeline stage counts (1: a single node)", "LIST");
  args.String("--wires", &wires_text, "wire formats between stages", "LIST");
  args.String("--kernels", &kernels_text, "kernel variants: all (this CPU's) or a list", "LIST");
  AddEngineFlags(args, &engine, "window size in tokens; the second half of each window is scored");
  args.Flag("--json", &json, "print one JSON object instead of a table");
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return s;
  if (args.help_requested()) {
    std::fputs(args.Usage().c_str(), stdout);
    return absl::OkStatus();
  }
  if (absl::Status s = RequireModel(model); !s.ok()) return s;
  absl::StatusOr<std::vector<int>> stage_counts = ParseStages(stages_text);
  if (!stage_counts.ok()) return stage_counts.status();
  absl::StatusOr<std::vector<kernels::KernelVariant>> variants = ParseKernels(kernels_text);
  if (!variants.ok()) return variants.status();
  std::vector<std::string> wires = absl::StrSplit(wires_text, ',', absl::SkipEmpty());
  for (const std::string& w : wires) {
    if (auto f = serving::ParseWireFormat(w); !f.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--wires: ", f.status().message()));
    }
  }
  absl::StatusOr<std::string> text = ReadTextFile(file, "--file");
  if (!text.ok()) return text.status();
  absl::StatusOr<EngineOptions> options = ToEngineOptions(engine);
  if (!options.ok()) return options.status();
  absl::StatusOr<ModelSession> m = LoadModelSession(model, *options);
  if (!m.ok()) return m.status();
  const int64_t window = m->engine->n_ctx();
  const std::vector<TokenId> tokens = m->tokenizer->Encode(*text, /*add_bos=*/true);
  const int n_layer = static_cast<int>(m->engine->config().n_layer);

  // Each stage count's pipeline is built once; the rows switch its wire.
  std::vector<std::unique_ptr<serving::LocalPipeline>> pipelines;
  std::vector<Row> rows;
  for (int stages : *stage_counts) {
    if (stages == 1) {
      rows.push_back({1, "", nullptr, {}});
      continue;
    }
    absl::StatusOr<std::vector<int>> bounds = serving::EvenStageBounds(n_layer, stages);
    if (!bounds.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--stages: ", bounds.status().message()));
    }
    auto pipe = serving::LocalPipeline::Create(*m->file, *bounds, *options,
                                               *serving::ParseWireFormat("fp32"));
    if (!pipe.ok()) return pipe.status();
    pipelines.push_back(*std::move(pipe));
    for (const std::string& w : wires) rows.push_back({stages, w, pipelines.back().get(), {}});
  }

  // The reference: one node, the default kernel variant.
  absl::StatusOr<PerplexityResult> ref = ComputePerplexity(*m->engine, *m->tokenizer, tokens, window);
  if (!ref.ok()) return ref.status();
  for (kernels::KernelVariant v : *variants) {
    kernels::SetKernelVariant(v);
    for (Row& r : rows) {
      if (!json) {
        std::fprintf(stderr, "%s: %s, %d stage(s) %s\n", kProgram,
                     std::string(kernels::KernelVariantName(v)).c_str(), r.stages, r.wire.c_str());
      }
      absl::StatusOr<PerplexityResult> p;
      if (r.pipe == nullptr) {
        p = ComputePerplexity(*m->engine, *m->tokenizer, tokens, window);
      } else {
        r.pipe->set_wire(*serving::ParseWireFormat(r.wire));
        p = serving::PipelinePerplexity(*r.pipe, *m->tokenizer, tokens, window);
      }
      if (!p.ok()) return p.status();
      r.perplexity.push_back(p->perplexity);
    }
  }
  kernels::ResetKernelVariant();

  if (json) {
    nlohmann::json j = {{"model", model}, {"file", file}, {"window", window},
                        {"tokens_scored", ref->tokens_scored},
                        {"reference_perplexity", ref->perplexity},
                        {"reference_kernel", std::string(kernels::KernelVariantName(kernels::ActiveKernelVariant()))}};
    for (const Row& r : rows) {
      for (size_t k = 0; k < variants->size(); ++k) {
        j["rows"].push_back({{"stages", r.stages}, {"wire", r.wire.empty() ? "none" : r.wire},
                             {"kernel", std::string(kernels::KernelVariantName((*variants)[k]))},
                             {"perplexity", r.perplexity[k]},
                             {"drift_percent", DriftPercent(r.perplexity[k], ref->perplexity)}});
      }
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("reference: single node, %s kernels, perplexity %.4f over %lld scored tokens "
                "(windows of %lld)\n\n",
                std::string(kernels::KernelVariantName(kernels::ActiveKernelVariant())).c_str(),
                ref->perplexity, static_cast<long long>(ref->tokens_scored),
                static_cast<long long>(window));
    PrintTable(rows, *variants, ref->perplexity);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace bitnet::cli

int main(int argc, char** argv) {
  const absl::Status s = bitnet::cli::Run(argc, argv);
  return s.ok() ? 0 : bitnet::cli::ReportError(bitnet::cli::kProgram, s);
}
