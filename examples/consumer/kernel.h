#pragma once
#include <attncheck/plugin.h>

attncheck_status my_attention(const attncheck_attention* call, char* message, size_t size);
