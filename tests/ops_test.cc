// Scalar reference transformer ops against direct float64 formulas.
#include "kernels/ops.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/float16.h"

namespace bitnet::kernels {
namespace {

std::vector<float> Random(size_t n, uint64_t seed, float sd = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(OpsTest, RmsNorm) {
  const std::vector<float> x = Random(256, 1), w = Random(256, 2);
  std::vector<float> y(256);
  RmsNorm(x.data(), w.data(), 256, 1e-5f, y.data());
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double scale = 1.0 / std::sqrt(ss / 256 + 1e-5);
  for (size_t i = 0; i < 256; ++i) EXPECT_NEAR(y[i], x[i] * scale * w[i], 1e-5);
  // In place and without a weight.
  std::vector<float> z = x;
  RmsNorm(z.data(), nullptr, 256, 1e-5f, z.data());
  for (size_t i = 0; i < 256; ++i) EXPECT_NEAR(z[i], x[i] * scale, 1e-5);
}

TEST(OpsTest, RopeAnglesAndPairing) {
  const int64_t head_dim = 8, n_rot = 8;
  std::vector<float> cs(n_rot);
  RopeAngles(3, n_rot, 10000.f, 1.f, nullptr, cs.data());
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const double theta = 3.0 * std::pow(10000.0, -2.0 * i / n_rot);
    EXPECT_NEAR(cs[2 * i], std::cos(theta), 1e-6);
    EXPECT_NEAR(cs[2 * i + 1], std::sin(theta), 1e-6);
  }
  // NEOX rotates (i, i + n_rot/2); NORM rotates (2i, 2i+1).
  const std::vector<float> x = Random(head_dim, 3);
  std::vector<float> neox = x, norm = x;
  ApplyRope(neox.data(), 1, head_dim, n_rot, cs.data(), RopeMode::kNeox);
  ApplyRope(norm.data(), 1, head_dim, n_rot, cs.data(), RopeMode::kNorm);
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    EXPECT_FLOAT_EQ(neox[i], x[i] * c - x[i + 4] * s);
    EXPECT_FLOAT_EQ(neox[i + 4], x[i] * s + x[i + 4] * c);
    EXPECT_FLOAT_EQ(norm[2 * i], x[2 * i] * c - x[2 * i + 1] * s);
    EXPECT_FLOAT_EQ(norm[2 * i + 1], x[2 * i] * s + x[2 * i + 1] * c);
  }
  // Position 0 is the identity; freq scale and factors divide the angle.
  std::vector<float> zero(n_rot), scaled(n_rot), factored(n_rot);
  RopeAngles(0, n_rot, 10000.f, 1.f, nullptr, zero.data());
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    EXPECT_EQ(zero[2 * i], 1.f);
    EXPECT_EQ(zero[2 * i + 1], 0.f);
  }
  const std::vector<float> factors = {2.f, 2.f, 2.f, 2.f};
  RopeAngles(6, n_rot, 10000.f, 0.5f, nullptr, scaled.data());
  RopeAngles(6, n_rot, 10000.f, 1.f, factors.data(), factored.data());
  for (int64_t i = 0; i < n_rot; ++i) {
    EXPECT_NEAR(scaled[i], cs[i], 1e-6);
    EXPECT_NEAR(factored[i], cs[i], 1e-6);
  }
}

TEST(OpsTest, RopeLeavesDimsBeyondNRot) {
  std::vector<float> cs(4);
  RopeAngles(5, 4, 10000.f, 1.f, nullptr, cs.data());
  std::vector<float> x = Random(16, 4), y = x;  // 2 heads of 8, rotate 4 of each
  ApplyRope(y.data(), 2, 8, 4, cs.data(), RopeMode::kNeox);
  for (int h = 0; h < 2; ++h) {
    for (int i = 4; i < 8; ++i) EXPECT_EQ(y[h * 8 + i], x[h * 8 + i]);
  }
}

TEST(OpsTest, SoftmaxAndActivations) {
  std::vector<float> x = {1.f, 2.f, 3.f, -1000.f};
  Softmax(x.data(), 4);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(x[0], std::exp(1.0) / z, 1e-7);
  EXPECT_NEAR(x[2], std::exp(3.0) / z, 1e-7);
  EXPECT_EQ(x[3], 0.f);

  const std::vector<float> g = {-2.f, -0.5f, 0.f, 0.7f, 3.f}, u = {1.f, 2.f, 3.f, 4.f, 5.f};
  std::vector<float> s(5), r(5);
  SiluMul(g.data(), u.data(), 5, s.data());
  Relu2Mul(g.data(), u.data(), 5, r.data());
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_NEAR(s[i], g[i] / (1 + std::exp(-g[i])) * u[i], 1e-6);
    EXPECT_NEAR(r[i], (g[i] > 0 ? g[i] * g[i] : 0.f) * u[i], 1e-6);
  }
}

// Float64 attention with the GQA mapping head j -> kv head j / group.
std::vector<double> ReferenceAttention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, int64_t n_pos,
                                       const AttentionShape& s) {
  const int64_t kvd = s.n_head_kv * s.head_dim, group = s.n_head / s.n_head_kv;
  std::vector<double> out(static_cast<size_t>(s.n_head * s.head_dim), 0.0);
  for (int64_t h = 0; h < s.n_head; ++h) {
    const int64_t off = (h / group) * s.head_dim;
    std::vector<double> w(static_cast<size_t>(n_pos));
    double max = -1e300, sum = 0;
    for (int64_t p = 0; p < n_pos; ++p) {
      double dot = 0;
      for (int64_t d = 0; d < s.head_dim; ++d) dot += double(q[h * s.head_dim + d]) * k[p * kvd + off + d];
      w[p] = dot * s.scale;
      max = std::max(max, w[p]);
    }
    for (double& x : w) sum += (x = std::exp(x - max));
    for (int64_t p = 0; p < n_pos; ++p) {
      for (int64_t d = 0; d < s.head_dim; ++d) {
        out[h * s.head_dim + d] += w[p] / sum * v[p * kvd + off + d];
      }
    }
  }
  return out;
}

TEST(OpsTest, GroupedQueryAttention) {
  AttentionShape s;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 16;
  s.scale = 0.25f;
  const int64_t n_pos = 7, kvd = 32;
  const std::vector<float> q = Random(64, 5), k = Random(n_pos * kvd, 6), v = Random(n_pos * kvd, 7);
  std::vector<float> scratch(n_pos + s.head_dim), out(64);
  AttentionF32(q.data(), k.data(), v.data(), n_pos, kvd, s, scratch.data(), out.data());
  const std::vector<double> ref = ReferenceAttention(q, k, v, n_pos, s);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 1e-5) << i;

  // fp16 cache: the same function of fp16-rounded K and V, within the
  // rounding of q and of the softmax weights to fp16.
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  for (size_t i = 0; i < k.size(); ++i) k16[i] = FloatToHalfBits(k[i]);
  for (size_t i = 0; i < v.size(); ++i) v16[i] = FloatToHalfBits(v[i]);
  std::vector<float> out16(64);
  AttentionF16(q.data(), k16.data(), v16.data(), n_pos, kvd, s, scratch.data(), out16.data());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out16[i], ref[i], 5e-3) << i;
  bool any_diff = false;
  for (size_t i = 0; i < out.size(); ++i) any_diff |= out16[i] != out[i];
  EXPECT_TRUE(any_diff);

  // One position: the output is that position's value row of the KV head.
  AttentionF32(q.data(), k.data(), v.data(), 1, kvd, s, scratch.data(), out.data());
  for (int64_t h = 0; h < 4; ++h) {
    for (int64_t d = 0; d < 16; ++d) EXPECT_FLOAT_EQ(out[h * 16 + d], v[(h / 2) * 16 + d]);
  }
}

}  // namespace
}  // namespace bitnet::kernels
