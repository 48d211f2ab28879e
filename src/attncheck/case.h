// The case model: one plain value describing a whole attention call: sizes,
// scale, dtype, and for each tensor a layout recipe and (inputs) a value
// recipe. It has a one-line text form that parses back to the same case, so
// a failure prints as a line that replays it. The RapidCheck generator
// (generators.h) and the fuzzers' byte decoder (decode.h) both produce it.
#pragma once

#include <attncheck/geometry.h>
#include <attncheck/layout.h>
#include <attncheck/reference/attention.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace attncheck {

using ref::Axes;
using ref::DType;

// The tensors of a call. A backward case (Case::backward) has all eight:
// out is then an input too (the implementation's own forward output), dout
// an input like q, k and v, and dq, dk, dv outputs like out.
enum Role { kRoleQ = 0, kRoleK = 1, kRoleV = 2, kRoleOut = 3, kRoleDout = 4, kRoleDq = 5, kRoleDk = 6, kRoleDv = 7 };
constexpr int kForwardRoles = 4;
constexpr int kRoles = 8;
const char* role_name(int role);

// How a tensor of a given shape lies in memory. Memory order is a
// permutation of (B, C, T, H, W), outermost first: order 0 is compact
// (B, C, T, H, W), channels-last-3d is (B, T, H, W, C).
struct LayoutRecipe {
  int order = 0;                   // 0..119, index of the memory-order permutation
  int64_t inner = 1;               // stride of the innermost memory dimension (> 1: gaps)
  std::array<int64_t, 5> pad{};    // elements of padding after each dim's run, per (B,C,T,H,W)
  int64_t offset = 0;              // elements before the view (a slice; byte_offset)
  bool misalign = false;           // first element not 16-byte aligned (aligned to its size)
  int broadcast = 0;               // bit d set: stride 0 on dim d (inputs only)
  int64_t size1_stride = 0;        // > 0: the stride given to every size-1 dim

  bool is_compact() const;
  friend bool operator==(const LayoutRecipe&, const LayoutRecipe&) = default;
};

// The memory order of recipe.order, outermost first.
std::array<int, 5> memory_order(int order);
int order_index(const std::array<int, 5>& memory_order);
int channels_last_order();

enum class ValueKind {
  normal,    // N(0, 1)
  large,     // N(0, 1) * 24: logits far past exp's float overflow
  ties,      // from {-1, 0, 1}: exactly tied logits
  dominant,  // N(0, 1), one position of each group scaled by 16
  scaled,    // N(0, 1) * 2^e, e = seed % 29 - 20: the whole tensor tiny (2^-20) to
             // large (2^8): f16's subnormals, nearly uniform attention
  offset,    // +-128 + 96 N(0, 1), the sign from the seed: magnitudes up to a few
             // hundred, mostly of one sign, so long sums grow (past f16's 65504)
};
constexpr int kValueKinds = 6;
const char* name_of(ValueKind k);

struct ValueRecipe {
  ValueKind kind = ValueKind::normal;
  uint32_t seed = 1;
  friend bool operator==(const ValueRecipe&, const ValueRecipe&) = default;
};

// Inputs sharing memory, as fused projections and self-attention produce.
enum class Share {
  none,
  qk_same,     // k is q: the same buffer, layout and values (needs equal shapes)
  kv_overlap,  // k and v are channel slices of one buffer that overlap by
               // kv_overlap channels (a fused KV projection, sliced)
};
const char* name_of(Share s);

struct Case {
  Axes axes = Axes::spatial;
  DType dtype = DType::f32;
  int64_t B = 1, C = 1, Cv = 1, heads = 1;
  int64_t Tq = 1, Hq = 1, Wq = 1;  // q and out
  int64_t Tk = 1, Hk = 1, Wk = 1;  // k and v
  double scale = 1.0;
  Share share = Share::none;
  int64_t kv_overlap = 0;
  bool flush_high = false;  // views against the upper guard page (else the lower)
  // A backward call (dq, dk, dv from dout): the roles from kRoleDout on are
  // used only then (and kept at their defaults otherwise).
  bool backward = false;
  std::array<LayoutRecipe, kRoles> layout{};  // q, k, v, out, dout, dq, dk, dv
  std::array<ValueRecipe, 4> values{};        // q, k, v, dout
  int roles() const { return backward ? kRoles : kForwardRoles; }

  std::vector<int64_t> shape(int role) const;
  // Tensor `role`'s groups and positions (q and out: Tq, Hq, Wq; k and v: Tk, Hk, Wk).
  Geometry geometry(int role) const;
  int64_t D() const { return C / heads; }
  int64_t Dv() const { return Cv / heads; }
  int64_t groups() const;
  int64_t Sq() const;
  int64_t Sk() const;
  // 4 * groups * heads * Sq * Sk * max(D, Dv): the work of one call (3.5
  // times that for a backward case: its forward call and the backward).
  double flops() const;

  // Throws std::invalid_argument naming the field when the case is not one
  // the spec allows (sizes, heads, axes constraints, share needs, out's
  // broadcast); brings ignored fields to canonical values first.
  void normalize();

  // One line, key=value fields; parse(to_text()) == *this.
  std::string to_text() const;
  static Case parse(const std::string& text);  // throws std::invalid_argument

  // Whether tensor `role`'s first element really is misaligned to 16 bytes
  // in guarded memory: its recipe asks for it and the placement honours it
  // (views flush against the lower guard page, elements under 16 bytes; k
  // of qk_same is q's pointer; v of kv_overlap lies wherever k's layout puts
  // it, so it is not claimed).
  bool misaligned(int role) const;

  // Layout classes this case exercises (for coverage tables), e.g.
  // "permuted", "padded", "inner_stride", "offset", "misaligned",
  // "broadcast", "size1_strides", "shared", "compact".
  std::vector<std::string> layout_classes() const;

  friend bool operator==(const Case&, const Case&) = default;
};

// The layout (element strides, offset) recipe r gives a tensor of this shape.
Layout make_layout(const LayoutRecipe& r, const std::vector<int64_t>& shape);

}  // namespace attncheck
