-- Prepended to every quota script (second of two, after windows.lua): a reservation's pieces and how
-- they move (mirrors pieces.py), counter writes, the wire format and reservation records, and ending a
-- reservation.

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

-- Returns true when the field was created by this write (its new value is exactly the delta).
local function bump(key, field, delta, is_float)
  if delta == 0 then
    return false
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
  return v == delta
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
  local created = false
  for idx, b in pairs(before) do
    if counts(g, idx, cur) then
      local a, name = after[idx] or {0, 0}, fmt(idx)
      created = bump(e.k, 't' .. name, a[1] - b[1], is_float) or created
      bump(e.k, 'r' .. name, a[2] - b[2], is_float)
    end
  end
  for idx, a in pairs(after) do
    if before[idx] == nil and counts(g, idx, cur) then
      local name = fmt(idx)
      created = bump(e.k, 't' .. name, a[1], is_float) or created
      bump(e.k, 'r' .. name, a[2], is_float)
    end
  end
  -- A counter lives until its newest bucket leaves the window (plus GRACE); only a write that creates a
  -- bucket can move that point, so only such a write renews the TTL.
  if created and cur ~= nil then
    redis.call('PEXPIRE', e.k, fmt(math.ceil((leaves_at(g, cur) - T + GRACE) * 1000)))
  end
  e.p = pieces
end

-- A new reservation's first charge: one piece, all of it still reserved, in the current bucket. The same
-- result move_entry(e, 0, 0, q, 0, T) computes, without its bookkeeping (this is the hot path).
local function first_charge(e, q, cur, T)
  if q == 0 then
    return
  end
  local is_float, name = e.m == 'dollars', fmt(cur)
  local created = bump(e.k, 't' .. name, q, is_float)
  bump(e.k, 'r' .. name, q, is_float)
  if created then
    redis.call('PEXPIRE', e.k, fmt(math.ceil((leaves_at(e.g, cur) - T + GRACE) * 1000)))
  end
  e.p = {{cur, q}}
end

local METRICS = {'tokens', 'input_tokens', 'output_tokens', 'requests', 'dollars'}
local KINDS = {'s', 'c', 'n'}
-- Numbers travel packed as little-endian doubles (struct), not as text: in Redis' Lua every string made
-- costs about half a microsecond, and a dozen limits of text fields made parsing the costliest step.
local LIMIT = '<BBddddd'  -- metric, kind, limit, four geometry fields
local LIMIT_SIZE = 42
local CHARGE = '<ddddd'
local RS = '\30'

local function read_charge(packed)
  local t, i, o, r, d = struct.unpack(CHARGE, packed)
  return {tokens = t, input_tokens = i, output_tokens = o, requests = r, dollars = d}
end

local function charge_list(c)
  return {c.tokens, c.input_tokens, c.output_tokens, c.requests, c.dollars}
end

local function from_list(l)
  return {tokens = l[1], input_tokens = l[2], output_tokens = l[3], requests = l[4], dollars = l[5]}
end

-- One entry per limit: counter key, metric, limit and geometry (nil for a concurrency limit).
local function read_limits(packed, keys, first)
  local entries, pos = {}, 1
  for i = 1, #packed / LIMIT_SIZE do
    local metric, kind, limit, p1, p2, p3, p4
    metric, kind, limit, p1, p2, p3, p4, pos = struct.unpack(LIMIT, packed, pos)
    local g = nil
    if KINDS[kind] == 's' then
      g = {L = p1, n = p2}
    elseif KINDS[kind] == 'c' then
      g = {b = {p1, p2, p3, p4}}
    end
    entries[i] = {i = i, k = keys[first + i - 1], m = METRICS[metric], lim = limit, g = g, p = {}}
  end
  return entries
end

-- The record of an open reservation (MessagePack: binary-safe, doubles exact): lease, deadline, held and
-- committed amounts, its limits exactly as admitted with their keys and descriptions, each limit's
-- pieces, and the admission's reply (`dec`) for replays.
local function decode_record(raw)
  local rec = cmsgpack.unpack(raw)
  if rec.o ~= 1 then
    return rec
  end
  rec.h = from_list(rec.h)
  rec.c = from_list(rec.c)
  rec.e = read_limits(rec.lim, rec.ks, 1)
  for i, e in ipairs(rec.e) do
    local flat = rec.p[i]
    for j = 1, #flat, 2 do
      e.p[#e.p + 1] = {flat[j], flat[j + 1]}
    end
  end
  return rec
end

local function encode_record(rec)
  local pieces = {}
  for i, e in ipairs(rec.e) do
    local flat = {}
    for _, piece in ipairs(e.p) do
      flat[#flat + 1] = piece[1]
      flat[#flat + 1] = piece[2]
    end
    pieces[i] = flat
  end
  return cmsgpack.pack({
    o = 1, L = rec.L, d = rec.d, h = charge_list(rec.h), c = charge_list(rec.c),
    lim = rec.lim, ks = rec.ks, specs = rec.specs, p = pieces, dec = rec.dec,
  })
end

-- The description of the i-th limit, from the descriptions the admission stored (one string, RS-separated).
local function spec_of(rec, i)
  local from = 1
  for _ = 2, i do
    from = string.find(rec.specs, RS, from, true) + 1
  end
  local to = string.find(rec.specs, RS, from, true)
  return string.sub(rec.specs, from, to and to - 1 or -1)
end

-- Remaining and reset-after per limit, in order, as packed doubles: what headers report.
local function outlook_pair(e, total, reset)
  return struct.pack('<dd', math.max(0, e.lim - total), reset or 0)
end

local function outlook(entries, T)
  local parts = {}
  for i, e in ipairs(entries) do
    local total, reset
    if e.g == nil then
      total = redis.call('ZCARD', e.k)
      reset = holders_reset(e.k, T)
    else
      local t, _, held, cur = read_window(e.k, e.g, T, false)
      total = t
      reset = window_reset(e.g, held, cur, T)
    end
    parts[i] = outlook_pair(e, total, reset)
  end
  return table.concat(parts)
end

-- Why a limit refused: used, reserved, requested, retry-after (-1 = never), packed.
local function refusal(best)
  return struct.pack('<dddd', best.used, best.reserved, best.requested, best.retry or -1)
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
  -- The tombstone knows its own end (`x`) as well: replays are judged by the same clock as everything
  -- else, while PX (Redis' own clock) only collects the garbage.
  local tomb = {o = 0, dec = rec.dec, ks = rec.ks, x = T + tonumber(ttl_ms) / 1000}
  redis.call('SET', rkey, cmsgpack.pack(tomb), 'PX', ttl_ms)
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
