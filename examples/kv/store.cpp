// examples/kv/store.cpp — the hash table behind a shard, and the keyspace.
//
// Table: open addressing with linear probing over a power-of-two array of
// (hash, entry*) slots, at most 3/4 full; the full 64-bit hash in the slot
// lets a probe skip other keys without touching their entries. Deletion
// shifts the following run of the probe sequence back (no tombstones), so
// lookups never degrade after many deletes.
#include "kv/store.hpp"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <random>

namespace kv {

millis unix_millis() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return millis{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

namespace {

std::uint64_t load64(const unsigned char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
std::uint64_t load32(const unsigned char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// 64x64 -> 128-bit product, halves folded together: every input bit
// reaches every output bit in one multiplication.
std::uint64_t fold_mul(std::uint64_t a, std::uint64_t b) noexcept {
    const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
    return static_cast<std::uint64_t>(p) ^ static_cast<std::uint64_t>(p >> 64);
}

constexpr std::uint64_t kA = 0x892bc9fbb2fda8ffull;
constexpr std::uint64_t kB = 0x94b1199b22dcbb81ull;
constexpr std::uint64_t kC = 0x2faa8d8d1c2eadf3ull;
constexpr std::uint64_t kD = 0x958db0b1f0994cdfull;

std::uint64_t random_seed() {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

constexpr std::size_t kMinSlots = 16;

} // namespace

std::uint64_t hash_key(std::string_view key, std::uint64_t seed) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(key.data());
    std::size_t n = key.size();
    // The seed goes into both factors of every multiplication, so no
    // block an attacker picks can zero a factor without knowing it.
    std::uint64_t h = seed ^ (n * kA);
    while (n > 16) {
        h = fold_mul(load64(p) ^ seed ^ kB, load64(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    // The last 0..16 bytes, read as two (possibly overlapping) words.
    std::uint64_t a = 0, b = 0;
    if (n > 8) {
        a = load64(p);
        b = load64(p + n - 8);
    } else if (n >= 4) {
        a = load32(p);
        b = load32(p + n - 4);
    } else if (n > 0) {
        a = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[n / 2]} << 8) | p[n - 1];
    }
    h = fold_mul(a ^ seed ^ kB, b ^ h ^ kC);
    return fold_mul(h ^ seed, kD);
}

// ---------------------------------------------------------------- entries

namespace {

// Value capacity for a value of n bytes: the allocation rounded up to 16.
std::size_t value_capacity(std::size_t key_len, std::size_t n) noexcept {
    const std::size_t total = (sizeof(entry) + key_len + n + 15) & ~std::size_t{15};
    return total - sizeof(entry) - key_len;
}

entry* make_entry(std::string_view key, std::uint64_t h, std::string_view value) {
    const std::size_t cap = value_capacity(key.size(), value.size());
    void* mem = std::malloc(sizeof(entry) + key.size() + cap);
    if (!mem) throw std::bad_alloc();
    entry* e = static_cast<entry*>(mem);
    e->hash = h;
    e->expire_at = no_expiry;
    e->key_len = static_cast<std::uint32_t>(key.size());
    e->val_len = static_cast<std::uint32_t>(value.size());
    e->val_cap = static_cast<std::uint32_t>(cap);
    e->volatile_pos = 0;
    if (!key.empty()) std::memcpy(e->bytes(), key.data(), key.size());
    if (!value.empty()) std::memcpy(e->value_data(), value.data(), value.size());
    return e;
}

bool expired(const entry* e, millis now) noexcept {
    return e->expire_at != no_expiry && now > e->expire_at;
}

} // namespace

// ---------------------------------------------------------------- store

store::store() : rng_(random_seed() | 1) {
    if (!rehash(kMinSlots)) throw std::bad_alloc();
}

store::~store() {
    clear();
    std::free(slots_);
}

std::uint64_t store::random() noexcept {
    // xorshift64*
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545F4914F6CDD1Dull;
}

std::size_t store::find_slot(std::string_view key, std::uint64_t h) const noexcept {
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
        const slot& s = slots_[i];
        if (!s.e) return static_cast<std::size_t>(-1);
        if (s.hash == h && s.e->key_len == key.size() && std::memcmp(s.e->bytes(), key.data(), key.size()) == 0)
            return i;
    }
}

void store::insert_slot(entry* e) noexcept {
    std::size_t i = e->hash & mask_;
    while (slots_[i].e) i = (i + 1) & mask_;
    slots_[i] = {e->hash, e};
}

bool store::rehash(std::size_t new_cap) noexcept {
    auto* fresh = static_cast<slot*>(std::calloc(new_cap, sizeof(slot)));
    if (!fresh) return false;
    slot* old = slots_;
    const std::size_t old_cap = old ? mask_ + 1 : 0;
    slots_ = fresh;
    mask_ = new_cap - 1;
    for (std::size_t i = 0; i < old_cap; ++i)
        if (old[i].e) insert_slot(old[i].e);
    std::free(old);
    return true;
}

void store::erase_slot(std::size_t i) noexcept {
    entry* e = slots_[i].e;
    if (e->expire_at != no_expiry) untrack_volatile(e);
    std::free(e);
    --size_;
    // Close the hole: walk the run after it and move back every slot whose
    // home position is not cyclically within (hole, j].
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask_; slots_[j].e; j = (j + 1) & mask_) {
        const std::size_t home = slots_[j].hash & mask_;
        const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            slots_[hole] = slots_[j];
            hole = j;
        }
    }
    slots_[hole].e = nullptr;
}

void store::track_volatile(entry* e) {
    e->volatile_pos = static_cast<std::uint32_t>(volatile_.size());
    volatile_.push_back(e);
}

void store::untrack_volatile(entry* e) noexcept {
    entry* last = volatile_.back();
    volatile_[e->volatile_pos] = last;
    last->volatile_pos = e->volatile_pos;
    volatile_.pop_back();
}

void store::replace(entry* old_e, entry* new_e) noexcept {
    std::size_t i = old_e->hash & mask_;
    while (slots_[i].e != old_e) i = (i + 1) & mask_;
    slots_[i].e = new_e;
    if (old_e->expire_at != no_expiry) volatile_[old_e->volatile_pos] = new_e;
}

entry* store::find(std::string_view key, std::uint64_t h, millis now) noexcept {
    const std::size_t i = find_slot(key, h);
    if (i == static_cast<std::size_t>(-1)) return nullptr;
    entry* e = slots_[i].e;
    if (expired(e, now)) [[unlikely]] {
        erase_slot(i);
        return nullptr;
    }
    return e;
}

entry* store::set(std::string_view key, std::uint64_t h, std::string_view value, millis expire_at, bool keep_ttl,
                  millis now) {
    const std::size_t i = find_slot(key, h);
    if (i != static_cast<std::size_t>(-1)) {
        entry* e = slots_[i].e;
        if (!keep_ttl) {
            set_expiry(e, expire_at);
        } else if (expired(e, now)) {
            set_expiry(e, no_expiry);       // an expired key has no TTL left to keep
        }
        return set_value(e, value);
    }
    if ((size_ + 1) * 4 > (mask_ + 1) * 3 && !rehash((mask_ + 1) * 2)) throw std::bad_alloc();
    entry* e = make_entry(key, h, value);
    insert_slot(e);
    ++size_;
    if (!keep_ttl && expire_at != no_expiry) {
        try {
            set_expiry(e, expire_at);
        } catch (...) {
            erase(e);
            throw;
        }
    }
    return e;
}

entry* store::set_value(entry* e, std::string_view value) {
    // Overwrite in place when it fits and does not strand a much larger
    // allocation under a small value.
    if (value.size() <= e->val_cap && (e->val_cap <= 64 || value.size() >= e->val_cap / 4)) {
        if (!value.empty()) std::memmove(e->value_data(), value.data(), value.size());
        e->val_len = static_cast<std::uint32_t>(value.size());
        return e;
    }
    entry* n = make_entry(e->key(), e->hash, value);
    n->expire_at = e->expire_at;
    n->volatile_pos = e->volatile_pos;
    replace(e, n);
    std::free(e);
    return n;
}

void store::set_expiry(entry* e, millis expire_at) {
    if (e->expire_at == no_expiry && expire_at != no_expiry) {
        track_volatile(e);
    } else if (e->expire_at != no_expiry && expire_at == no_expiry) {
        untrack_volatile(e);
    }
    e->expire_at = expire_at;
}

void store::erase(entry* e) noexcept {
    std::size_t i = e->hash & mask_;
    while (slots_[i].e != e) i = (i + 1) & mask_;
    erase_slot(i);
}

void store::clear() noexcept {
    if (slots_) {
        for (std::size_t i = 0; i <= mask_; ++i) {
            std::free(slots_[i].e);
            slots_[i].e = nullptr;
        }
    }
    size_ = 0;
    volatile_.clear();
    volatile_.shrink_to_fit();
    if (mask_ + 1 > kMinSlots) {
        std::free(slots_);
        slots_ = nullptr;
        if (!rehash(kMinSlots)) {
            // Keep a table whatever happens: an empty one of the old size.
            slots_ = static_cast<slot*>(std::calloc(kMinSlots, sizeof(slot)));
            mask_ = kMinSlots - 1;
        }
    }
}

std::size_t store::expire_cycle(millis now, std::chrono::steady_clock::time_point until) noexcept {
    constexpr std::size_t kSample = 20;
    std::size_t deleted = 0;
    for (unsigned round = 0; !volatile_.empty(); ++round) {
        std::size_t sampled = 0, gone = 0;
        for (; sampled < kSample && !volatile_.empty(); ++sampled) {
            entry* e = volatile_[random() % volatile_.size()];
            if (expired(e, now)) {
                erase(e);
                ++gone;
            }
        }
        deleted += gone;
        if (gone * 4 <= sampled) break;
        if ((round & 15) == 15 && std::chrono::steady_clock::now() >= until) break;
    }
    // Shrink a table that is less than 1/8 full (to between 1/8 and 1/4).
    std::size_t cap = mask_ + 1;
    if (cap > kMinSlots && size_ * 8 < cap) {
        while (cap > kMinSlots && size_ * 8 < cap) cap /= 2;
        rehash(cap);
    }
    return deleted;
}

// ---------------------------------------------------------------- keyspace

keyspace::keyspace(unsigned shards) : shard_count_(shards ? shards : 1), seed_(random_seed()) {
    stores_.reserve(shard_count_);
    for (unsigned i = 0; i < shard_count_; ++i) stores_.push_back(std::make_unique<store>());
}

} // namespace kv
