-- Admit more for an open reservation, atomically over the limits it was admitted on (their values then).
-- KEYS: 1 the reservation's record.  ARGV: 1 time ('' = server time), 2 the extra charge.
-- Reply: {-1} not open | {0, refusing limit's description, refusal} | {1, outlook, counter keys}.
local T = clock(ARGV[1])
local raw = redis.call('GET', KEYS[1])
if not raw then
  return {-1}
end
local rec = decode_record(raw)
if rec.o ~= 1 then
  return {-1}
end
local delta = read_charge(ARGV[2])

local best = nil
for _, e in ipairs(rec.e) do
  local q = delta[e.m]
  if e.g ~= nil and q > 0 then
    local total, reserved, held = read_window(e.k, e.g, T, true)
    if total + q > e.lim + EPS then
      local retry = window_retry(e.g, held, total, q, e.lim, T)
      if later(best, retry) then
        best = {i = e.i, used = total - reserved, reserved = reserved, requested = q, retry = retry}
      end
    end
  end
end
if best ~= nil then
  return {0, spec_of(rec, best.i), refusal(best)}
end

local held = {}
for _, m in ipairs(METRICS) do
  held[m] = rec.h[m] + delta[m]
end
for _, e in ipairs(rec.e) do
  if e.g ~= nil then
    move_entry(e, rec.h[e.m], rec.c[e.m], held[e.m], rec.c[e.m], T)
  end
end
rec.h = held
redis.call('SET', KEYS[1], encode_record(rec))
return {1, outlook(rec.e, T), rec.ks}
