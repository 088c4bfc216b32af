// examples/kv/store.hpp — the keyspace of coop-kv: keys hashed to shards,
// each shard's keys in a store (an open-addressing hash table of string
// values with optional expiry times).
//
// Sharding. keyspace::locate(key) hashes the key once; the high bits pick
// the shard and the store reuses the whole hash for its table. A shard is
// owned by exactly one reactor, and only that reactor's tasks touch its
// store. With one reactor every shard is local; keyspace::on_shard() is the
// one place where a command reaches a shard, so routing a command to the
// reactor that owns a remote shard plugs in there.
//
// Expiry. Times are Unix milliseconds (Redis's clock: EXPIREAT/PXAT take
// absolute times). A key whose expiry time is below `now` is gone: find()
// deletes it when it meets it (lazy expiry), and expire_cycle(), which the
// server runs periodically, samples keys that carry an expiry time and
// deletes the expired ones, so keys nobody reads again do not pile up.
#ifndef COOP_KV_STORE_HPP
#define COOP_KV_STORE_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace kv {

// Unix time in milliseconds.
using millis = std::int64_t;
inline constexpr millis no_expiry = -1;

millis unix_millis() noexcept;

// The hash of a key, keyed by a per-process random seed so that clients
// cannot choose colliding keys in advance.
std::uint64_t hash_key(std::string_view key, std::uint64_t seed) noexcept;

// One key and its value, in one allocation: this header, the key bytes,
// then room for the value.
struct entry {
    std::uint64_t hash;
    millis expire_at;            // no_expiry, or the Unix ms after which the key is gone
    std::uint32_t key_len;
    std::uint32_t val_len;
    std::uint32_t val_cap;       // bytes reserved for the value
    std::uint32_t volatile_pos;  // index in store::volatile_ while expire_at != no_expiry

    std::string_view key() const noexcept { return {bytes(), key_len}; }
    std::string_view value() const noexcept { return {bytes() + key_len, val_len}; }
    char* value_data() noexcept { return bytes() + key_len; }
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
    const char* bytes() const noexcept { return reinterpret_cast<const char*>(this + 1); }
};

class store {
public:
    store();
    ~store();
    store(const store&) = delete;
    store& operator=(const store&) = delete;

    // The live entry for key (h = its hash), or nullptr. An expired entry
    // met here is deleted.
    entry* find(std::string_view key, std::uint64_t h, millis now) noexcept;

    // Create or overwrite key with value. expire_at: no_expiry or a time;
    // keep_ttl keeps an existing live key's expiry time instead. Returns
    // the entry.
    entry* set(std::string_view key, std::uint64_t h, std::string_view value, millis expire_at, bool keep_ttl,
               millis now);

    // Replace the value of an entry returned by find()/set() (keeps its
    // expiry). The entry may move: use the returned pointer.
    entry* set_value(entry* e, std::string_view value);

    // Set or clear (no_expiry) the expiry time of a live entry.
    void set_expiry(entry* e, millis expire_at);

    // Delete e (from find()/set()).
    void erase(entry* e) noexcept;

    // Keys present, including expired ones not yet deleted (as Redis's DBSIZE).
    std::size_t size() const noexcept { return size_; }
    // Keys that carry an expiry time.
    std::size_t volatile_count() const noexcept { return volatile_.size(); }
    // Slots of the table (a power of two, at least 16).
    std::size_t slot_count() const noexcept { return mask_ + 1; }
    void clear() noexcept;

    // Active expiry: sample 20 keys that have an expiry time, delete the
    // expired ones; repeat while more than a quarter of a sample had
    // expired, until the steady clock reaches `until`. Then give table
    // memory back if most of it is empty. Returns how many keys were deleted.
    std::size_t expire_cycle(millis now, std::chrono::steady_clock::time_point until) noexcept;

private:
    struct slot {
        std::uint64_t hash;
        entry* e;               // nullptr: empty
    };

    std::size_t find_slot(std::string_view key, std::uint64_t h) const noexcept;
    void insert_slot(entry* e) noexcept;
    void erase_slot(std::size_t i) noexcept;
    bool rehash(std::size_t new_cap) noexcept;   // false: out of memory, table unchanged
    void track_volatile(entry* e);
    void untrack_volatile(entry* e) noexcept;
    void replace(entry* old_e, entry* new_e) noexcept;
    std::uint64_t random() noexcept;

    slot* slots_ = nullptr;
    std::size_t mask_ = 0;       // capacity - 1 (capacity is a power of two)
    std::size_t size_ = 0;
    std::vector<entry*> volatile_;
    std::uint64_t rng_;
};

class keyspace {
public:
    // `shards` stores, all owned by the calling thread (one reactor).
    explicit keyspace(unsigned shards);

    struct route {
        unsigned shard;
        std::uint64_t hash;
    };
    route locate(std::string_view key) const noexcept {
        const std::uint64_t h = hash_key(key, seed_);
        return {static_cast<unsigned>((h >> 40) % shard_count_), h};
    }

    // Run fn(store&) on the shard that owns the key. Every shard is local
    // for now: a direct call.
    template <class F>
    decltype(auto) on_shard(const route& r, F&& fn) {
        return fn(*stores_[r.shard]);
    }

    unsigned shard_count() const noexcept { return shard_count_; }
    // A shard's store, for whole-keyspace operations (DBSIZE, FLUSHALL,
    // active expiry) run by the reactor that owns it.
    store& shard(unsigned i) noexcept { return *stores_[i]; }

private:
    unsigned shard_count_;
    std::uint64_t seed_;
    std::vector<std::unique_ptr<store>> stores_;
};

} // namespace kv

#endif
