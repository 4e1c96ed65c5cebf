-- End up to ARGV[2] reservations whose lease has passed, each at its committed usage.
-- KEYS: 1 lease index.  ARGV: 1 time ('' = server time), 2 batch size, 3 record key prefix, 4 tombstone ttl ms.
-- Reply: {ended, looked at}; the caller calls again while a full batch was looked at.
local T = clock(ARGV[1])
local ended, seen = expire_due(KEYS[1], ARGV[3], T, tonumber(ARGV[2]), ARGV[4])
return {ended, seen}
