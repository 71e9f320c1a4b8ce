// Fused training-mode batch norm (+ residual add + ReLU) for bfloat16 channels-last activations on CPU (AVX-512).
//
// The activation is viewed as rows of channels, x: [M, C] (M = N * H * W) with C contiguous, as a channels_last
// NCHW tensor is laid out. Per channel c, over the M rows:
//
//   mean_c = sum_m x_mc / M,   var_c = sum_m (x_mc - mean_c)^2 / M   (biased),   r_c = 1 / sqrt(var_c + eps)
//   y_mc   = act( x_mc * s_c + o_c  [+ z_mc] ),  s_c = w_c r_c,  o_c = b_c - mean_c s_c,  act = ReLU or identity
//
// with z the residual; the normalised value is rounded to bfloat16 before z is added, as the unfused chain does.
// Backward, with g = dy masked by (y > 0) when act is ReLU, and xh = (x - mean) * r:
//
//   db_c = sum_m g_mc,   dw_c = sum_m g_mc xh_mc,   dz = g,   dx_mc = w_c r_c (g_mc - db_c / M - xh_mc dw_c / M)
//
// Sums are accumulated in float32 within blocks of rows and in float64 across blocks (in block order, so the
// result does not depend on the thread count); the statistics are taken about a per-channel shift (the first row)
// so that var = E[(x-k)^2] - E[x-k]^2 does not cancel. Forward reads x twice (statistics, output); backward reads
// dy and x twice (sums, input gradient). Without a residual the ReLU mask is recomputed from x with the forward's
// own fma and rounding, so y is not read back. Channels go 16 at a time through 512-bit vectors (a masked chunk
// for the last C mod 16). Without AVX-512 (F, BW, VL) the operators report `available() == false` and
// contrastkit keeps ATen's kernels.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define CONTRASTKIT_BF16_KERNELS 1
#include <immintrin.h>
#else
#define CONTRASTKIT_BF16_KERNELS 0
#endif

namespace {

bool available() { return CONTRASTKIT_BF16_KERNELS == 1; }

#if CONTRASTKIT_BF16_KERNELS

constexpr int64_t kLanes = 16;

// Rows per block: about 16 KiB of bfloat16 per block, so that a block stays in L1/L2 while its channel chunks
// are visited one after the other (32 to 512 rows).
inline int64_t rows_per_block(int64_t channels) { return std::clamp<int64_t>(8192 / channels, 32, 512); }

// Calls fn(begin, end) for the blocks of rows, blocks in parallel.
template <typename Fn>
inline void for_row_blocks(int64_t rows, int64_t channels, const Fn& fn) {
  const int64_t block_rows = rows_per_block(channels);
  const int64_t blocks = (rows + block_rows - 1) / block_rows;
  at::parallel_for(0, blocks, 1, [&](int64_t block_begin, int64_t block_end) {
    for (int64_t block = block_begin; block < block_end; ++block) {
      fn(block * block_rows, std::min(rows, (block + 1) * block_rows));
    }
  });
}

// 16 (or the first `width` of them, the rest read as 0) bfloat16 values -> float32.
inline __m512 load_bf16(const uint16_t* p, __mmask16 lanes) {
  const __m256i raw = _mm256_maskz_loadu_epi16(lanes, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// float32 -> bfloat16 bits, round to nearest even, NaN -> 0x7FC0 (what c10::BFloat16(float) does).
inline __m256i to_bf16(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
  rounded = _mm512_mask_mov_epi32(rounded, nan, _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(rounded);
}

inline void store_bf16(uint16_t* p, __m256i bits, __mmask16 lanes) { _mm256_mask_storeu_epi16(p, lanes, bits); }

inline __m512 from_bf16(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// Lanes whose bfloat16 bits, read as int16, are > 0: exactly the positive values (and NaNs with a clear sign).
inline __mmask16 positive(__m256i bits) { return _mm256_cmpgt_epi16_mask(bits, _mm256_setzero_si256()); }

// Masked loads and stores never touch the lanes left out, so per-channel arrays need no padding to 16.
inline __m512 load_f32(const float* p, __mmask16 lanes) { return _mm512_maskz_loadu_ps(lanes, p); }

inline __mmask16 lane_mask(int64_t width) {
  return width >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << width) - 1u);
}

// Calls chunk(c0, lanes) for the channel chunks [c0, c0 + 16) (the last one masked).
template <typename Chunk>
inline void for_chunks(int64_t channels, const Chunk& chunk) {
  for (int64_t c0 = 0; c0 < channels; c0 += kLanes) chunk(c0, lane_mask(channels - c0));
}

// Two per-channel sums over all rows, in float64. visit(begin, end, c0, lanes, s1, s2) adds the float32 sums of
// rows [begin, end) of the chunk at c0 into s1, s2. Blocks of rows run in parallel.
template <typename Visit>
std::pair<std::vector<double>, std::vector<double>> blocked_sums(int64_t rows, int64_t channels, const Visit& visit) {
  const int64_t block_rows = rows_per_block(channels);
  const int64_t blocks = (rows + block_rows - 1) / block_rows;
  std::vector<float> partial(static_cast<size_t>(blocks * 2 * channels));
  for_row_blocks(rows, channels, [&](int64_t begin, int64_t end) {
    float* out = partial.data() + begin / block_rows * 2 * channels;
    for_chunks(channels, [&](int64_t c0, __mmask16 lanes) {
      __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
      visit(begin, end, c0, lanes, s1, s2);
      _mm512_mask_storeu_ps(out + c0, lanes, s1);
      _mm512_mask_storeu_ps(out + channels + c0, lanes, s2);
    });
  });
  std::vector<double> sum1(channels, 0.0), sum2(channels, 0.0);
  for (int64_t block = 0; block < blocks; ++block) {
    const float* in = partial.data() + block * 2 * channels;
    for (int64_t c = 0; c < channels; ++c) {
      sum1[c] += in[c];
      sum2[c] += in[channels + c];
    }
  }
  return {sum1, sum2};
}

// s = w r, o = b - mean s in float32; shared by forward and backward so the recomputed ReLU mask is exact.
void affine_coefficients(const float* mean, const float* invstd, const float* w, const float* b, int64_t channels,
                         std::vector<float>& scale, std::vector<float>& offset) {
  scale.resize(channels);
  offset.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    scale[c] = w[c] * invstd[c];
    offset[c] = b[c] - mean[c] * scale[c];
  }
}

// bf16 bits of act(x s + o [+ z]) for one chunk of one row (the forward's output, also used for the mask).
inline __m256i output_bits(__m512 x, __m512 s, __m512 o, const uint16_t* z, __mmask16 lanes, bool relu) {
  __m512 h = _mm512_fmadd_ps(x, s, o);
  if (z != nullptr) h = _mm512_add_ps(from_bf16(to_bf16(h)), load_bf16(z, lanes));
  if (relu) h = _mm512_max_ps(_mm512_setzero_ps(), h);  // NaN stays NaN (max returns its 2nd operand)
  return to_bf16(h);
}

// Without a residual: the lanes where the forward's output bf16(relu(fma(x, s, o))) is positive, read off the
// float32 bits of h = fma(x, s, o) without rounding: h rounds to a positive bfloat16 exactly when its bits, as an
// int32, exceed 0x8000 (0x8000 itself rounds to +0 by ties-to-even); a NaN h gives the canonical +NaN output.
inline __mmask16 positive_output(__m512 x, __m512 s, __m512 o) {
  const __m512 h = _mm512_fmadd_ps(x, s, o);
  return _mm512_cmpgt_epi32_mask(_mm512_castps_si512(h), _mm512_set1_epi32(0x8000)) |
         _mm512_cmp_ps_mask(h, h, _CMP_UNORD_Q);
}

#endif  // CONTRASTKIT_BF16_KERNELS

void check_rows(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kBFloat16 && t.dim() == 2 && t.is_contiguous(), name,
              " must be a contiguous bfloat16 CPU tensor [M, C]");
}

void check_channels(const at::Tensor& t, int64_t channels, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 1 && t.numel() == channels &&
                  t.is_contiguous(),
              name, " must be a contiguous float32 CPU tensor [C]");
}

// Returns (y [M, C] bf16, mean [C] f32, invstd [C] f32, var [C] f32 biased).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& weight,
                                                                   const at::Tensor& bias,
                                                                   const c10::optional<at::Tensor>& residual,
                                                                   double eps, bool relu) {
  TORCH_CHECK(available(), "contrastkit_bf16 kernels need AVX-512 (F, BW, VL)");
  check_rows(x, "x");
  const int64_t rows = x.size(0), channels = x.size(1);
  TORCH_CHECK(rows > 1, "batch norm in training mode needs more than one value per channel");
  check_channels(weight, channels, "weight");
  check_channels(bias, channels, "bias");
  const bool has_residual = residual.has_value() && residual->defined();
  if (has_residual) {
    check_rows(*residual, "residual");
    TORCH_CHECK(residual->sizes() == x.sizes(), "residual must have the shape of x");
  }
  auto opts = weight.options();
  at::Tensor mean = at::empty({channels}, opts), invstd = at::empty({channels}, opts);
  at::Tensor var = at::empty({channels}, opts), y = at::empty_like(x);
#if CONTRASTKIT_BF16_KERNELS
  const uint16_t* xb = reinterpret_cast<const uint16_t*>(x.data_ptr());
  std::vector<float> shift(channels);
  for (int64_t c = 0; c < channels; ++c) {
    uint32_t u = static_cast<uint32_t>(xb[c]) << 16;
    std::memcpy(&shift[c], &u, sizeof(float));
  }
  const auto sums = blocked_sums(rows, channels, [&](int64_t begin, int64_t end, int64_t c0, __mmask16 lanes,
                                                     __m512& s1, __m512& s2) {
    const __m512 k = load_f32(shift.data() + c0, lanes);
    __m512 t1 = _mm512_setzero_ps(), t2 = _mm512_setzero_ps();  // a second chain for odd rows
    int64_t m = begin;
    for (; m + 1 < end; m += 2) {
      const __m512 v = _mm512_sub_ps(load_bf16(xb + m * channels + c0, lanes), k);
      const __m512 u = _mm512_sub_ps(load_bf16(xb + (m + 1) * channels + c0, lanes), k);
      s1 = _mm512_add_ps(s1, v);
      s2 = _mm512_fmadd_ps(v, v, s2);
      t1 = _mm512_add_ps(t1, u);
      t2 = _mm512_fmadd_ps(u, u, t2);
    }
    if (m < end) {
      const __m512 v = _mm512_sub_ps(load_bf16(xb + m * channels + c0, lanes), k);
      s1 = _mm512_add_ps(s1, v);
      s2 = _mm512_fmadd_ps(v, v, s2);
    }
    s1 = _mm512_add_ps(s1, t1);
    s2 = _mm512_add_ps(s2, t2);
  });
  float* mean_p = mean.data_ptr<float>();
  float* invstd_p = invstd.data_ptr<float>();
  float* var_p = var.data_ptr<float>();
  for (int64_t c = 0; c < channels; ++c) {
    const double d = sums.first[c] / static_cast<double>(rows);
    const double v = std::max(sums.second[c] / static_cast<double>(rows) - d * d, 0.0);
    mean_p[c] = static_cast<float>(shift[c] + d);
    invstd_p[c] = static_cast<float>(1.0 / std::sqrt(v + eps));
    var_p[c] = static_cast<float>(v);
  }
  std::vector<float> scale, offset;
  affine_coefficients(mean_p, invstd_p, weight.data_ptr<float>(), bias.data_ptr<float>(), channels, scale, offset);

  uint16_t* yb = reinterpret_cast<uint16_t*>(y.data_ptr());
  const uint16_t* zb = has_residual ? reinterpret_cast<const uint16_t*>(residual->data_ptr()) : nullptr;
  for_row_blocks(rows, channels, [&](int64_t begin, int64_t end) {
    for_chunks(channels, [&](int64_t c0, __mmask16 lanes) {
      const __m512 s = load_f32(scale.data() + c0, lanes), o = load_f32(offset.data() + c0, lanes);
      for (int64_t m = begin; m < end; ++m) {
        const int64_t at = m * channels + c0;
        const __m512 xv = load_bf16(xb + at, lanes);
        store_bf16(yb + at, output_bits(xv, s, o, zb != nullptr ? zb + at : nullptr, lanes, relu), lanes);
      }
    });
  });
#endif
  return {y, mean, invstd, var};
}

// Returns (dx [M, C] bf16, dweight [C] f32, dbias [C] f32, dresidual [M, C] bf16 or undefined). `y` (the forward
// output) is read for the ReLU mask only when relu and has_residual are set; pass any tensor otherwise.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& dy, const at::Tensor& x,
                                                                    const at::Tensor& y, const at::Tensor& weight,
                                                                    const at::Tensor& bias, const at::Tensor& mean,
                                                                    const at::Tensor& invstd, bool relu,
                                                                    bool has_residual, bool residual_grad) {
  TORCH_CHECK(available(), "contrastkit_bf16 kernels need AVX-512 (F, BW, VL)");
  check_rows(dy, "dy");
  check_rows(x, "x");
  TORCH_CHECK(dy.sizes() == x.sizes(), "dy must have the shape of x");
  const int64_t rows = x.size(0), channels = x.size(1);
  check_channels(weight, channels, "weight");
  check_channels(bias, channels, "bias");
  check_channels(mean, channels, "mean");
  check_channels(invstd, channels, "invstd");
  const bool mask_from_y = relu && has_residual;
  if (mask_from_y) {
    check_rows(y, "y");
    TORCH_CHECK(y.sizes() == x.sizes(), "y must have the shape of x");
  }
  auto opts = weight.options();
  at::Tensor dweight = at::empty({channels}, opts), dbias = at::empty({channels}, opts);
  at::Tensor dx = at::empty_like(x);
  at::Tensor dresidual = residual_grad ? at::empty_like(x) : at::Tensor();
#if CONTRASTKIT_BF16_KERNELS
  const uint16_t* gb = reinterpret_cast<const uint16_t*>(dy.data_ptr());
  const uint16_t* xb = reinterpret_cast<const uint16_t*>(x.data_ptr());
  const uint16_t* yb = mask_from_y ? reinterpret_cast<const uint16_t*>(y.data_ptr()) : nullptr;
  const float* mu = mean.data_ptr<float>();
  const float* r = invstd.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  std::vector<float> scale, offset;
  affine_coefficients(mu, r, w, bias.data_ptr<float>(), channels, scale, offset);

  // The masked gradient g of the chunk at `at` (dy where the output was positive, when act is ReLU).
  auto masked_grad = [&](int64_t at, __mmask16 lanes, __m512 xv, __m512 s, __m512 o) -> __m512 {
    const __m512 g = load_bf16(gb + at, lanes);
    if (!relu) return g;
    const __mmask16 keep = yb != nullptr ? positive(_mm256_maskz_loadu_epi16(lanes, yb + at)) : positive_output(xv, s, o);
    return _mm512_maskz_mov_ps(keep, g);
  };

  const auto sums = blocked_sums(rows, channels, [&](int64_t begin, int64_t end, int64_t c0, __mmask16 lanes,
                                                     __m512& s1, __m512& s2) {
    const __m512 s = load_f32(scale.data() + c0, lanes), o = load_f32(offset.data() + c0, lanes);
    const __m512 m0 = load_f32(mu + c0, lanes);
    __m512 t1 = _mm512_setzero_ps(), t2 = _mm512_setzero_ps();  // a second chain for odd rows
    int64_t m = begin;
    for (; m + 1 < end; m += 2) {
      const int64_t at = m * channels + c0, next = at + channels;
      const __m512 xv = load_bf16(xb + at, lanes), xu = load_bf16(xb + next, lanes);
      const __m512 g = masked_grad(at, lanes, xv, s, o), h = masked_grad(next, lanes, xu, s, o);
      s1 = _mm512_add_ps(s1, g);
      s2 = _mm512_fmadd_ps(g, _mm512_sub_ps(xv, m0), s2);
      t1 = _mm512_add_ps(t1, h);
      t2 = _mm512_fmadd_ps(h, _mm512_sub_ps(xu, m0), t2);
    }
    if (m < end) {
      const int64_t at = m * channels + c0;
      const __m512 xv = load_bf16(xb + at, lanes);
      const __m512 g = masked_grad(at, lanes, xv, s, o);
      s1 = _mm512_add_ps(s1, g);
      s2 = _mm512_fmadd_ps(g, _mm512_sub_ps(xv, m0), s2);
    }
    s1 = _mm512_add_ps(s1, t1);
    s2 = _mm512_add_ps(s2, t2);
  });

  std::vector<float> ca(channels), cb(channels), cd(channels);
  const double inv_rows = 1.0 / static_cast<double>(rows);
  for (int64_t c = 0; c < channels; ++c) {
    const double sum_g = sums.first[c], sum_gx = sums.second[c], rc = r[c];
    dbias.data_ptr<float>()[c] = static_cast<float>(sum_g);
    dweight.data_ptr<float>()[c] = static_cast<float>(sum_gx * rc);
    // dx = A g + B x + D with A = w r, B = -w r^3 sum_gx / M, D = -A sum_g / M - B mean.
    const double a = w[c] * rc, b = -w[c] * rc * rc * rc * sum_gx * inv_rows;
    ca[c] = static_cast<float>(a);
    cb[c] = static_cast<float>(b);
    cd[c] = static_cast<float>(-a * sum_g * inv_rows - b * mu[c]);
  }

  uint16_t* dxb = reinterpret_cast<uint16_t*>(dx.data_ptr());
  uint16_t* dzb = residual_grad ? reinterpret_cast<uint16_t*>(dresidual.data_ptr()) : nullptr;
  for_row_blocks(rows, channels, [&](int64_t begin, int64_t end) {
    for_chunks(channels, [&](int64_t c0, __mmask16 lanes) {
      const __m512 a = load_f32(ca.data() + c0, lanes), b = load_f32(cb.data() + c0, lanes);
      const __m512 d = load_f32(cd.data() + c0, lanes);
      const __m512 s = load_f32(scale.data() + c0, lanes), o = load_f32(offset.data() + c0, lanes);
      for (int64_t m = begin; m < end; ++m) {
        const int64_t at = m * channels + c0;
        const __m512 xv = load_bf16(xb + at, lanes);
        const __m512 g = masked_grad(at, lanes, xv, s, o);
        store_bf16(dxb + at, to_bf16(_mm512_fmadd_ps(a, g, _mm512_fmadd_ps(b, xv, d))), lanes);
        if (dzb != nullptr) store_bf16(dzb + at, to_bf16(g), lanes);
      }
    });
  });
#endif
  return {dx, dweight, dbias, dresidual};
}

}  // namespace

TORCH_LIBRARY(contrastkit_bf16, m) {
  m.def("available() -> bool", &available);
  m.def("batch_norm_forward(Tensor x, Tensor weight, Tensor bias, Tensor? residual, float eps, bool relu) -> "
        "(Tensor, Tensor, Tensor, Tensor)");
  m.def("batch_norm_backward(Tensor dy, Tensor x, Tensor y, Tensor weight, Tensor bias, Tensor mean, "
        "Tensor invstd, bool relu, bool has_residual, bool residual_grad) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(contrastkit_bf16, CPU, m) {
  m.impl("batch_norm_forward", forward);
  m.impl("batch_norm_backward", backward);
}
