-- Shared by every quota script (prepended when the script is loaded): window arithmetic, reservation
-- pieces and records. Mirrors windows.py and pieces.py formula for formula, so the memory store and this
-- one compute the same IEEE doubles. Numbers that need all their digits travel as strings written with
-- fmt(): Lua hands numbers to redis.call with only 14 significant digits, and cjson encodes the same way.

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

local function reshape(pieces, held, new_held, cur)
  local out = {}
  for i, p in ipairs(pieces) do
    out[i] = {p[1], p[2]}
  end
  if new_held > held then
    local idx = cur or UNPLACED
    local last = out[#out]
    if last ~= nil and last[1] == idx then
      last[2] = last[2] + (new_held - held)
    else
      out[#out + 1] = {idx, new_held - held}
    end
  elseif new_held < held then
    local cut = held - new_held
    while #out > 0 and cut > 0 do
      local last = out[#out]
      if last[2] > cut then
        last[2] = last[2] - cut
        cut = 0
      else
        out[#out] = nil
        cut = cut - last[2]
      end
    end
  end
  return out
end

local function contributions(pieces, held, committed)
  local reserved = math.max(0, held - committed)
  local out = {}
  for i = #pieces, 1, -1 do
    local idx, amount = pieces[i][1], pieces[i][2]
    local part = math.min(amount, reserved)
    reserved = reserved - part
    local c = out[idx]
    if c == nil then
      out[idx] = {amount, part}
    else
      c[1] = c[1] + amount
      c[2] = c[2] + part
    end
  end
  return out
end

local function bump(key, field, delta, is_float)
  if delta == 0 then
    return
  end
  local v
  if is_float then
    v = tonumber(redis.call('HINCRBYFLOAT', key, field, fmt(delta)))
  else
    v = redis.call('HINCRBY', key, field, fmt(delta))
  end
  if math.abs(v) <= EPS then
    redis.call('HDEL', key, field)
  end
end

-- Move one windowed entry of a reservation from (held, committed) to new amounts, writing the difference
-- to the buckets still in the window (an adjustment to a bucket that has left no longer matters).
local function move_entry(e, held, committed, new_held, new_committed, T)
  local g = e.g
  local cur = current(g, T)
  local pieces = reshape(e.p, held, new_held, cur)
  local before = contributions(e.p, held, committed)
  local after = contributions(pieces, new_held, new_committed)
  local is_float = e.m == 'dollars'
  local wrote = false
  for idx, b in pairs(before) do
    if counts(g, idx, cur) then
      local a = after[idx] or {0, 0}
      bump(e.k, 't' .. fmt(idx), a[1] - b[1], is_float)
      bump(e.k, 'r' .. fmt(idx), a[2] - b[2], is_float)
      wrote = true
    end
  end
  for idx, a in pairs(after) do
    if before[idx] == nil and counts(g, idx, cur) then
      bump(e.k, 't' .. fmt(idx), a[1], is_float)
      bump(e.k, 'r' .. fmt(idx), a[2], is_float)
      wrote = true
    end
  end
  if wrote and cur ~= nil then
    redis.call('PEXPIRE', e.k, fmt(math.ceil((leaves_at(g, cur) - T + GRACE) * 1000)))
  end
  e.p = pieces
end

local METRICS = {'tokens', 'input_tokens', 'output_tokens', 'requests', 'dollars'}

local function read_charge(argv, first)
  local out = {}
  for i, m in ipairs(METRICS) do
    out[m] = tonumber(argv[first + i - 1])
  end
  return out
end

local function decode_record(raw)
  local rec = cjson.decode(raw)
  if rec.o ~= 1 then
    return rec
  end
  rec.L = tonumber(rec.L)
  rec.d = tonumber(rec.d)
  for m, v in pairs(rec.h) do
    rec.h[m] = tonumber(v)
  end
  for m, v in pairs(rec.c) do
    rec.c[m] = tonumber(v)
  end
  for _, e in ipairs(rec.e) do
    e.g = geometry(e.w, e.gp[1], e.gp[2], e.gp[3], e.gp[4])
    for _, p in ipairs(e.p) do
      p[2] = tonumber(p[2])
    end
  end
  return rec
end

local function encode_record(rec)
  local h, c, entries = {}, {}, {}
  for m, v in pairs(rec.h) do
    h[m] = fmt(v)
  end
  for m, v in pairs(rec.c) do
    c[m] = fmt(v)
  end
  for i, e in ipairs(rec.e) do
    local p = {}
    for j, piece in ipairs(e.p) do
      p[j] = {piece[1], fmt(piece[2])}
    end
    entries[i] = {k = e.k, ck = e.ck, m = e.m, lim = e.lim, w = e.w, gp = e.gp, spec = e.spec, p = p}
  end
  return cjson.encode({o = 1, L = fmt(rec.L), d = fmt(rec.d), h = h, c = c, e = entries, dec = rec.dec})
end

-- Remaining and reset-after per limit, as headers report them, in the reply shape {1, key, rem, reset, ...}.
local function outlook(entries, T)
  local out = {1}
  for _, e in ipairs(entries) do
    local lim = tonumber(e.lim)
    local total, reset
    if e.g == nil then
      total = redis.call('ZCARD', e.k)
      reset = holders_reset(e.k, T)
    else
      local t, _, held, cur = read_window(e.k, e.g, T, false)
      total = t
      reset = window_reset(e.g, held, cur, T)
    end
    out[#out + 1] = e.ck
    out[#out + 1] = fmt(math.max(0, lim - total))
    out[#out + 1] = fmt(reset or 0)
  end
  return out
end

local function renew(leases, rid, rec, deadline)
  rec.d = deadline
  redis.call('ZADD', leases, fmt(deadline), rid)
  for _, e in ipairs(rec.e) do
    if e.g == nil then
      redis.call('ZADD', e.k, fmt(deadline), rid)
    end
  end
end

-- End a reservation at `final`: its windows hold exactly `final`, its concurrency places are freed, and
-- a tombstone remembers the decision for a while so replays are recognised.
local function end_record(leases, rkey, rid, rec, final, T, ttl_ms)
  for _, e in ipairs(rec.e) do
    if e.g == nil then
      redis.call('ZREM', e.k, rid)
    else
      local f = final[e.m]
      move_entry(e, rec.h[e.m], rec.c[e.m], f, f, T)
    end
  end
  redis.call('ZREM', leases, rid)
  redis.call('SET', rkey, cjson.encode({o = 0, dec = rec.dec}), 'PX', ttl_ms)
end

local function expire_due(leases, prefix, T, most, ttl_ms)
  local due = redis.call('ZRANGEBYSCORE', leases, '-inf', fmt(T), 'LIMIT', 0, most)
  local ended = 0
  for _, rid in ipairs(due) do
    local rkey = prefix .. rid
    local raw = redis.call('GET', rkey)
    local rec = raw and decode_record(raw)
    if rec and rec.o == 1 then
      end_record(leases, rkey, rid, rec, rec.c, T, ttl_ms)
      ended = ended + 1
    else
      redis.call('ZREM', leases, rid)
    end
  end
  return ended, #due
end
