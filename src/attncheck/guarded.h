// Guarded memory: each tensor of a case in its own mapping, fenced by guard
// pages, the view flush against one of them, every byte that is not an
// element of the view poisoned (NaN for inputs, a canary for out; out's own
// elements start as canary too), inputs write-protected during the call.
#pragma once

#include <attncheck/case.h>
#include <attncheck/plugin.h>
#include <attncheck/reference/view.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace attncheck {

// Rewrites the logical index (B, C, T, H, W) of a value before it is drawn,
// so derived cases can move, replace or keep values (metamorphic tests).
// Return false to draw the value from `alt_seed` instead of the recipe's.
using IndexTransform = std::function<bool(int role, std::array<int64_t, 5>& idx)>;

constexpr unsigned char kInputPoison = 0xff;  // NaN in every dtype, at any alignment
constexpr unsigned char kOutCanary = 0xa5;
// A second canary, for confirming an element was not written: no value is
// both patterns, so an element holding the canary after a call and the
// second canary after a rerun was written by neither call (f16 0xa5a5 is
// -0.0226, an ordinary output; 0x5a5a is 203.25).
constexpr unsigned char kOutCanary2 = 0x5a;
// A finite pattern in every dtype at any alignment (f32 0.747, f64 4.8e-4,
// f16 1.81, bf16 0.747): put around the views instead of the poison, it
// tells a NaN read from outside them from a NaN the arithmetic made.
constexpr unsigned char kFinitePoison = 0x3f;

// One mapping: [guard page][region][guard page].
struct Mapping {
  std::byte* base = nullptr;  // start of the whole mapping (a guard page)
  size_t total = 0;
  std::byte* region = nullptr;  // the accessible bytes
  size_t region_size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();
};

class GuardedCase {
 public:
  // Lays out and fills the case's tensors. Throws std::invalid_argument
  // when the case needs more memory than max_bytes.
  explicit GuardedCase(const Case& c, const IndexTransform& transform = {},
                       size_t max_bytes = size_t{1} << 30);

  const Case& spec() const { return case_; }
  attncheck_attention* call() { return &call_; }
  // A backward case's backward call (throws std::logic_error for a forward
  // case). Call it after the forward call has written out and freeze_out().
  attncheck_attention_backward* backward_call();
  // Makes out an input from now on (for the backward call): its bytes are
  // checksummed, write-protected with the inputs and checked unchanged.
  void freeze_out();
  // The reference's views of q, k, v (exact stored values) and out.
  ref::View view(int role) const;

  // mprotect the input mappings read-only (true) or read-write (false).
  void protect_inputs(bool read_only);
  // The first problem with the memory around the views after a call, or "":
  // bytes of out outside its view changed, or an input changed.
  std::string check_memory() const;
  // The elements of output `role` (flat row-major logical indices) that
  // still hold the current canary in every byte.
  std::vector<int64_t> unwritten(int role = kRoleOut) const;
  // Names what a fault address hit: "read past the end of k", ... or "".
  std::string describe_address(const void* addr, bool write) const;
  // Resets every output (view and slack: out, and dq, dk and dv of a
  // backward case; out no more once frozen) to a canary (kOutCanary or
  // kOutCanary2).
  void reset_outputs(unsigned char canary = kOutCanary);
  // Rewrites every byte of the input mappings that is not an element of a
  // view with `fill` (the elements keep their values).
  void refill_around_inputs(unsigned char fill);
  // What the bytes around the input views hold now (a device harness fills
  // its guard bands with it too).
  unsigned char input_fill() const { return input_fill_; }
  // What out's slack (and unwritten elements) hold now.
  unsigned char out_canary() const { return out_canary_; }
  // True when every element v reads lies inside one of this case's mappings
  // (so the reference may evaluate a misread of the same memory safely).
  bool readable(const ref::View& v) const;
  // The mappings the tensors live in, each with whether it holds inputs
  // (else out): for a harness that mirrors them in device memory.
  std::vector<std::pair<const Mapping*, bool>> mappings() const;

 private:
  struct Tensor {
    int buffer = 0;              // which mapping
    Layout layout;               // element strides; offset relative to data
    std::vector<int64_t> shape;
    std::array<int64_t, 5> strides{};
    std::byte* data = nullptr;  // DLTensor data
    uint64_t byte_offset = 0;
    DLTensor dl{};
  };
  struct Buffer {
    std::unique_ptr<Mapping> map;
    bool input = true;
    std::vector<int> roles;         // tensors that live here
    uint64_t checksum = 0;          // inputs: of the region after filling
    std::vector<bool> is_element;   // out: per region byte
  };

  Case case_;
  std::vector<Buffer> buffers_;
  std::array<Tensor, kRoles> t_;
  attncheck_attention call_{};
  attncheck_attention_backward backward_call_{};
  size_t elem_ = 4;
  unsigned char input_fill_ = kInputPoison;
  unsigned char out_canary_ = kOutCanary;

  uint64_t region_checksum(const Buffer& b) const;
};

// Maps span bytes between two guard pages (see GuardedCase), filled with
// `fill`; *data is where element 0 of a view with `before` leading elements
// of offset goes.
std::unique_ptr<Mapping> make_mapping(size_t span, int64_t before, size_t elem, bool flush_high, bool misalign,
                                      unsigned char fill, std::byte** data);

// SplitMix64's finalizer: the hash of value synthesis and of the memory
// checksums.
uint64_t splitmix64(uint64_t x);

// The value a recipe gives the element at a logical index (a function of the
// recipe and the index only, never of the layout).
double draw_value(const ValueRecipe& r, uint64_t salt, const std::array<int64_t, 5>& idx, int64_t position,
                  int64_t positions);

// One (B, C, T, H, W) tensor in guarded memory, laid out by a recipe and
// filled by a value recipe: for properties of your own (see generators.h).
class GuardedTensor {
 public:
  GuardedTensor(const std::vector<int64_t>& shape, const LayoutRecipe& layout, DType dtype,
                const ValueRecipe& values, bool flush_high = false);
  DLTensor* dl() { return &dl_; }
  ref::View view() const;                 // the exact stored values
  const Layout& layout() const { return layout_; }
  void protect(bool read_only);           // mprotect its memory
 private:
  std::unique_ptr<Mapping> map_;
  DType dtype_;
  std::vector<int64_t> shape_;
  Layout layout_;
  std::array<int64_t, 5> strides_{};
  std::byte* data_ = nullptr;
  DLTensor dl_{};
};

// Reads out's view of a GuardedCase (or anything) as long double values.
ref::Tensor read_out(const ref::View& v);

}  // namespace attncheck
