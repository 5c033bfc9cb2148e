//! The tier's Lua scripts. Each is one round trip and atomic on the server, which is what makes
//! "look for an entry, else look for a lease, else take one" free of races between instances.
//!
//! Every key a script touches is in its `KEYS` (Redis Cluster routes by them; see `keys.rs`):
//! area scripts get one tile's keys, or several tiles' on a server that is not a cluster;
//! control scripts get the `{prefix}` slot's. Times come from the server's `TIME`, the one
//! clock every instance shares.
//!
//! Three habits, from the prelude below:
//! - a failing command names itself in the error (Redis 7.0's text for a command an ACL refuses
//!   inside a script does not say which), so the operator sees `... (TIME)`;
//! - a key of ours holding another type (another program, a bug) is repaired (deleted) and the
//!   script goes on as if it was missing: one bad key is one area's miss, not an outage;
//! - area keys always carry a TTL (refreshed by every write, never shortened), budget counters
//!   and cooldowns never do: a `volatile-*` eviction policy then evicts entries, never counters.

macro_rules! prelude {
    () => {
        r"
local function call(command, ...)
  local reply = redis.pcall(command, ...)
  if type(reply) == 'table' and reply.err then error({err = reply.err .. ' (' .. command .. ')'}) end
  return reply
end
local function read(command, key, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    if string.find(reply.err, 'WRONGTYPE', 1, true) then
      call('DEL', key)
      return nil
    end
    error({err = reply.err .. ' (' .. command .. ')'})
  end
  return reply
end
local function typed(key, want)
  local t = call('TYPE', key)
  if type(t) == 'table' then t = t.ok end
  if t ~= 'none' and t ~= want then call('DEL', key) end
end
local function server_ms()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function keep_for(key, ms)
  local left = call('PTTL', key)
  if left >= 0 and left < ms or left == -1 then call('PEXPIRE', key, ms) end
end
local function owner(o)
  if not o then return nil, nil end
  local token, expires = string.match(o, '^(%S+) (%d+)$')
  return token, tonumber(expires)
end
"
    };
}

/// Finds live entries within the search radius (nearest first in each tile, dead members
/// trimmed on the way). If one is fresh by the caller's clock (its `fetchedAt` bounded by when
/// Redis received it), returns them, unless the caller must lease anyway (the fresh ones do not
/// cover all its waiters). Otherwise the caller's points that no live lease covers are open. A
/// lease covers a point within the lease radius of it (certain, whatever the rounding of the
/// point hid); a lease between that and the maybe radius might: it is returned for the caller
/// to judge with the exact point, which never leaves the caller, unless the caller judged it
/// already. No point open: `held`, with the longest time left. Points open and leases to judge:
/// `maybe`. Otherwise, if it may lease, takes one: at the most central candidate (a point's
/// rounded location, in a tile given here) that covers every open point, or at the caller's
/// location (in the first tile); without leave to lease, `open`.
///
/// KEYS: per tile (the caller's location's first): entries GEO, payloads HASH, leases GEO,
///       owners HASH.
/// ARGV: 1 lon, 2 lat, 3 search radius km, 4 member, 5 token, 6 lease ms, 7 caller's now (ms),
///       8 caller's fresh TTL (ms), 9 must lease ('1'/'0'), 10 lease radius km, 11 cover km (a
///       candidate must be this close to every open point), 12 may lease ('1'/'0'), 13 wait
///       already known (ms), 14 schema, 15 maybe radius km, 16 leases judged already (members,
///       space-separated), 17 n (>= 1), 18 with candidates ('1'/'0'), then n points: lon, lat,
///       covered ('1'/'0'), and with candidates its lon, lat, member and tile (1-based group of
///       KEYS; 0: not a candidate here).
/// Returns `{status, number, covered, judge, age, payload, age, payload...}`: status `fresh`,
/// `held` (number: ms left), `maybe`, `open` or `acquired` (number: the chosen point, 1-based,
/// 0 for the caller's location); covered: a '0'/'1' per point; judge: leases to judge
/// (`member=ms left`, space-separated); age: ms since Redis received the payload.
pub const FIND_OR_LEASE: &str = concat!(
    prelude!(),
    r"
-- Keys are read before any is written, with `read`: a key of the wrong type is repaired then.
local tiles = #KEYS / 4
local now, caller_now = server_ms(), tonumber(ARGV[7])
local found, fresh = {}, false
for t = 0, tiles - 1 do
  local entries, payloads = KEYS[4 * t + 1], KEYS[4 * t + 2]
  local members = read('GEOSEARCH', entries, 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km', 'ASC', 'COUNT', 16) or {}
  for _, m in ipairs(members) do
    local v = read('HGET', payloads, m)
    local written, expires, payload
    if v then written, expires, payload = string.match(v, '^(%d+):(%d+):(.*)$') end
    if payload and tonumber(expires) > now then
      local age = math.max(0, now - tonumber(written))
      found[#found + 1] = age
      found[#found + 1] = payload
      local ok, e = pcall(cjson.decode, payload)
      if ok and type(e) == 'table' and tonumber(e.f) and (tonumber(e.s) or 1) <= tonumber(ARGV[14]) then
        -- The reading is no younger than its arrival; a hold (`h`, at most a day, as the
        -- reader caps it) moves with it.
        local f = math.min(tonumber(e.f), caller_now - age)
        local h = tonumber(e.h) or 0
        if h > 0 then h = math.min(h - (tonumber(e.f) - f), f + 86400000) end
        if f + tonumber(ARGV[8]) > caller_now or h > caller_now then fresh = true end
      end
    else
      call('ZREM', entries, m)
      if v then call('HDEL', payloads, m) end
    end
  end
end
local n, candidates = tonumber(ARGV[17]), ARGV[18] == '1'
if fresh and ARGV[9] ~= '1' then return {'fresh', 0, string.rep('0', n), '', unpack(found)} end
local radius, maybe = tonumber(ARGV[10]), tonumber(ARGV[15])
local judged = {}
for m in string.gmatch(ARGV[16], '%S+') do judged[m] = true end
local judge, judge_list = {}, {}
-- A live lease certainly covering the point: its time left. Others that might are noted.
local function lease_near(lon, lat)
  for t = 0, tiles - 1 do
    local leases, owners = KEYS[4 * t + 3], KEYS[4 * t + 4]
    for _, hit in ipairs(read('GEOSEARCH', leases, 'FROMLONLAT', lon, lat, 'BYRADIUS', maybe, 'km', 'ASC', 'COUNT', 8, 'WITHDIST') or {}) do
      local m, distance = hit[1], tonumber(hit[2])
      local o = read('HGET', owners, m)
      local _, expires = owner(o)
      if expires and expires > now then
        if distance <= radius then return expires - now end
        if not judged[m] and not judge[m] then
          judge[m] = true
          judge_list[#judge_list + 1] = m .. '=' .. (expires - now)
        end
      else
        call('ZREM', leases, m)
        if o then call('HDEL', owners, m) end
      end
    end
  end
  return nil
end
local width = candidates and 7 or 3
local open, covered, wait = {}, {}, tonumber(ARGV[13])
for i = 0, n - 1 do
  local at = 19 + width * i
  local p = {lon = tonumber(ARGV[at]), lat = tonumber(ARGV[at + 1]), clon = ARGV[at + 3], clat = ARGV[at + 4],
    member = ARGV[at + 5], tile = tonumber(ARGV[at + 6]) or 0, index = i + 1}
  local left = nil
  if ARGV[at + 2] ~= '1' then left = lease_near(p.lon, p.lat) end
  if ARGV[at + 2] == '1' or left then
    covered[#covered + 1] = '1'
    if left and left > wait then wait = left end
  else
    covered[#covered + 1] = '0'
    open[#open + 1] = p
  end
end
covered = table.concat(covered)
judge_list = table.concat(judge_list, ' ')
if #open == 0 then return {'held', wait, covered, '', unpack(found)} end
if judge_list ~= '' then return {'maybe', wait, covered, judge_list, unpack(found)} end
if ARGV[12] ~= '1' then return {'open', wait, covered, '', unpack(found)} end
local function km(lon1, lat1, lon2, lat2)
  local r = math.pi / 180
  local dlat, dlon = (lat2 - lat1) * r, (lon2 - lon1) * r
  local h = math.sin(dlat / 2) ^ 2 + math.cos(lat1 * r) * math.cos(lat2 * r) * math.sin(dlon / 2) ^ 2
  return 2 * 6371 * math.asin(math.min(1, math.sqrt(h)))
end
local chosen, lon, lat, member, tile = 0, ARGV[1], ARGV[2], ARGV[4], 1
if candidates then
  local best = tonumber(ARGV[11])
  for _, c in ipairs(open) do
    if c.tile > 0 then
      local farthest = 0
      for _, p in ipairs(open) do
        farthest = math.max(farthest, km(tonumber(c.clon), tonumber(c.clat), p.lon, p.lat))
      end
      if farthest <= best then best, chosen, lon, lat, member, tile = farthest, c.index, c.clon, c.clat, c.member, c.tile end
    end
  end
end
local leases, owners = KEYS[4 * (tile - 1) + 3], KEYS[4 * (tile - 1) + 4]
local _, expires = owner(read('HGET', owners, member))
if expires and expires > now then return {'held', expires - now, covered, '', unpack(found)} end
call('HSET', owners, member, ARGV[5] .. ' ' .. (now + tonumber(ARGV[6])))
call('GEOADD', leases, lon, lat, member)
keep_for(leases, 2 * tonumber(ARGV[6]))
keep_for(owners, 2 * tonumber(ARGV[6]))
return {'acquired', chosen, covered, '', unpack(found)}
"
);

/// Stores an entry unless the one there is newer (readings compared by `fetchedAt`, each
/// bounded by when Redis received it), trims up to 32 members whose entry expired, releases the
/// caller's lease if it still owns it, and announces the landing. Leases whose holder died
/// (expired, their GEO member stayed) are trimmed too, from a sample of 8: a lease lives
/// seconds, so the set is mostly live or mostly dead, and either way each landing removes some
/// of the dead.
///
/// KEYS (one tile): entries GEO, payloads HASH, expiries ZSET, leases GEO, owners HASH.
/// ARGV: lon, lat, member, payload, ttl ms, token ('' for none), channel, fetchedAt.
/// Returns 1 if stored, 0 if a newer entry was kept.
pub const STORE: &str = concat!(
    prelude!(),
    r"
typed(KEYS[1], 'zset'); typed(KEYS[2], 'hash'); typed(KEYS[3], 'zset')
typed(KEYS[4], 'zset'); typed(KEYS[5], 'hash')
local now, ttl = server_ms(), tonumber(ARGV[5])
local write = 1
local old = call('HGET', KEYS[2], ARGV[3])
if old then
  local written, expires, payload = string.match(old, '^(%d+):(%d+):(.*)$')
  local ok, e = pcall(cjson.decode, payload or '')
  if written and tonumber(expires) > now and ok and type(e) == 'table' and tonumber(e.f)
      and math.min(tonumber(ARGV[8]), now) < math.min(tonumber(e.f), tonumber(written)) then
    write = 0
  end
end
if write == 1 then
  call('HSET', KEYS[2], ARGV[3], now .. ':' .. (now + ttl) .. ':' .. ARGV[4])
  call('GEOADD', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
  call('ZADD', KEYS[3], now + ttl, ARGV[3])
  for k = 1, 3 do keep_for(KEYS[k], ttl + 60000) end
end
for _, m in ipairs(call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 32)) do
  call('ZREM', KEYS[1], m); call('HDEL', KEYS[2], m); call('ZREM', KEYS[3], m)
end
if ARGV[6] ~= '' and owner(call('HGET', KEYS[5], ARGV[3])) == ARGV[6] then
  call('HDEL', KEYS[5], ARGV[3])
  call('ZREM', KEYS[4], ARGV[3])
end
for _, m in ipairs(call('ZRANDMEMBER', KEYS[4], 8)) do
  local o = call('HGET', KEYS[5], m)
  local _, expires = owner(o)
  if not expires or expires <= now then
    call('ZREM', KEYS[4], m)
    if o then call('HDEL', KEYS[5], m) end
  end
end
call('PUBLISH', ARGV[7], 'landed ' .. ARGV[3])
return write
"
);

/// Gives a lease back (compare-and-delete: only if the caller still owns it) and announces it,
/// so that instances waiting on it stop waiting at once.
///
/// KEYS: leases GEO, owners HASH (the lease's tile). ARGV: token, member, channel.
pub const RELEASE: &str = concat!(
    prelude!(),
    r"
typed(KEYS[1], 'zset'); typed(KEYS[2], 'hash')
if owner(call('HGET', KEYS[2], ARGV[2])) == ARGV[1] then
  call('HDEL', KEYS[2], ARGV[2])
  call('ZREM', KEYS[1], ARGV[2])
end
call('PUBLISH', ARGV[3], 'released ' .. ARGV[2])
return 1
"
);

/// Extends a lease the caller still owns (a flight that outlives one lease: a provider timing
/// out before the next answers).
///
/// KEYS: leases GEO, owners HASH. ARGV: token, member, lease ms. Returns 1 if still owned.
pub const RENEW: &str = concat!(
    prelude!(),
    r"
typed(KEYS[1], 'zset'); typed(KEYS[2], 'hash')
if owner(call('HGET', KEYS[2], ARGV[2])) ~= ARGV[1] then return 0 end
call('HSET', KEYS[2], ARGV[2], ARGV[1] .. ' ' .. (server_ms() + tonumber(ARGV[3])))
keep_for(KEYS[1], 2 * tonumber(ARGV[3]))
keep_for(KEYS[2], 2 * tonumber(ARGV[3]))
return 1
"
);

/// May this instance call the provider about this area now? Refused while the provider cools
/// down (a 429 seen by any instance), while a failing area within the radius cools down (an
/// error seen by any instance), or when the minute's or the UTC day's count has reached its
/// limit; otherwise counted. Windows come from the server's `TIME`, so every instance agrees
/// on them. A cooldown written by the first layout (value `1` with a TTL) is honoured too.
///
/// KEYS: cooldown, minute counter, day counter, failing GEO, failures HASH.
/// ARGV: per-minute limit, per-day limit (0 = none each), lon, lat, radius km (0: no area).
/// Returns `{'admitted', 0}`, `{'cooling', ms left}`, `{'budget', ms until the window ends}`
/// or `{'area', ms left, failures in a row, error}`.
pub const ADMIT: &str = concat!(
    prelude!(),
    r"
typed(KEYS[1], 'string'); typed(KEYS[2], 'string'); typed(KEYS[3], 'string')
typed(KEYS[4], 'zset'); typed(KEYS[5], 'hash')
local now = server_ms()
local until_ms = tonumber(call('GET', KEYS[1]) or '0') or 0
local ttl = call('PTTL', KEYS[1])
if ttl > 0 then until_ms = math.max(until_ms, now + ttl) end
if until_ms > now then return {'cooling', until_ms - now} end
if tonumber(ARGV[5]) > 0 then
  for _, m in ipairs(call('GEOSEARCH', KEYS[4], 'FROMLONLAT', ARGV[3], ARGV[4], 'BYRADIUS', ARGV[5], 'km', 'ASC', 'COUNT', 8)) do
    local v = call('HGET', KEYS[5], m)
    local failed_until, consecutive, error_text
    if v then failed_until, consecutive, error_text = string.match(v, '^(%d+) (%d+) (.*)$') end
    if failed_until and tonumber(failed_until) > now then
      return {'area', tonumber(failed_until) - now, tonumber(consecutive), error_text}
    end
  end
end
local minute, day = math.floor(now / 60000), math.floor(now / 86400000)
local function count(key, window)
  local v = call('GET', key)
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
call('SET', KEYS[2], string.format('%d:%d', minute, in_minute + 1))
call('SET', KEYS[3], string.format('%d:%d', day, in_day + 1))
return {'admitted', 0}
"
);

/// Starts (or extends, never shortens) a provider's cooldown for every instance: until when, in
/// server time, without a TTL.
///
/// KEYS: cooldown key. ARGV: window ms.
pub const COOL_DOWN: &str = concat!(
    prelude!(),
    r"
typed(KEYS[1], 'string')
local now = server_ms()
local current = tonumber(call('GET', KEYS[1]) or '0') or 0
local ttl = call('PTTL', KEYS[1])
if ttl > 0 then current = math.max(current, now + ttl) end
local wanted = now + tonumber(ARGV[1])
if current < wanted then call('SET', KEYS[1], string.format('%d', wanted)) end
return 1
"
);

/// Records an area failing for every instance: the nearest record within the radius (the same
/// area failing again) is continued, its window never shortened and its count of failures in
/// a row never lowered. Records idle for a whole maximum window are forgotten (a sample of 8
/// per call, so the set holds what is failing now).
///
/// KEYS: failing GEO, failures HASH. ARGV: lon, lat, radius km, member, window ms, failures in
/// a row, max window ms, error (one line).
pub const FAIL_AREA: &str = concat!(
    prelude!(),
    r"
typed(KEYS[1], 'zset'); typed(KEYS[2], 'hash')
local now, max_ms = server_ms(), tonumber(ARGV[7])
local function record(m)
  local v = call('HGET', KEYS[2], m)
  if not v then return nil end
  local failed_until, consecutive = string.match(v, '^(%d+) (%d+) ')
  if not failed_until then return nil end
  return tonumber(failed_until), tonumber(consecutive)
end
local failed_until, consecutive = now + tonumber(ARGV[5]), tonumber(ARGV[6])
for _, m in ipairs(call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km', 'ASC', 'COUNT', 1)) do
  local u, c = record(m)
  if u and u + max_ms > now then
    failed_until, consecutive = math.max(failed_until, u), math.max(consecutive, c)
  end
  call('ZREM', KEYS[1], m); call('HDEL', KEYS[2], m)
end
call('GEOADD', KEYS[1], ARGV[1], ARGV[2], ARGV[4])
call('HSET', KEYS[2], ARGV[4], failed_until .. ' ' .. consecutive .. ' ' .. ARGV[8])
for _, m in ipairs(call('ZRANDMEMBER', KEYS[1], 8)) do
  local u = record(m)
  if not u or u + max_ms <= now then call('ZREM', KEYS[1], m); call('HDEL', KEYS[2], m) end
end
return failed_until - now
"
);

/// Adds the calls an instance counted alone while Redis was away to the shared counters, for
/// the windows that are still current.
///
/// KEYS: minute counter, day counter. ARGV: minute index, calls in it, day index, calls in it.
/// Returns `{calls added to the minute, calls added to the day}`.
pub const RECONCILE: &str = concat!(
    prelude!(),
    r"
typed(KEYS[1], 'string'); typed(KEYS[2], 'string')
local now = server_ms()
local function add(key, window, given, calls)
  if tonumber(given) ~= window or tonumber(calls) <= 0 then return 0 end
  local c = 0
  local v = call('GET', key)
  if v then
    local w, n = string.match(v, '^(%d+):(%d+)$')
    if tonumber(w) == window then c = tonumber(n) end
  end
  call('SET', key, string.format('%d:%d', window, c + tonumber(calls)))
  return tonumber(calls)
end
return {add(KEYS[1], math.floor(now / 60000), ARGV[1], ARGV[2]), add(KEYS[2], math.floor(now / 86400000), ARGV[3], ARGV[4])}
"
);

/// Reads providers' shared counters, for the status page: what every instance together has
/// called in the current minute and UTC day (server time, the windows `ADMIT` counts in).
/// Read-only; every provider in one round trip (the keys share the control slot).
///
/// KEYS: each provider's minute counter then day counter. Returns `{ms until the minute ends,
/// then each provider's calls this minute and calls today}`.
pub const COUNTS: &str = concat!(
    prelude!(),
    r"
local now = server_ms()
local minute, day = math.floor(now / 60000), math.floor(now / 86400000)
local function count(key, window)
  local v = call('GET', key)
  if type(v) == 'string' then
    local w, c = string.match(v, '^(%d+):(%d+)$')
    if tonumber(w) == window then return tonumber(c) end
  end
  return 0
end
local out = {(minute + 1) * 60000 - now}
for i = 1, #KEYS, 2 do
  out[#out + 1] = count(KEYS[i], minute)
  out[#out + 1] = count(KEYS[i + 1], day)
end
return out
"
);

#[cfg(test)]
const ALL: [(&str, &str); 9] = [
    ("FIND_OR_LEASE", FIND_OR_LEASE),
    ("STORE", STORE),
    ("RELEASE", RELEASE),
    ("RENEW", RENEW),
    ("ADMIT", ADMIT),
    ("COOL_DOWN", COOL_DOWN),
    ("FAIL_AREA", FAIL_AREA),
    ("RECONCILE", RECONCILE),
    ("COUNTS", COUNTS),
];

#[cfg(test)]
mod tests {
    /// Redis Cluster routes a script by its `KEYS`, and the scripting contract asks that every
    /// key a script touches be declared there: no key may be built inside a script. Every
    /// command goes through the prelude's `call(command, key, ...)`; its key must be a `KEYS[..]`
    /// or a name bound to one.
    #[test]
    fn every_key_a_script_touches_is_declared() {
        for (name, script) in super::ALL {
            // Names bound to declared keys (`local entries, payloads = KEYS[..], KEYS[..]`) and
            // the prelude's parameter.
            let mut declared: Vec<String> = vec!["key".into()];
            for line in script.lines().map(str::trim) {
                if let Some((names, values)) = line.strip_prefix("local ").and_then(|l| l.split_once(" = ")) {
                    let names: Vec<&str> = names.split(',').map(str::trim).collect();
                    let values: Vec<&str> = values.split(',').map(str::trim).collect();
                    for (n, v) in names.iter().zip(values) {
                        if v.starts_with("KEYS[") {
                            declared.push((*n).to_owned());
                        }
                    }
                }
            }
            let calls = script.match_indices("call('").chain(script.match_indices("read('"));
            for (i, _) in calls {
                let call = &script[i + "call(".len()..];
                let call = &call[..call.find(')').unwrap_or(call.len())];
                let mut args = call.split(',').map(str::trim);
                let command = args.next().unwrap_or("").trim_matches('\'').to_uppercase();
                if matches!(command.as_str(), "TIME" | "PUBLISH") {
                    continue;
                }
                let key = args.next().unwrap_or("");
                let ok = key.starts_with("KEYS[") || declared.iter().any(|d| d == key);
                assert!(ok, "{name}: {command} on `{key}`, not a declared key");
            }
            assert!(!script.contains("redis.call("), "{name}: every command goes through call()");
        }
    }
}
