// The options of `attncheck verify`, parsed once for every front end that
// takes them: the command line (src/cli/main.cpp), the Python package's
// `python3 -m attncheck verify` and `attncheck.verify(...)`.
#pragma once

#include <attncheck/verify.h>

#include <string>
#include <vector>

namespace attncheck {

// The option lines of `verify --help` (after the usage line).
extern const char* const kVerifyOptionsHelp;

// Parses `args` (what follows "verify") into opt. A word that is not an
// option is the TARGET (opt.target); a second one is an error. Returns "" or
// a one-line usage error naming the option and what is wrong with it.
// *help is set when --help or -h is among args (nothing else is parsed then).
std::string parse_verify_args(const std::vector<std::string>& args, VerifyOptions& opt, bool* help);

// "a,b,c" -> {"a", "b", "c"} (an empty item stays, for the parser of the
// items to name).
std::vector<std::string> split_list(const std::string& s);

}  // namespace attncheck
