-- Record cumulative usage known so far and renew the lease. Committed usage only grows, and what a
-- reservation holds grows with it: tokens already produced are charged whether or not they were reserved.
-- KEYS: 1 lease index, 2 the reservation's record.
-- ARGV: 1 time ('' = server time), 2 new lease seconds ('' = keep), 3 usage so far, 4 record key prefix.
-- Reply: 1 if the reservation was open, else 0.
local T = clock(ARGV[1])
local raw = redis.call('GET', KEYS[2])
if not raw then
  return 0
end
local rec = decode_record(raw)
if rec.o ~= 1 then
  return 0
end
local used = read_charge(ARGV[3])
local committed, held = {}, {}
for _, m in ipairs(METRICS) do
  committed[m] = math.max(rec.c[m], used[m])
  held[m] = math.max(rec.h[m], committed[m])
end
for _, e in ipairs(rec.e) do
  if e.g ~= nil then
    move_entry(e, rec.h[e.m], rec.c[e.m], held[e.m], committed[e.m], T)
  end
end
rec.h, rec.c = held, committed
if ARGV[2] ~= '' then
  rec.L = tonumber(ARGV[2])
end
local rid = string.sub(KEYS[2], #ARGV[4] + 1)
renew(KEYS[1], rid, rec, T + rec.L)
redis.call('SET', KEYS[2], encode_record(rec))
return 1
