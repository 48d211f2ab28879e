// Shared by the libtorch adapter's two translation units: DLTensors as
// at::Tensor views, and the ABI boundary that turns exceptions into statuses.
#pragma once

#include <ATen/core/Tensor.h>
#include <attncheck/plugin.h>

#include <functional>
#include <string>

namespace attncheck::torch_adapter {

// The at::Tensor viewing t's elements where they lie (from_blob with t's
// shape and strides at data + byte_offset; no copy, no ownership). Throws
// std::invalid_argument for a dtype libtorch has no type for.
at::Tensor view_of(const DLTensor* t);

// Runs body (returning attncheck_status) behind the ABI: a c10::Error or any
// other exception becomes ATTNCHECK_FAILED with its message in message (one
// line), except libtorch's "not implemented for '<dtype>'", which is a
// decline (ATTNCHECK_UNSUPPORTED). Sets libtorch's threads first (once per
// process: verify calls each implementation in a fresh forked child).
attncheck_status at_boundary(char* message, size_t size, const std::function<attncheck_status()>& body);

// text shortened to one line (for a TorchScript traceback, its last line).
std::string one_line(const std::string& text);
// Writes one_line(text) into message.
void say(char* message, size_t size, const std::string& text);

// `torchscript`: ATTNCHECK_TORCHSCRIPT's module (torchscript.cpp).
// Loads ATTNCHECK_TORCHSCRIPT's module (once); false when it is named but
// does not load (the reason is printed on stderr).
bool torchscript_offered();
attncheck_status torchscript_attention(const attncheck_attention* call, char* message, size_t size);

}  // namespace attncheck::torch_adapter
