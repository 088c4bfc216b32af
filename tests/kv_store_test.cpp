// tests/kv_store_test.cpp — coop-kv's hash table and keyspace
// (examples/kv/store.*) on their own, against std::unordered_map: inserts,
// overwrites, deletes (whose back-shifting must keep every other key
// reachable), growth and shrinking, lazy and active expiry.
#include "kv/store.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <unordered_map>

namespace {

using kv::entry;
using kv::keyspace;
using kv::millis;
using kv::no_expiry;
using kv::store;

constexpr std::uint64_t kSeed = 0x1234567;
constexpr millis kNow = 1'000'000;

std::uint64_t h(std::string_view k) { return kv::hash_key(k, kSeed); }

std::string value_of(store& s, const std::string& k, millis now = kNow) {
    entry* e = s.find(k, h(k), now);
    return e ? std::string(e->value()) : std::string("<none>");
}

auto far_future() { return std::chrono::steady_clock::now() + std::chrono::seconds(10); }

} // namespace

TEST(KvStore, RandomOperationsMatchAReferenceMap) {
    store s;
    std::unordered_map<std::string, std::string> ref;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 200000; ++i) {
        // A small key space, so deletes and overwrites hit often and probe
        // runs form and break up constantly.
        const std::string k = "key:" + std::to_string(rng() % 3000);
        switch (rng() % 4) {
            case 0:
            case 1: {
                const std::string v(rng() % 100, static_cast<char>('a' + rng() % 26));
                s.set(k, h(k), v, no_expiry, false, kNow);
                ref[k] = v;
                break;
            }
            case 2:
                if (entry* e = s.find(k, h(k), kNow)) s.erase(e);
                ref.erase(k);
                break;
            default: {
                auto it = ref.find(k);
                ASSERT_EQ(value_of(s, k), it == ref.end() ? "<none>" : it->second) << "op " << i;
            }
        }
        ASSERT_EQ(s.size(), ref.size());
    }
    for (const auto& [k, v] : ref) ASSERT_EQ(value_of(s, k), v);
}

TEST(KvStore, GrowsAndShrinksKeepingEveryKey) {
    store s;
    EXPECT_EQ(s.slot_count(), 16u);
    // Nine keys in ten expire at kNow + 10.
    for (int i = 0; i < 100000; ++i) {
        const std::string k = std::to_string(i);
        s.set(k, h(k), k, i % 10 ? kNow + 10 : no_expiry, false, kNow);
    }
    EXPECT_EQ(s.size(), 100000u);
    EXPECT_EQ(s.volatile_count(), 90000u);
    const std::size_t grown = s.slot_count();
    EXPECT_GE(grown * 3, s.size() * 4);               // at most 3/4 full
    for (int i = 0; i < 100000; i += 997) EXPECT_EQ(value_of(s, std::to_string(i)), std::to_string(i));
    // Active expiry alone removes them (nobody looks them up), and the
    // table shrinks for the 10 000 that stay.
    std::size_t removed = 0;
    for (int round = 0; round < 100000 && s.volatile_count() > 0; ++round)
        removed += s.expire_cycle(kNow + 11, far_future());
    EXPECT_EQ(removed, 90000u);
    EXPECT_EQ(s.size(), 10000u);
    EXPECT_LT(s.slot_count(), grown);
    EXPECT_GE(s.slot_count() * 3, s.size() * 4);
    for (int i = 0; i < 100000; i += 7)
        ASSERT_EQ(value_of(s, std::to_string(i), kNow + 11), i % 10 ? "<none>" : std::to_string(i));
    s.clear();
    EXPECT_EQ(s.size(), 0u);
    EXPECT_EQ(s.slot_count(), 16u);
    EXPECT_EQ(value_of(s, "0"), "<none>");
}

TEST(KvStore, LazyExpiryAndTtlBookkeeping) {
    store s;
    const std::string k = "k";
    s.set(k, h(k), "v", kNow + 100, false, kNow);
    EXPECT_EQ(value_of(s, k, kNow + 100), "v");        // alive through its last millisecond
    EXPECT_EQ(s.size(), 1u);
    EXPECT_EQ(value_of(s, k, kNow + 101), "<none>");   // then gone, and deleted
    EXPECT_EQ(s.size(), 0u);
    EXPECT_EQ(s.volatile_count(), 0u);

    // Overwriting without keep_ttl clears the expiry; with it, keeps it.
    s.set(k, h(k), "v1", kNow + 100, false, kNow);
    s.set(k, h(k), "v2", no_expiry, true, kNow);
    EXPECT_EQ(s.find(k, h(k), kNow)->expire_at, kNow + 100);
    s.set(k, h(k), "v3", no_expiry, false, kNow);
    EXPECT_EQ(s.find(k, h(k), kNow)->expire_at, no_expiry);
    EXPECT_EQ(s.volatile_count(), 0u);
    // keep_ttl on a key that has expired meanwhile keeps nothing.
    s.set(k, h(k), "v4", kNow + 1, false, kNow);
    s.set(k, h(k), "v5", no_expiry, true, kNow + 2);
    EXPECT_EQ(s.find(k, h(k), kNow + 2)->expire_at, no_expiry);
    EXPECT_EQ(value_of(s, k, kNow + 1000), "v5");
}

TEST(KvStore, ValuesGrowAndShrinkInPlaceOrMove) {
    store s;
    const std::string k = "grow";
    entry* e = s.set(k, h(k), "x", kNow + 500, false, kNow);
    for (std::size_t n : {10u, 1000u, 3u, 100000u, 0u, 64u}) {
        const std::string v(n, 'q');
        e = s.set_value(e, v);
        EXPECT_EQ(e->value(), v);
        EXPECT_EQ(s.find(k, h(k), kNow), e);
        EXPECT_EQ(e->expire_at, kNow + 500);          // moving keeps the expiry ...
    }
    EXPECT_EQ(s.volatile_count(), 1u);               // ... and its place in the sample list
    EXPECT_EQ(s.expire_cycle(kNow + 501, far_future()), 1u);
    EXPECT_EQ(s.size(), 0u);
}

TEST(KvStore, KeysSpreadOverShardsAndRouteConsistently) {
    keyspace ks(4);
    ASSERT_EQ(ks.shard_count(), 4u);
    int per_shard[4] = {};
    for (int i = 0; i < 4000; ++i) {
        const std::string k = "user:" + std::to_string(i);
        const keyspace::route r = ks.locate(k);
        ASSERT_LT(r.shard, 4u);
        ASSERT_EQ(ks.locate(k).shard, r.shard);
        ++per_shard[r.shard];
        ks.on_shard(r, [&](store& st) { st.set(k, r.hash, k, no_expiry, false, kNow); });
    }
    for (int n : per_shard) {
        EXPECT_GT(n, 700);          // 1000 expected each; a broken hash puts them in one
        EXPECT_LT(n, 1300);
    }
    std::size_t total = 0;
    for (unsigned i = 0; i < 4; ++i) total += ks.shard(i).size();
    EXPECT_EQ(total, 4000u);
    const std::string k = "user:17";
    const keyspace::route r = ks.locate(k);
    EXPECT_EQ(ks.shard(r.shard).find(k, r.hash, kNow)->value(), k);
}

TEST(KvStore, HashDependsOnSeedAndEveryByte) {
    const std::string a(40, 'a');
    std::string b = a;
    b[33] = 'b';
    EXPECT_NE(kv::hash_key(a, 1), kv::hash_key(b, 1));
    EXPECT_NE(kv::hash_key(a, 1), kv::hash_key(a, 2));
    EXPECT_NE(kv::hash_key("", 1), kv::hash_key(std::string(1, '\0'), 1));
    // Low bits (the table index) spread for sequential keys.
    int buckets[64] = {};
    for (int i = 0; i < 6400; ++i) ++buckets[kv::hash_key("key:" + std::to_string(i), 3) & 63];
    for (int n : buckets) EXPECT_GT(n, 40);
}
