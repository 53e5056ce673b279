// Which instruction-set variant of the kernels runs: chosen at run time from
// CPUID / HWCAP (one binary runs everywhere), or forced with the environment
// variable BITNET_KERNEL=scalar|avx2|avxvnni|avx512|neon|neon-dot.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::kernels {

enum class KernelVariant {
  kScalar,   // portable C++ over the packed layout
  kAvx2,     // x86 AVX2 (vpmaddubsw)
  kAvxVnni,  // x86 AVX-VNNI (256-bit vpdpbusd, VEX)
  kAvx512,   // x86 AVX-512 F/BW/VL + VNNI (+VBMI)
  kNeon,     // ARMv8 NEON without the dot-product extension
  kNeonDot,  // ARMv8.2 NEON with sdot
};

std::string_view KernelVariantName(KernelVariant v);
std::optional<KernelVariant> KernelVariantFromName(std::string_view name);

// Compiled into this binary and supported by this CPU and OS.
bool KernelVariantSupported(KernelVariant v);
// All supported variants, slowest (scalar) first.
std::vector<KernelVariant> SupportedKernelVariants();
// The fastest supported variant.
KernelVariant BestKernelVariant();

// The variant in use: the one forced by SetKernelVariant, else BITNET_KERNEL,
// else the best. A BITNET_KERNEL this CPU cannot run is a configuration error:
// the first kernel call prints it and exits (check KernelEnvError() at
// start-up to report it properly instead).
KernelVariant ActiveKernelVariant();
// Forces a variant for this process (tests, benchmarks). Returns false and
// changes nothing if the CPU does not support it.
bool SetKernelVariant(KernelVariant v);
// Back to BITNET_KERNEL / automatic choice.
void ResetKernelVariant();

// Empty if BITNET_KERNEL is unset or names a supported variant; otherwise a
// message saying what is wrong and which variants this machine has.
std::string KernelEnvError();

}  // namespace bitnet::kernels
