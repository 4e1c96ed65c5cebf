-- End a reservation: at `final` (settle) or at what was committed (release). Exactly once: a second call,
-- or a call after the lease expired and was processed, finds no open record and changes nothing.
-- KEYS: 1 lease index, 2 the reservation's record.
-- ARGV: 1 time ('' = server time), 2 tombstone ttl ms, 3 record key prefix, 4 the final usage ('' = committed).
-- Reply: 1 if this call ended the reservation, else 0.
local T = clock(ARGV[1])
local raw = redis.call('GET', KEYS[2])
if not raw then
  return 0
end
local rec = decode_record(raw)
if rec.o ~= 1 then
  return 0
end
local final = rec.c
if ARGV[4] ~= '' then
  final = read_charge(ARGV[4])
end
local rid = string.sub(KEYS[2], #ARGV[3] + 1)
end_record(KEYS[1], KEYS[2], rid, rec, final, T, ARGV[2])
return 1
