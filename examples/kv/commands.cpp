// examples/kv/commands.cpp — command table and the commands of coop-kv.
//
// Every handler gets the whole argument vector with the arity already
// checked, and appends exactly one reply. A command touches keys only
// through keyspace::on_shard(), one key at a time; the closure it passes
// may append to the reply buffer, because the connection's task waits for
// it to return (locally, a plain call).
#include "kv/commands.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>

namespace kv {

namespace {

using resp::outbuf;
using argv_t = std::span<const std::string_view>;

constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();

struct ctx {
    argv_t argv;
    session& s;
    outbuf& out;
    engine& eng;
    millis now;
};

using handler = void (*)(ctx&);

// `lower` is a lowercase ASCII word: compare ignoring the case of s.
bool ieq(std::string_view s, std::string_view lower) noexcept {
    if (s.size() != lower.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
        if (l != lower[i]) return false;
    }
    return true;
}

// What printf's "%.128s" makes of an argument: up to the first NUL, at
// most n bytes. Redis formats names and options into errors that way.
std::string_view clip(std::string_view s, std::size_t n = 128) noexcept {
    const std::size_t nul = s.find('\0');
    if (nul != std::string_view::npos) s = s.substr(0, nul);
    return s.substr(0, std::min(n, s.size()));
}

std::string upper(std::string_view s) {
    std::string r(s);
    for (char& c : r)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    return r;
}

void reply_ok(outbuf& out) { out.raw("+OK\r\n", 5); }
void reply_not_integer(outbuf& out) { out.error("ERR value is not an integer or out of range"); }
void reply_syntax(outbuf& out) { out.error("ERR syntax error"); }
void reply_arity(outbuf& out, std::string_view fullname) {
    std::string m = "ERR wrong number of arguments for '";
    m.append(fullname);
    m.append("' command");
    out.error(m);
}
void reply_invalid_expire(outbuf& out, std::string_view cmd) {
    std::string m = "ERR invalid expire time in '";
    m.append(cmd);
    m.append("' command");
    out.error(m);
}
void reply_unknown_subcommand(outbuf& out, std::string_view sub, std::string_view container) {
    std::string m = "ERR unknown subcommand '";
    m.append(clip(sub));
    m.append("'. Try ");
    m.append(upper(container));
    m.append(" HELP.");
    out.error(m);
}

// CLIENT SETNAME's rule: printable ASCII without spaces ('!'..'~').
bool valid_client_name(std::string_view n) noexcept {
    return std::all_of(n.begin(), n.end(), [](char c) { return c >= '!' && c <= '~'; });
}
constexpr const char* kBadClientName = "ERR Client names cannot contain spaces, newlines or special characters.";

// ---------------------------------------------------------------- keys

void cmd_ping(ctx& c) {
    if (c.argv.size() > 2) return reply_arity(c.out, "ping");
    if (c.argv.size() == 1) return c.out.raw("+PONG\r\n", 7);
    c.out.bulk(c.argv[1]);
}

void cmd_echo(ctx& c) { c.out.bulk(c.argv[1]); }

void cmd_get(ctx& c) {
    const std::string_view key = c.argv[1];
    const keyspace::route r = c.eng.keys().locate(key);
    c.eng.keys().on_shard(r, [&](store& st) {
        if (entry* e = st.find(key, r.hash, c.now)) {
            c.out.bulk(e->value());
        } else {
            c.out.null_bulk();
        }
    });
}

void cmd_set(ctx& c) {
    enum : unsigned { NX = 1, XX = 2, GET = 4, KEEPTTL = 8, EX = 16, PX = 32, EXAT = 64, PXAT = 128 };
    constexpr unsigned kAnyExpiry = EX | PX | EXAT | PXAT;
    unsigned flags = 0;
    std::string_view expire_arg;
    // Redis's option grammar: an option is accepted unless one it excludes
    // came earlier; repeating one is allowed (the last time value wins).
    for (std::size_t j = 3; j < c.argv.size(); ++j) {
        const std::string_view opt = c.argv[j];
        const bool has_next = j + 1 < c.argv.size();
        unsigned unit = 0;
        if (ieq(opt, "nx") && !(flags & XX)) {
            flags |= NX;
        } else if (ieq(opt, "xx") && !(flags & NX)) {
            flags |= XX;
        } else if (ieq(opt, "get")) {
            flags |= GET;
        } else if (ieq(opt, "keepttl") && !(flags & kAnyExpiry)) {
            flags |= KEEPTTL;
        } else if (ieq(opt, "ex")) {
            unit = EX;
        } else if (ieq(opt, "px")) {
            unit = PX;
        } else if (ieq(opt, "exat")) {
            unit = EXAT;
        } else if (ieq(opt, "pxat")) {
            unit = PXAT;
        } else {
            return reply_syntax(c.out);
        }
        if (unit) {
            if ((flags & (KEEPTTL | (kAnyExpiry & ~unit))) || !has_next) return reply_syntax(c.out);
            flags |= unit;
            expire_arg = c.argv[++j];
        }
    }

    millis when = no_expiry;
    if (flags & kAnyExpiry) {
        std::int64_t v = 0;
        if (!resp::parse_int64(expire_arg, v)) return reply_not_integer(c.out);
        const bool seconds = flags & (EX | EXAT);
        if (v <= 0 || (seconds && v > kI64Max / 1000)) return reply_invalid_expire(c.out, "set");
        if (seconds) v *= 1000;
        if (flags & (EX | PX)) {
            if (v > kI64Max - c.now) return reply_invalid_expire(c.out, "set");
            v += c.now;
        }
        when = v;
    }

    const std::string_view key = c.argv[1], value = c.argv[2];
    const keyspace::route r = c.eng.keys().locate(key);
    c.eng.keys().on_shard(r, [&](store& st) {
        if (flags & (NX | XX | GET)) {
            entry* e = st.find(key, r.hash, c.now);
            if (flags & GET) {
                if (e) {
                    c.out.bulk(e->value());
                } else {
                    c.out.null_bulk();
                }
            }
            if (((flags & NX) && e) || ((flags & XX) && !e)) {
                if (!(flags & GET)) c.out.null_bulk();
                return;
            }
        }
        st.set(key, r.hash, value, when, flags & KEEPTTL, c.now);
        if (!(flags & GET)) reply_ok(c.out);
    });
}

void cmd_del(ctx& c) {
    std::int64_t n = 0;
    for (std::size_t j = 1; j < c.argv.size(); ++j) {
        const std::string_view key = c.argv[j];
        const keyspace::route r = c.eng.keys().locate(key);
        c.eng.keys().on_shard(r, [&](store& st) {
            if (entry* e = st.find(key, r.hash, c.now)) {
                st.erase(e);
                ++n;
            }
        });
    }
    c.out.integer(n);
}

void cmd_exists(ctx& c) {
    std::int64_t n = 0;
    for (std::size_t j = 1; j < c.argv.size(); ++j) {
        const std::string_view key = c.argv[j];
        const keyspace::route r = c.eng.keys().locate(key);
        c.eng.keys().on_shard(r, [&](store& st) {
            if (st.find(key, r.hash, c.now)) ++n;
        });
    }
    c.out.integer(n);
}

void incr_by(ctx& c, std::int64_t delta) {
    const std::string_view key = c.argv[1];
    const keyspace::route r = c.eng.keys().locate(key);
    c.eng.keys().on_shard(r, [&](store& st) {
        entry* e = st.find(key, r.hash, c.now);
        std::int64_t v = 0;
        if (e && !resp::parse_int64(e->value(), v)) return reply_not_integer(c.out);
        if ((delta > 0 && v > kI64Max - delta) || (delta < 0 && v < kI64Min - delta))
            return c.out.error("ERR increment or decrement would overflow");
        v += delta;
        char buf[24];
        const std::string_view text(buf, resp::format_int64(v, buf));
        if (e) {
            st.set_value(e, text);          // keeps the key's expiry, as Redis does
        } else {
            st.set(key, r.hash, text, no_expiry, false, c.now);
        }
        c.out.integer(v);
    });
}
void cmd_incr(ctx& c) { incr_by(c, 1); }
void cmd_decr(ctx& c) { incr_by(c, -1); }

void cmd_mget(ctx& c) {
    c.out.array(c.argv.size() - 1);
    const std::size_t limit = c.eng.config().max_output;
    for (std::size_t j = 1; j < c.argv.size(); ++j) {
        const std::string_view key = c.argv[j];
        const keyspace::route r = c.eng.keys().locate(key);
        c.eng.keys().on_shard(r, [&](store& st) {
            if (entry* e = st.find(key, r.hash, c.now)) {
                c.out.bulk(e->value());
            } else {
                c.out.null_bulk();
            }
        });
        if (c.out.size() > limit) {
            c.s.reply_overflow = true;
            return;
        }
    }
}

void cmd_mset(ctx& c) {
    if (c.argv.size() % 2 == 0) return reply_arity(c.out, "mset");
    for (std::size_t j = 1; j < c.argv.size(); j += 2) {
        const std::string_view key = c.argv[j], value = c.argv[j + 1];
        const keyspace::route r = c.eng.keys().locate(key);
        c.eng.keys().on_shard(r, [&](store& st) { st.set(key, r.hash, value, no_expiry, false, c.now); });
    }
    reply_ok(c.out);
}

// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX|XX|GT|LT]
void expire_generic(ctx& c, const char* name, bool seconds, bool relative) {
    enum : unsigned { NX = 1, XX = 2, GT = 4, LT = 8 };
    unsigned flags = 0;
    for (std::size_t j = 3; j < c.argv.size(); ++j) {
        const std::string_view opt = c.argv[j];
        if (ieq(opt, "nx")) {
            flags |= NX;
        } else if (ieq(opt, "xx")) {
            flags |= XX;
        } else if (ieq(opt, "gt")) {
            flags |= GT;
        } else if (ieq(opt, "lt")) {
            flags |= LT;
        } else {
            std::string m = "ERR Unsupported option ";
            m.append(clip(opt, std::string_view::npos));
            return c.out.error(m);
        }
    }
    if ((flags & NX) && (flags & (XX | GT | LT)))
        return c.out.error("ERR NX and XX, GT or LT options at the same time are not compatible");
    if ((flags & GT) && (flags & LT)) return c.out.error("ERR GT and LT options at the same time are not compatible");

    std::int64_t when = 0;
    if (!resp::parse_int64(c.argv[2], when)) return reply_not_integer(c.out);
    if (seconds) {
        if (when > kI64Max / 1000 || when < kI64Min / 1000) return reply_invalid_expire(c.out, name);
        when *= 1000;
    }
    const millis base = relative ? c.now : 0;
    if (when > kI64Max - base) return reply_invalid_expire(c.out, name);
    when += base;

    const std::string_view key = c.argv[1];
    const keyspace::route r = c.eng.keys().locate(key);
    c.eng.keys().on_shard(r, [&](store& st) {
        entry* e = st.find(key, r.hash, c.now);
        if (!e) return c.out.integer(0);
        const millis cur = e->expire_at;     // no_expiry counts as an infinite TTL
        if (((flags & NX) && cur != no_expiry) || ((flags & XX) && cur == no_expiry) ||
            ((flags & GT) && (cur == no_expiry || when <= cur)) || ((flags & LT) && cur != no_expiry && when >= cur))
            return c.out.integer(0);
        if (when <= c.now) {
            st.erase(e);                      // a time already past deletes the key
        } else {
            st.set_expiry(e, when);
        }
        c.out.integer(1);
    });
}
void cmd_expire(ctx& c) { expire_generic(c, "expire", true, true); }
void cmd_pexpire(ctx& c) { expire_generic(c, "pexpire", false, true); }
void cmd_expireat(ctx& c) { expire_generic(c, "expireat", true, false); }
void cmd_pexpireat(ctx& c) { expire_generic(c, "pexpireat", false, false); }

void ttl_generic(ctx& c, bool ms) {
    const std::string_view key = c.argv[1];
    const keyspace::route r = c.eng.keys().locate(key);
    c.eng.keys().on_shard(r, [&](store& st) {
        entry* e = st.find(key, r.hash, c.now);
        if (!e) return c.out.integer(-2);
        if (e->expire_at == no_expiry) return c.out.integer(-1);
        const std::int64_t left = std::max<std::int64_t>(e->expire_at - c.now, 0);
        c.out.integer(ms ? left : (left + 500) / 1000);
    });
}
void cmd_ttl(ctx& c) { ttl_generic(c, false); }
void cmd_pttl(ctx& c) { ttl_generic(c, true); }

void cmd_persist(ctx& c) {
    const std::string_view key = c.argv[1];
    const keyspace::route r = c.eng.keys().locate(key);
    c.eng.keys().on_shard(r, [&](store& st) {
        entry* e = st.find(key, r.hash, c.now);
        if (!e || e->expire_at == no_expiry) return c.out.integer(0);
        st.set_expiry(e, no_expiry);
        c.out.integer(1);
    });
}

void cmd_dbsize(ctx& c) {
    std::size_t n = 0;
    for (unsigned i = 0; i < c.eng.keys().shard_count(); ++i) n += c.eng.keys().shard(i).size();
    c.out.integer(static_cast<std::int64_t>(n));
}

void cmd_flushall(ctx& c) {
    if (c.argv.size() > 2 || (c.argv.size() == 2 && !ieq(c.argv[1], "async") && !ieq(c.argv[1], "sync")))
        return reply_syntax(c.out);
    for (unsigned i = 0; i < c.eng.keys().shard_count(); ++i) c.eng.keys().shard(i).clear();
    reply_ok(c.out);
}

// ---------------------------------------------------------------- connection

void cmd_select(ctx& c) {
    std::int64_t db = 0;
    if (!resp::parse_int64(c.argv[1], db) || db < std::numeric_limits<int>::min() || db > std::numeric_limits<int>::max())
        return reply_not_integer(c.out);
    if (db != 0) return c.out.error("ERR DB index is out of range");
    reply_ok(c.out);
}

void cmd_quit(ctx& c) {
    reply_ok(c.out);
    c.s.close_after_reply = true;
}

void cmd_hello(ctx& c) {
    if (c.argv.size() >= 2) {
        std::int64_t ver = 0;
        if (!resp::parse_int64(c.argv[1], ver))
            return c.out.error("ERR Protocol version is not an integer or out of range");
        if (ver != 2) return c.out.error("NOPROTO unsupported protocol version");
    }
    std::string_view user, name;
    bool auth = false, setname = false;
    for (std::size_t j = 2; j < c.argv.size(); ++j) {
        const std::size_t more = c.argv.size() - j - 1;
        if (ieq(c.argv[j], "auth") && more >= 2) {
            auth = true;
            user = c.argv[j + 1];
            j += 2;
        } else if (ieq(c.argv[j], "setname") && more >= 1) {
            setname = true;
            name = c.argv[j + 1];
            j += 1;
        } else {
            std::string m = "ERR Syntax error in HELLO option '";
            m.append(clip(c.argv[j], std::string_view::npos));
            m.append("'");
            return c.out.error(m);
        }
    }
    // One user, "default", without a password (Redis's default set-up).
    if (auth && user != "default")
        return c.out.error("WRONGPASS invalid username-password pair or user is disabled.");
    if (setname) {
        if (!valid_client_name(name)) return c.out.error(kBadClientName);
        c.s.name.assign(name);
    }
    c.out.array(14);
    c.out.bulk("server");
    c.out.bulk("coop-kv");
    c.out.bulk("version");
    c.out.bulk("0.1.0");
    c.out.bulk("proto");
    c.out.integer(2);
    c.out.bulk("id");
    c.out.integer(static_cast<std::int64_t>(c.s.id));
    c.out.bulk("mode");
    c.out.bulk("standalone");
    c.out.bulk("role");
    c.out.bulk("master");
    c.out.bulk("modules");
    c.out.array(0);
}

// ---------------------------------------------------------------- containers

struct subcommand {
    const char* name;     // lowercase
    int arity;            // as Redis counts it: the container's name is argument 0
    handler fn;
};

void dispatch_sub(ctx& c, std::string_view container, std::span<const subcommand> subs) {
    for (const subcommand& sc : subs) {
        if (!ieq(c.argv[1], sc.name)) continue;
        const int argc = static_cast<int>(c.argv.size());
        if ((sc.arity > 0 && argc != sc.arity) || (sc.arity < 0 && argc < -sc.arity)) {
            std::string full(container);
            full.push_back('|');
            full.append(sc.name);
            return reply_arity(c.out, full);
        }
        return sc.fn(c);
    }
    reply_unknown_subcommand(c.out, c.argv[1], container);
}

void reply_help(outbuf& out, std::span<const char* const> lines) {
    out.array(lines.size());
    for (const char* l : lines) out.simple(l);
}

// CLIENT
void client_id(ctx& c) { c.out.integer(static_cast<std::int64_t>(c.s.id)); }
void client_getname(ctx& c) {
    if (c.s.name.empty()) return c.out.null_bulk();
    c.out.bulk(c.s.name);
}
void client_setname(ctx& c) {
    if (!valid_client_name(c.argv[2])) return c.out.error(kBadClientName);
    c.s.name.assign(c.argv[2]);
    reply_ok(c.out);
}
void client_help(ctx& c) {
    static constexpr const char* lines[] = {
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "HELP",
        "    Print this help.",
    };
    reply_help(c.out, lines);
}
constexpr subcommand kClientSubs[] = {
    {"getname", 2, client_getname},
    {"id", 2, client_id},
    {"setname", 3, client_setname},
    {"help", 2, client_help},
};
void cmd_client(ctx& c) { dispatch_sub(c, "client", kClientSubs); }

// CONFIG
// Glob match of Redis's CONFIG GET patterns (*, ?, [set], [^set], [a-z],
// backslash escapes), ignoring case. Iterative: a '*' is retried from the
// last star only, so no pattern makes it exponential.
char lower(char ch) noexcept { return (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch + 32) : ch; }

// Does pattern position p match ch? Sets `len` to the pattern bytes used.
bool match_one(std::string_view pat, std::size_t p, char ch, std::size_t& len) noexcept {
    const char pc = pat[p];
    if (pc == '?') {
        len = 1;
        return true;
    }
    if (pc == '\\' && p + 1 < pat.size()) {
        len = 2;
        return lower(pat[p + 1]) == lower(ch);
    }
    if (pc != '[') {
        len = 1;
        return lower(pc) == lower(ch);
    }
    std::size_t i = p + 1;
    const bool negate = i < pat.size() && pat[i] == '^';
    if (negate) ++i;
    bool hit = false;
    for (; i < pat.size() && pat[i] != ']'; ++i) {
        if (pat[i] == '\\' && i + 1 < pat.size()) {
            ++i;
            hit |= lower(pat[i]) == lower(ch);
        } else if (i + 2 < pat.size() && pat[i + 1] == '-' && pat[i + 2] != ']') {
            char a = lower(pat[i]), b = lower(pat[i + 2]);
            if (a > b) std::swap(a, b);
            hit |= lower(ch) >= a && lower(ch) <= b;
            i += 2;
        } else {
            hit |= lower(pat[i]) == lower(ch);
        }
    }
    len = (i < pat.size() ? i + 1 : i) - p;      // an unclosed set runs to the end
    return hit != negate;
}

bool glob_match(std::string_view pat, std::string_view s) noexcept {
    std::size_t p = 0, i = 0;
    std::size_t star_p = std::string_view::npos, star_i = 0;
    while (i < s.size()) {
        if (p < pat.size()) {
            if (pat[p] == '*') {
                star_p = ++p;
                star_i = i;
                continue;
            }
            std::size_t len = 0;
            if (match_one(pat, p, s[i], len)) {
                p += len;
                ++i;
                continue;
            }
        }
        if (star_p == std::string_view::npos) return false;
        p = star_p;
        i = ++star_i;
    }
    while (p < pat.size() && pat[p] == '*') ++p;
    return p == pat.size();
}

struct config_param {
    const char* name;
    std::string (*value)(const server_config&);
    // CONFIG SET accepts these parameters with the value they already have
    // (tools set "save" to "" before a benchmark) and refuses any change.
    bool settable;
};
const config_param kConfigParams[] = {
    {"appendonly", [](const server_config&) { return std::string("no"); }, true},
    {"bind", [](const server_config& c) { return c.bind; }, false},
    {"databases", [](const server_config&) { return std::string("1"); }, false},
    {"maxmemory", [](const server_config&) { return std::string("0"); }, true},
    {"port", [](const server_config& c) { return std::to_string(c.port); }, false},
    {"proto-max-bulk-len", [](const server_config& c) { return std::to_string(c.max_bulk); }, false},
    {"save", [](const server_config&) { return std::string(); }, true},
    {"timeout", [](const server_config&) { return std::string("0"); }, true},
};

const config_param* find_param(std::string_view name) noexcept {
    for (const config_param& p : kConfigParams)
        if (ieq(name, p.name)) return &p;
    return nullptr;
}

void config_get(ctx& c) {
    std::vector<const config_param*> hits;
    for (const config_param& p : kConfigParams) {
        for (std::size_t j = 2; j < c.argv.size(); ++j) {
            if (glob_match(c.argv[j], p.name)) {
                hits.push_back(&p);
                break;
            }
        }
    }
    c.out.array(hits.size() * 2);
    for (const config_param* p : hits) {
        c.out.bulk(p->name);
        c.out.bulk(p->value(c.eng.config()));
    }
}

void config_set(ctx& c) {
    if (c.argv.size() % 2) return reply_arity(c.out, "config|set");
    // All or nothing, as in Redis: check every pair before answering.
    for (std::size_t j = 2; j < c.argv.size(); j += 2) {
        const config_param* p = find_param(c.argv[j]);
        if (!p) {
            std::string m = "ERR Unknown option or number of arguments for CONFIG SET - '";
            m.append(clip(c.argv[j], std::string_view::npos));
            m.append("'");
            return c.out.error(m);
        }
        if (!p->settable || p->value(c.eng.config()) != c.argv[j + 1]) {
            std::string m = "ERR CONFIG SET failed (possibly related to argument '";
            m.append(p->name);
            m.append("') - coop-kv cannot change it");
            return c.out.error(m);
        }
    }
    reply_ok(c.out);
}
void config_resetstat(ctx& c) { reply_ok(c.out); }
void config_help(ctx& c) {
    static constexpr const char* lines[] = {
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "HELP",
        "    Print this help.",
    };
    reply_help(c.out, lines);
}
constexpr subcommand kConfigSubs[] = {
    {"get", -3, config_get},
    {"set", -4, config_set},
    {"resetstat", 2, config_resetstat},
    {"help", 2, config_help},
};
void cmd_config(ctx& c) { dispatch_sub(c, "config", kConfigSubs); }

// ---------------------------------------------------------------- the table

struct command_def {
    const char* name;          // lowercase
    int arity;                 // Redis's: n exactly, or at least -n arguments (name included)
    handler fn;
    const char* flags;         // COMMAND INFO flags, space-separated
    int first_key, last_key, key_step;
    const char* acl;           // ACL categories, space-separated
    const char* group;         // COMMAND DOCS
    const char* since;
    const char* summary;
};

void cmd_command(ctx& c);

const command_def kCommands[] = {
    {"get", 2, cmd_get, "readonly fast", 1, 1, 1, "@read @string @fast", "string", "1.0.0",
     "Get the value of a key"},
    {"set", -3, cmd_set, "write denyoom", 1, 1, 1, "@write @string @slow", "string", "1.0.0",
     "Set the string value of a key"},
    {"ping", -1, cmd_ping, "fast", 0, 0, 0, "@fast @connection", "connection", "1.0.0", "Ping the server"},
    {"echo", 2, cmd_echo, "fast", 0, 0, 0, "@fast @connection", "connection", "1.0.0", "Echo the given string"},
    {"del", -2, cmd_del, "write", 1, -1, 1, "@keyspace @write @slow", "generic", "1.0.0", "Delete a key"},
    {"exists", -2, cmd_exists, "readonly fast", 1, -1, 1, "@keyspace @read @fast", "generic", "1.0.0",
     "Determine if a key exists"},
    {"incr", 2, cmd_incr, "write denyoom fast", 1, 1, 1, "@write @string @fast", "string", "1.0.0",
     "Increment the integer value of a key by one"},
    {"decr", 2, cmd_decr, "write denyoom fast", 1, 1, 1, "@write @string @fast", "string", "1.0.0",
     "Decrement the integer value of a key by one"},
    {"mget", -2, cmd_mget, "readonly fast", 1, -1, 1, "@read @string @fast", "string", "1.0.0",
     "Get the values of all the given keys"},
    {"mset", -3, cmd_mset, "write denyoom", 1, -1, 2, "@write @string @slow", "string", "1.0.1",
     "Set multiple keys to multiple values"},
    {"expire", -3, cmd_expire, "write fast", 1, 1, 1, "@keyspace @write @fast", "generic", "1.0.0",
     "Set a key's time to live in seconds"},
    {"pexpire", -3, cmd_pexpire, "write fast", 1, 1, 1, "@keyspace @write @fast", "generic", "2.6.0",
     "Set a key's time to live in milliseconds"},
    {"expireat", -3, cmd_expireat, "write fast", 1, 1, 1, "@keyspace @write @fast", "generic", "1.2.0",
     "Set the expiration for a key as a UNIX timestamp"},
    {"pexpireat", -3, cmd_pexpireat, "write fast", 1, 1, 1, "@keyspace @write @fast", "generic", "2.6.0",
     "Set the expiration for a key as a UNIX timestamp specified in milliseconds"},
    {"ttl", 2, cmd_ttl, "readonly fast", 1, 1, 1, "@keyspace @read @fast", "generic", "1.0.0",
     "Get the time to live for a key in seconds"},
    {"pttl", 2, cmd_pttl, "readonly fast", 1, 1, 1, "@keyspace @read @fast", "generic", "2.6.0",
     "Get the time to live for a key in milliseconds"},
    {"persist", 2, cmd_persist, "write fast", 1, 1, 1, "@keyspace @write @fast", "generic", "2.2.0",
     "Remove the expiration from a key"},
    {"dbsize", 1, cmd_dbsize, "readonly fast", 0, 0, 0, "@keyspace @read @fast", "server", "1.0.0",
     "Return the number of keys in the selected database"},
    {"flushall", -1, cmd_flushall, "write", 0, 0, 0, "@keyspace @write @slow @dangerous", "server", "1.0.0",
     "Remove all keys from all databases"},
    {"flushdb", -1, cmd_flushall, "write", 0, 0, 0, "@keyspace @write @slow @dangerous", "server", "1.0.0",
     "Remove all keys from the current database"},
    {"select", 2, cmd_select, "loading stale fast", 0, 0, 0, "@fast @connection", "connection", "1.0.0",
     "Change the selected database for the current connection"},
    {"quit", -1, cmd_quit, "allow_busy noscript loading stale fast no_auth", 0, 0, 0, "@fast @connection",
     "connection", "1.0.0", "Close the connection"},
    {"hello", -1, cmd_hello, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "@fast @connection",
     "connection", "6.0.0", "Handshake with Redis"},
    {"client", -2, cmd_client, "", 0, 0, 0, "@slow", "connection", "2.4.0", "A container for client connection commands"},
    {"config", -2, cmd_config, "", 0, 0, 0, "@slow", "server", "2.0.0", "A container for server configuration commands"},
    {"command", -1, cmd_command, "loading stale", 0, 0, 0, "@slow @connection", "server", "2.8.13",
     "Get array of Redis command details"},
};
constexpr std::size_t kCommandCount = sizeof kCommands / sizeof kCommands[0];

// Lookup: the table is tiny, so a scan over the commands of the same name
// length, first letter checked first, beats hashing the name.
struct lookup_table {
    static constexpr std::size_t kMaxLen = 16;
    std::vector<const command_def*> by_len[kMaxLen + 1];
    lookup_table() {
        for (const command_def& d : kCommands) by_len[std::char_traits<char>::length(d.name)].push_back(&d);
    }
    const command_def* find(std::string_view name) const noexcept {
        if (name.size() > kMaxLen || name.empty()) return nullptr;
        const char first = lower(name[0]);
        for (const command_def* d : by_len[name.size()])
            if (d->name[0] == first && ieq(name, d->name)) return d;
        return nullptr;
    }
};
const lookup_table kLookup;

void words(outbuf& out, const char* list, bool simple) {
    std::vector<std::string_view> w;
    for (std::string_view s(list); !s.empty();) {
        const std::size_t sp = s.find(' ');
        w.push_back(s.substr(0, sp));
        s = sp == std::string_view::npos ? std::string_view() : s.substr(sp + 1);
    }
    out.array(w.size());
    for (std::string_view x : w) {
        if (simple) {
            out.simple(x);
        } else {
            out.bulk(x);
        }
    }
}

void command_info(outbuf& out, const command_def& d) {
    out.array(10);
    out.bulk(d.name);
    out.integer(d.arity);
    words(out, d.flags, true);
    out.integer(d.first_key);
    out.integer(d.last_key);
    out.integer(d.key_step);
    words(out, d.acl, true);
    out.array(0);      // tips
    out.array(0);      // key specifications
    out.array(0);      // subcommands
}

void command_docs(outbuf& out, const command_def& d) {
    out.bulk(d.name);
    out.array(6);
    out.bulk("summary");
    out.bulk(d.summary);
    out.bulk("since");
    out.bulk(d.since);
    out.bulk("group");
    out.bulk(d.group);
}

const command_def* find_command(std::string_view name) noexcept { return kLookup.find(name); }

void command_all(ctx& c) {
    c.out.array(kCommandCount);
    for (const command_def& d : kCommands) command_info(c.out, d);
}
void command_count(ctx& c) { c.out.integer(static_cast<std::int64_t>(kCommandCount)); }
void command_list(ctx& c) {
    if (c.argv.size() > 2) return reply_syntax(c.out);      // FILTERBY is not supported
    c.out.array(kCommandCount);
    for (const command_def& d : kCommands) c.out.bulk(d.name);
}
void command_info_cmd(ctx& c) {
    if (c.argv.size() == 2) return command_all(c);
    c.out.array(c.argv.size() - 2);
    for (std::size_t j = 2; j < c.argv.size(); ++j) {
        if (const command_def* d = find_command(c.argv[j])) {
            command_info(c.out, *d);
        } else {
            c.out.raw("*-1\r\n", 5);
        }
    }
}
void command_docs_cmd(ctx& c) {
    std::vector<const command_def*> found;
    if (c.argv.size() == 2) {
        for (const command_def& d : kCommands) found.push_back(&d);
    } else {
        for (std::size_t j = 2; j < c.argv.size(); ++j)
            if (const command_def* d = find_command(c.argv[j])) found.push_back(d);
    }
    c.out.array(found.size() * 2);
    for (const command_def* d : found) command_docs(c.out, *d);
}
void command_help(ctx& c) {
    static constexpr const char* lines[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all commands.",
        "COUNT",
        "    Return the total number of commands in this server.",
        "LIST",
        "    Return a list of all commands in this server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple commands.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple commands.",
        "HELP",
        "    Print this help.",
    };
    reply_help(c.out, lines);
}
constexpr subcommand kCommandSubs[] = {
    {"count", 2, command_count},
    {"list", -2, command_list},
    {"info", -2, command_info_cmd},
    {"docs", -2, command_docs_cmd},
    {"help", 2, command_help},
};
void cmd_command(ctx& c) {
    if (c.argv.size() == 1) return command_all(c);
    dispatch_sub(c, "command", kCommandSubs);
}

void reply_unknown_command(outbuf& out, argv_t argv) {
    std::string args;
    for (std::size_t i = 1; i < argv.size() && args.size() < 128; ++i) {
        const std::size_t room = 128 - args.size();
        args.push_back('\'');
        args.append(clip(argv[i], room));
        args.append("' ");
    }
    std::string m = "ERR unknown command '";
    m.append(clip(argv[0]));
    m.append("', with args beginning with: ");
    m.append(args);
    out.error(m);
}

} // namespace

engine::engine(keyspace& ks, server_config cfg) : ks_(ks), cfg_(std::move(cfg)) {}

void engine::execute(std::span<const std::string_view> argv, session& s, resp::outbuf& out, millis now) {
    const command_def* d = find_command(argv[0]);
    if (!d) return reply_unknown_command(out, argv);
    const int argc = static_cast<int>(argv.size());
    if ((d->arity > 0 && argc != d->arity) || (d->arity < 0 && argc < -d->arity)) return reply_arity(out, d->name);
    ctx c{argv, s, out, *this, now};
    d->fn(c);
}

} // namespace kv
