/* A shared library that a test plugin links against and that is then out of
   the loader's reach: the situation of an adapter (torch.so, onednn.so) on a
   machine where libtorch or oneDNN is missing at run time. */
int attncheck_test_gone_answer(void) { return 42; }
