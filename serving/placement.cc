#include "serving/placement.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "model/ggml_types.h"

namespace bitnet::serving {
namespace {

// Runtime bytes of one tensor: ternary-valued weights are repacked at 2 bits
// plus one f32 scale per 256; everything else is f32.
uint64_t RuntimeBytes(const gguf::TensorInfo& t, bool linear_weight) {
  const uint64_t n = static_cast<uint64_t>(t.n_elements());
  const bool ternary = ggml::Traits(t.type).ternary;
  // Float linear weights of a ternary model are ternary-valued and get packed
  // too; a dense float model is the rare case and the estimate is then low.
  if (ternary || (linear_weight && t.ne.size() == 2)) return n / 4 + (n / 256 + 1) * 4;
  return n * 4;
}

// Parses "blk.<n>." and returns n, or -1.
int LayerOf(absl::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int n = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) {
    n = n * 10 + (name[i] - '0');
    if (n > 1'000'000) return -1;
    ++i;
  }
  return i < name.size() && name[i] == '.' ? n : -1;
}

std::string Gb(uint64_t bytes) {
  if (bytes < 1e9) return absl::StrFormat("%.1f MB", bytes / 1e6);
  return absl::StrFormat("%.2f GB", bytes / 1e9);
}

struct Cell {
  double max_time = std::numeric_limits<double>::infinity();
  double sum_sq = std::numeric_limits<double>::infinity();
  int from_layer = -1;  // -1: worker skipped
  bool reachable = false;
};

// Lexicographic (bottleneck, then balance) with a relative tolerance, so
// float noise does not decide between equal plans.
bool Better(double max_a, double sq_a, const Cell& b) {
  if (!b.reachable) return true;
  const double tol = 1e-9 * std::max(1e-30, std::max(max_a, b.max_time));
  if (max_a < b.max_time - tol) return true;
  if (max_a > b.max_time + tol) return false;
  return sq_a < b.sum_sq * (1 - 1e-12);
}

}  // namespace

uint64_t ModelFootprint::total_bytes() const {
  uint64_t t = embedding_bytes + head_bytes;
  for (uint64_t b : layer_bytes) t += b;
  return t;
}

absl::StatusOr<ModelFootprint> FootprintFromGguf(const gguf::File& file,
                                                 const ModelConfig& config, KvType kv_type) {
  ModelFootprint fp;
  if (config.n_layer <= 0) return absl::InvalidArgumentError("model has no layers");
  fp.layer_bytes.assign(static_cast<size_t>(config.n_layer), 0);
  bool has_output = false;
  for (const gguf::TensorInfo& t : file.tensors()) {
    const int layer = LayerOf(t.name);
    if (layer >= 0) {
      if (layer >= config.n_layer) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", t.name, " names layer ", layer, " but the model has ", config.n_layer));
      }
      const bool linear = t.name.find("norm") == std::string::npos;
      fp.layer_bytes[static_cast<size_t>(layer)] += RuntimeBytes(t, linear);
    } else if (t.name == "token_embd.weight") {
      fp.embedding_bytes = static_cast<uint64_t>(t.n_elements()) * 4;
    } else if (t.name == "output.weight") {
      has_output = true;
      fp.head_bytes += static_cast<uint64_t>(t.n_elements()) * 4;
    } else if (t.name == "output_norm.weight") {
      fp.output_norm_bytes = static_cast<uint64_t>(t.n_elements()) * 4;
    }
  }
  if (!has_output) {
    fp.head_shares_embedding = true;
    fp.head_bytes += fp.embedding_bytes;
  }
  fp.head_bytes += fp.output_norm_bytes;
  const uint64_t elem = kv_type == KvType::kF16 ? 2 : 4;
  fp.kv_bytes_per_token_layer = 2 * static_cast<uint64_t>(config.kv_dim()) * elem;
  return fp;
}

absl::StatusOr<std::vector<StagePlan>> PlanPlacement(const ModelFootprint& model,
                                                     const std::vector<WorkerCapacityInfo>& workers,
                                                     const PlacementOptions& options) {
  const int n_layer = static_cast<int>(model.layer_bytes.size());
  const int n_workers = static_cast<int>(workers.size());
  if (n_layer == 0) return absl::InvalidArgumentError("model has no layers");
  if (n_workers == 0) return absl::FailedPreconditionError("no workers to place the model on");

  // Unknown bandwidths count as the median of the known ones.
  std::vector<double> known;
  for (const auto& w : workers) {
    if (w.bandwidth > 0) known.push_back(w.bandwidth);
  }
  std::sort(known.begin(), known.end());
  const double fallback = known.empty() ? 1.0 : known[known.size() / 2];
  std::vector<double> speed(static_cast<size_t>(n_workers));
  for (int i = 0; i < n_workers; ++i) {
    speed[static_cast<size_t>(i)] = workers[static_cast<size_t>(i)].bandwidth > 0
                                        ? workers[static_cast<size_t>(i)].bandwidth
                                        : fallback;
  }

  std::vector<uint64_t> prefix(static_cast<size_t>(n_layer) + 1, 0);
  for (int l = 0; l < n_layer; ++l) {
    prefix[static_cast<size_t>(l) + 1] = prefix[static_cast<size_t>(l)] +
                                         model.layer_bytes[static_cast<size_t>(l)];
  }
  const uint64_t kv_per_layer =
      static_cast<uint64_t>(std::max<int64_t>(0, options.kv_reserve_tokens)) *
      model.kv_bytes_per_token_layer;
  auto memory = [&](int begin, int end) {
    uint64_t m = prefix[static_cast<size_t>(end)] - prefix[static_cast<size_t>(begin)] +
                 kv_per_layer * static_cast<uint64_t>(end - begin);
    if (begin == 0) m += model.embedding_bytes;
    if (end == n_layer) {
      m += (begin == 0 && model.head_shares_embedding) ? model.output_norm_bytes
                                                       : model.head_bytes;
    }
    return m;
  };
  auto seconds = [&](int w, int begin, int end) {
    double bytes = static_cast<double>(prefix[static_cast<size_t>(end)] -
                                       prefix[static_cast<size_t>(begin)]);
    if (end == n_layer) bytes += static_cast<double>(model.head_bytes);
    return bytes / speed[static_cast<size_t>(w)];
  };

  // best[i][l]: workers [0, i) hold layers [0, l); best[i][l].from_layer says
  // where worker i-1's range starts (-1: it stays on standby).
  const int max_stages = options.max_stages > 0 ? options.max_stages : n_workers;
  // stages[i][l] counts the stages of the chosen plan, to honour max_stages.
  std::vector<std::vector<Cell>> best(static_cast<size_t>(n_workers) + 1,
                                      std::vector<Cell>(static_cast<size_t>(n_layer) + 1));
  std::vector<std::vector<int>> stages(static_cast<size_t>(n_workers) + 1,
                                       std::vector<int>(static_cast<size_t>(n_layer) + 1, 0));
  best[0][0] = {0, 0, -1, true};
  for (int i = 1; i <= n_workers; ++i) {
    const int w = i - 1;
    const uint64_t cap = workers[static_cast<size_t>(w)].memory_bytes;
    for (int l = 0; l <= n_layer; ++l) {
      Cell& cell = best[static_cast<size_t>(i)][static_cast<size_t>(l)];
      const Cell& skip = best[static_cast<size_t>(i) - 1][static_cast<size_t>(l)];
      if (skip.reachable) {
        cell = {skip.max_time, skip.sum_sq, -1, true};
        stages[static_cast<size_t>(i)][static_cast<size_t>(l)] =
            stages[static_cast<size_t>(i) - 1][static_cast<size_t>(l)];
      }
      for (int k = 0; k < l; ++k) {
        const Cell& prev = best[static_cast<size_t>(i) - 1][static_cast<size_t>(k)];
        if (!prev.reachable) continue;
        if (stages[static_cast<size_t>(i) - 1][static_cast<size_t>(k)] + 1 > max_stages) continue;
        if (cap > 0 && memory(k, l) > cap) continue;
        const double t = seconds(w, k, l);
        const double mx = std::max(prev.max_time, t);
        const double sq = prev.sum_sq + t * t;
        if (Better(mx, sq, cell)) {
          cell = {mx, sq, k, true};
          stages[static_cast<size_t>(i)][static_cast<size_t>(l)] =
              stages[static_cast<size_t>(i) - 1][static_cast<size_t>(k)] + 1;
        }
      }
    }
  }

  if (!best[static_cast<size_t>(n_workers)][static_cast<size_t>(n_layer)].reachable) {
    uint64_t offered = 0;
    bool unknown = false;
    for (const auto& w : workers) {
      offered += w.memory_bytes;
      unknown |= w.memory_bytes == 0;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "the model does not fit: it needs about ", Gb(model.total_bytes()),
        " of weights plus KV cache, in contiguous layer ranges, and the ", n_workers,
        " workers offer ", unknown ? "(partly unknown) " : "", Gb(offered),
        ". Add workers or memory, or lower the context / KV reserve."));
  }

  std::vector<StagePlan> plan;
  for (int i = n_workers, l = n_layer; i > 0; --i) {
    const Cell& cell = best[static_cast<size_t>(i)][static_cast<size_t>(l)];
    if (cell.from_layer < 0) continue;
    StagePlan s;
    s.worker = i - 1;
    s.layer_begin = cell.from_layer;
    s.layer_end = l;
    s.memory_bytes = memory(cell.from_layer, l);
    s.seconds_per_token = seconds(i - 1, cell.from_layer, l);
    plan.push_back(s);
    l = cell.from_layer;
  }
  std::reverse(plan.begin(), plan.end());
  return plan;
}

std::string PlacementSummary(const std::vector<StagePlan>& plan,
                             const std::vector<WorkerCapacityInfo>& workers) {
  std::vector<std::string> parts;
  for (const StagePlan& s : plan) {
    const std::string& name = workers[static_cast<size_t>(s.worker)].name;
    parts.push_back(absl::StrFormat("%s layers [%d,%d) ~%s", name, s.layer_begin, s.layer_end,
                                    Gb(s.memory_bytes)));
  }
  return absl::StrJoin(parts, " | ");
}

}  // namespace bitnet::serving
