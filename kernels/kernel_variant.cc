#include "kernels/kernel_variant.h"

#include "kernels/ternary_kernel.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace bitnet::kernels {

namespace {

constexpr KernelVariant kAll[] = {KernelVariant::kScalar,  KernelVariant::kAvx2,
                                  KernelVariant::kAvxVnni, KernelVariant::kAvx512,
                                  KernelVariant::kNeon,    KernelVariant::kNeonDot};

bool CpuHas(KernelVariant v) {
  switch (v) {
    case KernelVariant::kScalar:
      return true;
#if defined(__x86_64__)
    case KernelVariant::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case KernelVariant::kAvxVnni:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
             __builtin_cpu_supports("avxvnni");
    case KernelVariant::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
    case KernelVariant::kNeon:
      return true;  // Advanced SIMD is mandatory on AArch64
    case KernelVariant::kNeonDot:
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
      return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
      return false;
#endif
#endif
    default:
      return false;
  }
}

// -1: not forced; otherwise the forced variant.
std::atomic<int> g_forced{-1};

std::string SupportedList() {
  std::string s;
  for (KernelVariant v : SupportedKernelVariants()) {
    if (!s.empty()) s += ", ";
    s += KernelVariantName(v);
  }
  return s;
}

}  // namespace

std::string_view KernelVariantName(KernelVariant v) {
  switch (v) {
    case KernelVariant::kScalar: return "scalar";
    case KernelVariant::kAvx2: return "avx2";
    case KernelVariant::kAvxVnni: return "avxvnni";
    case KernelVariant::kAvx512: return "avx512";
    case KernelVariant::kNeon: return "neon";
    case KernelVariant::kNeonDot: return "neon-dot";
  }
  return "unknown";
}

std::optional<KernelVariant> KernelVariantFromName(std::string_view name) {
  for (KernelVariant v : kAll) {
    if (KernelVariantName(v) == name) return v;
  }
  return std::nullopt;
}

bool KernelVariantSupported(KernelVariant v) { return CpuHas(v) && KernelOpsFor(v) != nullptr; }

std::vector<KernelVariant> SupportedKernelVariants() {
  std::vector<KernelVariant> out;
  for (KernelVariant v : kAll) {
    if (KernelVariantSupported(v)) out.push_back(v);
  }
  return out;
}

KernelVariant BestKernelVariant() {
  // Preference order; AVX-VNNI beats plain AVX2, AVX-512 beats both.
  for (KernelVariant v : {KernelVariant::kAvx512, KernelVariant::kAvxVnni, KernelVariant::kAvx2,
                          KernelVariant::kNeonDot, KernelVariant::kNeon}) {
    if (KernelVariantSupported(v)) return v;
  }
  return KernelVariant::kScalar;
}

std::string KernelEnvError() {
  const char* env = std::getenv("BITNET_KERNEL");
  if (env == nullptr || *env == '\0') return "";
  const std::optional<KernelVariant> v = KernelVariantFromName(env);
  if (!v) {
    return std::string("BITNET_KERNEL=") + env +
           " is not a kernel variant; use one of scalar, avx2, avxvnni, avx512, neon, "
           "neon-dot (this machine supports: " + SupportedList() + ")";
  }
  if (!KernelVariantSupported(*v)) {
    return std::string("BITNET_KERNEL=") + env +
           ": this CPU (or this build) cannot run that variant; supported here: " +
           SupportedList();
  }
  return "";
}

KernelVariant ActiveKernelVariant() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<KernelVariant>(forced);
  static const KernelVariant from_env = [] {
    const std::string error = KernelEnvError();
    if (!error.empty()) {
      std::fprintf(stderr, "error: %s\n", error.c_str());
      std::exit(2);
    }
    const char* env = std::getenv("BITNET_KERNEL");
    if (env != nullptr && *env != '\0') return *KernelVariantFromName(env);
    return BestKernelVariant();
  }();
  return from_env;
}

bool SetKernelVariant(KernelVariant v) {
  if (!KernelVariantSupported(v)) return false;
  g_forced.store(static_cast<int>(v), std::memory_order_relaxed);
  return true;
}

void ResetKernelVariant() { g_forced.store(-1, std::memory_order_relaxed); }

}  // namespace bitnet::kernels
