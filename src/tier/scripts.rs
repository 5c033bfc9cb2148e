//! The tier's Lua scripts. Each is one round trip and atomic on the server, which is what makes
//! "look for an entry, else look for a lease, else take one" free of races between instances.
//! Every key they touch is under the namespace's hash tag (see `keys.rs`), so they also run on
//! Redis Cluster; keys built inside a script from a prefix stay in that slot.

/// Finds live entries within the radius (nearest first, dead members trimmed on the way). If
/// one is fresh by the caller's clock, returns them. Otherwise, if a live lease lies within the
/// radius, returns `held` with its time left; otherwise takes the caller's lease.
///
/// KEYS: entries GEO, leases GEO, the caller's lease key.
/// ARGV: lon, lat, radius km, entry key prefix, lease key prefix, member, token, lease ms,
///       caller's now (ms), caller's fresh TTL (ms).
/// Returns `{status, remaining_ms, payload...}`, status `fresh`, `held` or `acquired`.
pub const FIND_OR_LEASE: &str = r"
local found, fresh = {}, false
local members = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km', 'ASC', 'COUNT', 8)
for _, m in ipairs(members) do
  local v = redis.call('GET', ARGV[4] .. m)
  if v then
    found[#found + 1] = v
    local ok, e = pcall(cjson.decode, v)
    if ok and type(e) == 'table' and tonumber(e.f) and tonumber(e.f) + tonumber(ARGV[10]) > tonumber(ARGV[9]) then
      fresh = true
    end
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
if fresh then return {'fresh', 0, unpack(found)} end
local leases = redis.call('GEOSEARCH', KEYS[2], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km', 'ASC', 'COUNT', 4)
for _, m in ipairs(leases) do
  local left = redis.call('PTTL', ARGV[5] .. m)
  if left > 0 then return {'held', left, unpack(found)} end
  redis.call('ZREM', KEYS[2], m)
end
if redis.call('SET', KEYS[3], ARGV[7], 'NX', 'PX', ARGV[8]) then
  redis.call('GEOADD', KEYS[2], ARGV[1], ARGV[2], ARGV[6])
  return {'acquired', 0, unpack(found)}
end
return {'held', redis.call('PTTL', KEYS[3]), unpack(found)}
";

/// Stores an entry (payload with a TTL, GEO member, expiry), trims up to 32 members whose
/// payload expired, releases the caller's lease if it still owns it, and announces the landing.
///
/// KEYS: entries GEO, expiries ZSET, entry key, leases GEO, the caller's lease key.
/// ARGV: lon, lat, member, payload, ttl ms, token ('' for none), channel, entry key prefix.
pub const STORE: &str = r"
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
redis.call('GEOADD', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[3])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 32)) do
  if redis.call('EXISTS', ARGV[8] .. m) == 0 then redis.call('ZREM', KEYS[1], m) end
  redis.call('ZREM', KEYS[2], m)
end
if ARGV[6] ~= '' and redis.call('GET', KEYS[5]) == ARGV[6] then
  redis.call('DEL', KEYS[5])
  redis.call('ZREM', KEYS[4], ARGV[3])
end
redis.call('PUBLISH', ARGV[7], 'landed ' .. ARGV[3])
return 1
";

/// Gives a lease back (compare-and-delete: only if the caller still owns it) and announces it,
/// so that instances waiting on it stop waiting at once.
///
/// KEYS: the lease key, leases GEO. ARGV: token, member, channel.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
redis.call('PUBLISH', ARGV[3], 'released ' .. ARGV[2])
return 1
";

/// May this instance call the provider now? Refused while the provider cools down (a 429 seen
/// by any instance), or when the minute's or the UTC day's count has reached its limit;
/// otherwise counted. Windows come from the server's `TIME`, so every instance agrees on them.
///
/// KEYS: cooldown key, minute counter, day counter.
/// ARGV: per-minute limit, per-day limit for this call (0 = none each).
/// Returns `{'admitted', 0}`, `{'cooling', ms left}` or `{'budget', ms until the window ends}`.
pub const ADMIT: &str = r"
local cooling = redis.call('PTTL', KEYS[1])
if cooling > 0 then return {'cooling', cooling} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute, day = math.floor(now / 60000), math.floor(now / 86400000)
local function count(key, window)
  local v = redis.call('GET', key)
  if v then
    local w, c = string.match(v, '^(%d+):(%d+)$')
    if tonumber(w) == window then return tonumber(c) end
  end
  return 0
end
local per_minute, per_day = tonumber(ARGV[1]), tonumber(ARGV[2])
local in_minute, in_day = count(KEYS[2], minute), count(KEYS[3], day)
if per_minute > 0 and in_minute >= per_minute then return {'budget', (minute + 1) * 60000 - now} end
if per_day > 0 and in_day >= per_day then return {'budget', (day + 1) * 86400000 - now} end
redis.call('SET', KEYS[2], string.format('%d:%d', minute, in_minute + 1), 'PX', 120000)
redis.call('SET', KEYS[3], string.format('%d:%d', day, in_day + 1), 'PX', 172800000)
return {'admitted', 0}
";

/// Starts (or extends, never shortens) a provider's cooldown for every instance.
///
/// KEYS: cooldown key. ARGV: window ms.
pub const COOL_DOWN: &str = r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
";
