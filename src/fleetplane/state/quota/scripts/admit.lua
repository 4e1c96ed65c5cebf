-- Admit one reservation over every limit at once, or over none.
-- KEYS: 1 lease index (zset), 2 the reservation's record, 3.. one counter per limit.
-- ARGV: 1 reservation id, 2 time ('' = server time), 3 lease seconds, 4 expiries to run first,
--       5 tombstone ttl ms, 6 record key prefix, 7..11 the charge (see METRICS),
--       then 9 per limit: caller key, metric, limit, kind ('s' sliding, 'c' calendar, 'n' concurrent),
--       four geometry fields, the limit's description (returned to the caller on a later denial).
-- Reply: {1, key, remaining, reset_after, ...} | {0, limit index, used, reserved, requested, retry|''}.
local rid = ARGV[1]
local T = clock(ARGV[2])
local lease = tonumber(ARGV[3])
local ttl_ms = ARGV[5]

-- Expired reservations release their hold before anyone is measured against it.
expire_due(KEYS[1], ARGV[6], T, tonumber(ARGV[4]), ttl_ms)

local raw = redis.call('GET', KEYS[2])
if raw then
  -- The id is known: the first decision stands and nothing is charged again.
  return cjson.decode(raw).dec
end

local charge = read_charge(ARGV, 7)
local n = (#ARGV - 11) / 9
local entries, best = {}, nil
for i = 1, n do
  local a = 11 + (i - 1) * 9
  local kind = ARGV[a + 4]
  local e = {
    k = KEYS[2 + i], ck = ARGV[a + 1], m = ARGV[a + 2], lim = ARGV[a + 3], w = kind,
    gp = {ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]}, spec = ARGV[a + 9], p = {},
  }
  e.g = geometry(kind, e.gp[1], e.gp[2], e.gp[3], e.gp[4])
  entries[i] = e
  local limit = tonumber(e.lim)
  local total, reserved, requested, retry
  if e.g == nil then
    total, reserved, requested = redis.call('ZCARD', e.k), 0, 1
    if total + requested > limit + EPS then
      retry = holders_retry(e.k, total, limit, T)
    end
  else
    local held, cur
    total, reserved, held, cur = read_window(e.k, e.g, T, true)
    if cur == nil then
      return redis.error_reply('quota: server time is outside the calendar periods the replica computed (clock skew)')
    end
    requested = charge[e.m]
    if total + requested > limit + EPS then
      retry = window_retry(e.g, held, total, requested, limit, T)
    end
  end
  if total + requested > limit + EPS and later(best, retry) then
    best = {i = i, used = total - reserved, reserved = reserved, requested = requested, retry = retry}
  end
end

if best ~= nil then
  return {0, best.i, fmt(best.used), fmt(best.reserved), fmt(best.requested), best.retry and fmt(best.retry) or ''}
end

local zero = {}
for _, m in ipairs(METRICS) do
  zero[m] = 0
end
local rec = {L = lease, d = T + lease, h = charge, c = zero, e = entries}
renew(KEYS[1], rid, rec, T + lease)
for _, e in ipairs(entries) do
  if e.g ~= nil then
    move_entry(e, 0, 0, charge[e.m], 0, T)
  end
end
rec.dec = outlook(entries, T)
redis.call('SET', KEYS[2], encode_record(rec))
return rec.dec
