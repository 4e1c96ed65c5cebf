-- Read-only: per limit, used (window minus what open reservations hold beyond their commits), reserved,
-- and reset-after.
-- KEYS: one counter per limit.  ARGV: 1 time ('' = server time), then 5 per limit: kind, geometry x4.
-- Reply: {used, reserved, reset|'', ...}.
local T = clock(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 5
  local g = geometry(ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  local used, reserved, reset
  if g == nil then
    used, reserved, reset = redis.call('ZCARD', KEYS[i]), 0, holders_reset(KEYS[i], T)
  else
    local total, res, held, cur = read_window(KEYS[i], g, T, false)
    used, reserved, reset = total - res, res, window_reset(g, held, cur, T)
  end
  out[#out + 1] = fmt(used)
  out[#out + 1] = fmt(reserved)
  out[#out + 1] = reset and fmt(reset) or ''
end
return out
