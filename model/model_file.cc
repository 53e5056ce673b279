#include "model/model_file.h"

#include "model/hf_checkpoint.h"

namespace bitnet {

absl::StatusOr<std::unique_ptr<gguf::File>> OpenModelFile(const std::string& path, int layer_begin,
                                                          int layer_end) {
  if (IsHfCheckpointDir(path)) return HfCheckpointAsGguf(path, layer_begin, layer_end);
  return gguf::File::Open(path);
}

}  // namespace bitnet
