-- Read-only: per limit, used (window minus what open reservations hold beyond their commits), reserved,
-- and reset-after.
-- KEYS: one counter per limit.  ARGV: 1 time ('' = server time), 2 the limits (see read_limits).
-- Reply: packed doubles, per limit used, reserved, reset-after (-1 = nothing held).
local T = clock(ARGV[1])
local lines = {}
for i, e in ipairs(read_limits(ARGV[2], KEYS, 1)) do
  local used, reserved, reset
  if e.g == nil then
    used, reserved, reset = redis.call('ZCARD', e.k), 0, holders_reset(e.k, T)
  else
    local total, res, held, cur = read_window(e.k, e.g, T, false)
    used, reserved, reset = total - res, res, window_reset(e.g, held, cur, T)
  end
  lines[i] = struct.pack('<ddd', used, reserved, reset or -1)
end
return table.concat(lines)
