//! The tier's Lua scripts. Each is one round trip and atomic on the server, which is what makes
//! "look for an entry, else look for a lease, else take one" free of races between instances.
//! Every key they touch is under the namespace's hash tag (see `keys.rs`), so they also run on
//! Redis Cluster; keys built inside a script from a prefix stay in that slot.

/// Finds live entries within the search radius (nearest first, dead members trimmed on the
/// way). If one is fresh by the caller's clock, returns them (unless the caller must lease
/// anyway: the fresh ones do not cover all its waiters). Otherwise the caller's points that no
/// live lease covers (within the lease radius: another fetch will answer those) are open; if
/// none is, returns `held` with the longest time left. Otherwise takes a lease: at the most
/// central candidate (each point's rounded location, when given) that covers every open point,
/// or at the caller's location. With no points, the caller's location stands for them.
///
/// KEYS: entries GEO, leases GEO, the caller's lease key.
/// ARGV: lon, lat, search radius km, entry key prefix, lease key prefix, member, token,
///       lease ms, caller's now (ms), caller's fresh TTL (ms), must lease ('1' or '0'),
///       lease radius km, cover km (a candidate must be this close to every open point), n,
///       with candidates ('1' or '0'), then n points: lon, lat, and with candidates also the
///       candidate's lon, lat and member.
/// Returns `{status, number, payload...}`: `fresh`, `held` (number: ms left) or `acquired`
/// (number: the chosen candidate, 1-based, or 0 for the caller's location).
pub const FIND_OR_LEASE: &str = r"
local found, fresh = {}, false
local members = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km', 'ASC', 'COUNT', 16)
for _, m in ipairs(members) do
  local v = redis.call('GET', ARGV[4] .. m)
  if v then
    found[#found + 1] = v
    local ok, e = pcall(cjson.decode, v)
    -- Fresh by the caller's TTL, or held by the provider (`h`, at most a day, as the reader
    -- caps it) past it.
    if ok and type(e) == 'table' and tonumber(e.f) and (tonumber(e.f) + tonumber(ARGV[10]) > tonumber(ARGV[9])
        or math.min(tonumber(e.h) or 0, tonumber(e.f) + 86400000) > tonumber(ARGV[9])) then
      fresh = true
    end
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
if fresh and ARGV[11] ~= '1' then return {'fresh', 0, unpack(found)} end
local radius = tonumber(ARGV[12])
local function lease_near(lon, lat)
  local leases = redis.call('GEOSEARCH', KEYS[2], 'FROMLONLAT', lon, lat, 'BYRADIUS', radius, 'km', 'ASC', 'COUNT', 4)
  for _, m in ipairs(leases) do
    local left = redis.call('PTTL', ARGV[5] .. m)
    if left > 0 then return left end
    redis.call('ZREM', KEYS[2], m)
  end
  return nil
end
local n, candidates = tonumber(ARGV[14]), ARGV[15] == '1'
local width = candidates and 5 or 2
local points = {}
for i = 0, n - 1 do
  local at = 16 + width * i
  points[#points + 1] = {lon = tonumber(ARGV[at]), lat = tonumber(ARGV[at + 1]),
    clon = ARGV[at + 2], clat = ARGV[at + 3], member = ARGV[at + 4], index = i + 1}
end
if n == 0 then points[1] = {lon = tonumber(ARGV[1]), lat = tonumber(ARGV[2])} end
local open, wait = {}, 0
for _, p in ipairs(points) do
  local left = lease_near(p.lon, p.lat)
  if left then
    if left > wait then wait = left end
  else
    open[#open + 1] = p
  end
end
if #open == 0 then return {'held', wait, unpack(found)} end
local function km(lon1, lat1, lon2, lat2)
  local r = math.pi / 180
  local dlat, dlon = (lat2 - lat1) * r, (lon2 - lon1) * r
  local h = math.sin(dlat / 2) ^ 2 + math.cos(lat1 * r) * math.cos(lat2 * r) * math.sin(dlon / 2) ^ 2
  return 2 * 6371 * math.asin(math.min(1, math.sqrt(h)))
end
local chosen, lon, lat, member, key = 0, ARGV[1], ARGV[2], ARGV[6], KEYS[3]
if candidates then
  local best = tonumber(ARGV[13])
  for _, c in ipairs(open) do
    local farthest = 0
    for _, p in ipairs(open) do
      farthest = math.max(farthest, km(tonumber(c.clon), tonumber(c.clat), p.lon, p.lat))
    end
    if farthest <= best then best, chosen, lon, lat, member = farthest, c.index, c.clon, c.clat, c.member end
  end
  if chosen > 0 then key = ARGV[5] .. member end
end
if redis.call('SET', key, ARGV[7], 'NX', 'PX', ARGV[8]) then
  redis.call('GEOADD', KEYS[2], lon, lat, member)
  return {'acquired', chosen, unpack(found)}
end
return {'held', redis.call('PTTL', key), unpack(found)}
";

/// Stores an entry (payload with a TTL, GEO member, expiry), trims up to 32 members whose
/// payload expired, releases the caller's lease if it still owns it, and announces the landing.
/// Leases left by holders that died (their key expired, their GEO member stayed) are trimmed
/// too, from a sample of 8: a lease lives seconds, so the set is mostly live or mostly dead,
/// and either way each landing removes some of the dead.
///
/// KEYS: entries GEO, expiries ZSET, entry key, leases GEO, the caller's lease key.
/// ARGV: lon, lat, member, payload, ttl ms, token ('' for none), channel, entry key prefix,
///       lease key prefix.
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
for _, m in ipairs(redis.call('ZRANDMEMBER', KEYS[4], 8)) do
  if redis.call('EXISTS', ARGV[9] .. m) == 0 then redis.call('ZREM', KEYS[4], m) end
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
