// coop/detail/error.hpp — errno values as std::error_code, one way everywhere.
#ifndef COOP_DETAIL_ERROR_HPP
#define COOP_DETAIL_ERROR_HPP

#include <system_error>

namespace coop::detail {

// 0 -> {}, else the generic_category code with that errno meaning.
inline std::error_code errc_of(int e) noexcept {
    return e ? std::error_code(e, std::generic_category()) : std::error_code();
}

} // namespace coop::detail

#endif
