/* A plugin written only from shared/spec/plugin-abi.md, in plain C: it
   declines every call. It proves the header compiles as C and that the
   loader accepts what the spec describes. */
#include <attncheck/plugin.h>
#include <string.h>

static attncheck_status decline(const attncheck_attention* call, char* message,
                                size_t message_size) {
  (void)call;
  if (message && message_size) {
    strncpy(message, "spec_plugin declines everything", message_size - 1);
    message[message_size - 1] = '\0';
  }
  return ATTNCHECK_UNSUPPORTED;
}

static const attncheck_impl impls[] = {
    {"spec.decline", kDLCPU, decline},
    {"spec-gpu_2", kDLCUDA, decline},
};

const attncheck_impl* attncheck_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return NULL;
  *count = sizeof impls / sizeof impls[0];
  return impls;
}
