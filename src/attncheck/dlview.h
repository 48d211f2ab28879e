// A DLTensor seen as the reference's strided view (no copy).
#pragma once

#include <attncheck/plugin.h>
#include <attncheck/reference/view.h>

namespace attncheck {

// The dtype of a DLTensor in the reference's terms; throws
// std::invalid_argument for one the ABI does not have.
ref::DType ref_dtype(DLDataType t);
DLDataType dl_dtype(ref::DType t);

// The view of a (validated) DLTensor: its layout's offset is byte_offset in
// elements, base is data plus any remainder of byte_offset.
ref::View view_of(const DLTensor& t);

}  // namespace attncheck
