/* Broken plugins for the loader's error messages; BAD_KIND selects one. */
#include <attncheck/plugin.h>
#include <stddef.h>

static attncheck_status noop(const attncheck_attention* c, char* m, size_t n) {
  (void)c, (void)m, (void)n;
  return ATTNCHECK_UNSUPPORTED;
}

#if BAD_KIND == 1 /* no attncheck_impls symbol */
int not_the_entry_point(void) { return noop(NULL, NULL, 0); }
#elif BAD_KIND == 2 /* serves ABI version 2 only */
static const attncheck_impl impls[] = {{"future", kDLCPU, noop}};
const attncheck_impl* attncheck_impls(int v, size_t* count) {
  if (v != 2) return NULL;
  *count = 1;
  return impls;
}
#elif BAD_KIND == 3 /* duplicate names */
static const attncheck_impl impls[] = {{"twin", kDLCPU, noop}, {"twin", kDLCPU, noop}};
const attncheck_impl* attncheck_impls(int v, size_t* count) {
  (void)v;
  *count = 2;
  return impls;
}
#elif BAD_KIND == 4 /* invalid name */
static const attncheck_impl impls[] = {{"Bad Name", kDLCPU, noop}};
const attncheck_impl* attncheck_impls(int v, size_t* count) {
  (void)v;
  *count = 1;
  return impls;
}
#elif BAD_KIND == 5 /* null function */
static const attncheck_impl impls[] = {{"nofn", kDLCPU, NULL}};
const attncheck_impl* attncheck_impls(int v, size_t* count) {
  (void)v;
  (void)noop;
  *count = 1;
  return impls;
}
#endif
