// coop/debug.hpp — deprecated name of coop/overflow.hpp (the stack-overflow
// reports were its only content). Kept for the 0.2 release; include
// coop/overflow.hpp instead.
#ifndef COOP_DEBUG_HPP
#define COOP_DEBUG_HPP

#include <coop/overflow.hpp>

#endif
