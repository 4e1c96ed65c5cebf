-- Prepended to every quota script (first of two, then reservations.lua): time, window arithmetic and what
-- a window holds. Mirrors windows.py formula for formula, so the memory store and the Redis store compute
-- the same IEEE doubles. A number handed to redis.call goes through fmt(): Lua would write it with only 14
-- significant digits.

local UNPLACED = -1
local EPS = 1e-9
-- Counter hashes outlive their window by this much, so a replica or test whose clock is not Redis' clock
-- never sees a counter vanish while it still counts; the window logic, not the TTL, decides what counts.
local GRACE = 3600

local function fmt(x)
  return string.format('%.17g', x)
end

-- Server time, unless the caller passed its own clock's time (tests move a ManualClock).
local function clock(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function geometry(kind, p1, p2, p3, p4)
  if kind == 's' then
    return {L = tonumber(p1), n = tonumber(p2)}
  elseif kind == 'c' then
    return {b = {tonumber(p1), tonumber(p2), tonumber(p3), tonumber(p4)}}
  end
  return nil
end

local function current(g, T)
  if g.b == nil then
    return math.floor(T / g.L)
  end
  for i = 1, 3 do
    if g.b[i] <= T and T < g.b[i + 1] then
      return g.b[i]
    end
  end
  return nil
end

local function counts(g, idx, cur)
  if cur == nil or idx == UNPLACED then
    return false
  end
  if g.b == nil then
    return idx > cur - g.n
  end
  return idx == cur
end

local function stale(g, idx, cur)
  if cur == nil then
    return false
  end
  if g.b == nil then
    return idx <= cur - g.n
  end
  return idx < cur
end

local function leaves_at(g, idx)
  if g.b == nil then
    return (idx + g.n) * g.L
  end
  for i = 1, 3 do
    if g.b[i] == idx then
      return g.b[i + 1]
    end
  end
  return nil
end

-- A counter hash holds 't<bucket>' (everything charged there) and 'r<bucket>' (of which still reserved).
local function read_window(key, g, T, clean)
  local cur = current(g, T)
  local flat = redis.call('HGETALL', key)
  local total, reserved, held, gone = 0, 0, {}, {}
  for i = 1, #flat, 2 do
    local field = flat[i]
    local idx = tonumber(string.sub(field, 2))
    if counts(g, idx, cur) then
      local v = tonumber(flat[i + 1])
      if string.byte(field, 1) == 116 then
        total = total + v
        held[#held + 1] = {idx, v}
      else
        reserved = reserved + v
      end
    elseif clean and stale(g, idx, cur) then
      gone[#gone + 1] = field
    end
  end
  if #gone > 0 then
    redis.call('HDEL', key, unpack(gone))
  end
  return total, reserved, held, cur
end

local function window_retry(g, held, total, requested, limit, T)
  if requested > limit + EPS then
    return nil
  end
  local excess = total + requested - limit
  if excess <= EPS then
    return 0
  end
  table.sort(held, function(a, b) return a[1] < b[1] end)
  local freed = 0
  for _, h in ipairs(held) do
    freed = freed + h[2]
    if freed >= excess - EPS then
      local at = leaves_at(g, h[1])
      if at == nil then
        return nil
      end
      return math.max(0, at - T)
    end
  end
  return nil
end

local function window_reset(g, held, cur, T)
  if g.b ~= nil then
    local at = cur and leaves_at(g, cur)
    if at == nil then
      return nil
    end
    return at - T
  end
  local oldest = nil
  for _, h in ipairs(held) do
    if h[2] > EPS and (oldest == nil or h[1] < oldest) then
      oldest = h[1]
    end
  end
  if oldest == nil then
    return nil
  end
  return math.max(0, (oldest + g.n) * g.L - T)
end

-- A concurrency limit is a sorted set of open reservations scored by lease deadline.
local function holders_retry(key, count, limit, T)
  if 1 > limit + EPS then
    return nil
  end
  local excess = count + 1 - limit
  if excess <= EPS then
    return 0
  end
  local rank = math.min(count, math.ceil(excess - EPS)) - 1
  local got = redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')
  return math.max(0, tonumber(got[2]) - T)
end

local function holders_reset(key, T)
  local got = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if got[2] == nil then
    return nil
  end
  return math.max(0, tonumber(got[2]) - T)
end

-- The part of a denial a binding choice needs; `retry` nil means never.
local function later(best, retry)
  if best == nil then
    return true
  end
  return best.retry ~= nil and (retry == nil or retry > best.retry)
end
