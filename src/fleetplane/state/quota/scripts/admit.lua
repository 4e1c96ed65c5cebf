-- Admit one reservation over every limit at once, or over none.
-- KEYS: 1 lease index (zset), 2 the reservation's record, 3.. one counter per limit, in order.
-- ARGV: 1 reservation id, 2 time ('' = server time), 3 lease seconds, 4 expiries to run first,
--       5 tombstone ttl ms, 6 record key prefix, 7 the charge, 8 the limits (see read_limits),
--       9 the limits' descriptions (kept for a later extension's refusal).
-- Reply: {1, outlook} | {2, outlook, counter keys} for a replay | {0, refusing limit's position, refusal}.
local rid = ARGV[1]
local T = clock(ARGV[2])
local lease = tonumber(ARGV[3])

-- Expired reservations release their hold before anyone is measured against it.
expire_due(KEYS[1], ARGV[6], T, tonumber(ARGV[4]), ARGV[5])

local raw = redis.call('GET', KEYS[2])
if raw then
  -- The id is known: the first decision stands and nothing is charged again.
  local known = cmsgpack.unpack(raw)
  if known.o == 1 or known.x > T then
    return {2, known.dec, known.ks}
  end
end

local charge = read_charge(ARGV[7])
local entries = read_limits(ARGV[8], KEYS, 3)
-- Every counter is read before any is written: an error (a key of the wrong type) charges nothing.
local best = nil
for i, e in ipairs(entries) do
  local total, reserved, requested, retry, held, cur
  if e.g == nil then
    total, reserved, requested = redis.call('ZCARD', e.k), 0, 1
    if total + requested > e.lim + EPS then
      retry = holders_retry(e.k, total, e.lim, T)
    end
  else
    total, reserved, held, cur = read_window(e.k, e.g, T, true)
    if cur == nil then
      return redis.error_reply('quota: server time is outside the calendar periods the replica computed (clock skew)')
    end
    requested = charge[e.m]
    if total + requested > e.lim + EPS then
      retry = window_retry(e.g, held, total, requested, e.lim, T)
    end
  end
  if total + requested > e.lim + EPS and later(best, retry) then
    best = {i = i, used = total - reserved, reserved = reserved, requested = requested, retry = retry}
  end
  e.total, e.held, e.cur = total + requested, held, cur
end

if best ~= nil then
  return {0, best.i, refusal(best)}
end

local zero = {}
for _, m in ipairs(METRICS) do
  zero[m] = 0
end
local rec = {L = lease, d = T + lease, h = charge, c = zero, e = entries, lim = ARGV[8], ks = {}, specs = ARGV[9]}
renew(KEYS[1], rid, rec, T + lease)
local lines = {}
for i, e in ipairs(entries) do
  rec.ks[i] = e.k
  local reset
  if e.g == nil then
    reset = holders_reset(e.k, T)
  else
    first_charge(e, charge[e.m], e.cur, T)
    e.held[#e.held + 1] = {e.cur, charge[e.m]}
    reset = window_reset(e.g, e.held, e.cur, T)
  end
  lines[i] = outlook_pair(e, e.total, reset)
end
rec.dec = table.concat(lines)
redis.call('SET', KEYS[2], encode_record(rec))
return {1, rec.dec}
