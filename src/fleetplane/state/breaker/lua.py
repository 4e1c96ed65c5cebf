"""The breaker state machine as one Lua script: every check, observation and probe report is one atomic
call, so replicas sharing a Redis can never interleave half a transition.

The script is the Redis twin of `memory.py` and `window.py` (same slots, same arithmetic in the same
order, floats stored with 17 significant digits so they read back bit for bit). Layout and ARGV are
described in docs/breakers-engine.md.

KEYS: state hash, windows hash, probes sorted set, index set.
ARGV: op, now ('' = Redis TIME), breaker key, then per op:
  check/observe/probe_done: open_for, max_open_for, half_open_probes, close_after, probe_timeout,
    idle_ttl, triggers JSON; observe adds name, kind, window, threshold, min_samples, amount, bad,
    sample, probe; probe_done adds good.
Every answer is a flat list of strings ('' for none), because Redis turns Lua numbers into integers.
"""

SCRIPT = r"""
local SLOTS = 10
local MAX_LEVEL = 60
local RECORD = {'cause', 't_name', 't_kind', 't_value', 't_threshold', 't_window', 't_samples'}
local NUMBERS = {'opened_at', 'open_dur', 'level', 'trips', 'good', 'closed_at', 'expires',
                 't_value', 't_threshold', 't_window', 't_samples'}
local state_key, win_key, probe_key, index_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, member = ARGV[1], ARGV[3]
if op == 'arrive' or op == 'record' then index_key = KEYS[1] end
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function num(x) return string.format('%.17g', x) end
local function opt(x) if x == nil then return '' end return num(x) end
local function fld(name, what, j) return name .. '|' .. what .. string.format('%d', j) end

local open_for, max_open_for = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_probes, close_after = tonumber(ARGV[6]), tonumber(ARGV[7])
local probe_timeout, idle_ttl = tonumber(ARGV[8]), tonumber(ARGV[9])
local spec_json = ARGV[10]

-- a batch moves from breaker to breaker: the functions below read these upvalues
local function bind(keys_at, args, i)
  state_key, win_key, probe_key = KEYS[keys_at], KEYS[keys_at + 1], KEYS[keys_at + 2]
  member = args[i]
  open_for, max_open_for = tonumber(args[i + 1]), tonumber(args[i + 2])
  max_probes, close_after = tonumber(args[i + 3]), tonumber(args[i + 4])
  probe_timeout, idle_ttl = tonumber(args[i + 5]), tonumber(args[i + 6])
  spec_json = args[i + 7]
end

-- state ---------------------------------------------------------------------------------------------

local function load()
  local raw = redis.call('HGETALL', state_key)
  if #raw == 0 then return nil end
  local s = {}
  for i = 1, #raw, 2 do s[raw[i]] = raw[i + 1] end
  for _, f in ipairs(NUMBERS) do s[f] = tonumber(s[f]) end
  if s.expires and now > s.expires then
    -- idle past its lifetime on the caller's clock: forgotten, as PEXPIRE would on Redis's own
    redis.call('DEL', state_key, win_key, probe_key)
    return nil
  end
  if s.status == 'open' and now >= s.opened_at + s.open_dur then
    s.status = 'half_open'
    s.good = 0
  end
  return s
end

local function fresh() return {status = 'closed', level = 0, trips = 0, good = 0} end

local function save(s)
  local f = {'status', s.status, 'level', num(s.level), 'trips', num(s.trips), 'good', num(s.good),
             'expires', num(now + idle_ttl), 'spec', spec_json}
  if s.opened_at then
    f[#f + 1] = 'opened_at'; f[#f + 1] = num(s.opened_at)
    f[#f + 1] = 'open_dur'; f[#f + 1] = num(s.open_dur)
  end
  if s.closed_at then f[#f + 1] = 'closed_at'; f[#f + 1] = num(s.closed_at) end
  if s.cause then
    for _, r in ipairs(RECORD) do
      f[#f + 1] = r
      if type(s[r]) == 'number' then f[#f + 1] = num(s[r]) else f[#f + 1] = s[r] end
    end
  else
    redis.call('HDEL', state_key, unpack(RECORD))
  end
  redis.call('HSET', state_key, unpack(f))
  local ttl_ms = math.ceil(idle_ttl * 1000)
  redis.call('PEXPIRE', state_key, ttl_ms)
  redis.call('PEXPIRE', win_key, ttl_ms)
  redis.call('PEXPIRE', probe_key, ttl_ms)
  redis.call('SADD', index_key, member)
end

-- windows -------------------------------------------------------------------------------------------

local function read_window(name, window, kind)
  local k = math.floor(now / (window / SLOTS))
  local names = {name .. '|w'}
  for j = 0, SLOTS - 1 do
    names[#names + 1] = fld(name, 's', j)
    names[#names + 1] = fld(name, 'v', j)
    names[#names + 1] = fld(name, 'n', j)
  end
  local got = redis.call('HMGET', win_key, unpack(names))
  local value, samples = 0, 0
  if got[1] ~= num(window) then return value, samples end
  for j = 0, SLOTS - 1 do
    local stamp = tonumber(got[2 + 3 * j])
    -- a stamp ahead of now (the clock stepped back) is not counted: forgetting errs open
    if stamp and stamp > k - SLOTS and stamp <= k then
      samples = samples + tonumber(got[4 + 3 * j])
      local v = tonumber(got[3 + 3 * j])
      if kind == 'max' then value = math.max(value, v) else value = value + v end
    end
  end
  if kind == 'ratio' then
    if samples > 0 then value = value / samples else value = 0 end
  end
  return value, samples
end

local function add(name, window, kind, amount, bad, sample)
  local wf = name .. '|w'
  if redis.call('HGET', win_key, wf) ~= num(window) then
    -- a new window length starts over: old stamps count slots of another size
    local stale = {}
    for j = 0, SLOTS - 1 do
      stale[#stale + 1] = fld(name, 's', j)
      stale[#stale + 1] = fld(name, 'v', j)
      stale[#stale + 1] = fld(name, 'n', j)
    end
    redis.call('HDEL', win_key, unpack(stale))
    redis.call('HSET', win_key, wf, num(window))
  end
  local k = math.floor(now / (window / SLOTS))
  local j = k % SLOTS
  local got = redis.call('HMGET', win_key, fld(name, 's', j), fld(name, 'v', j), fld(name, 'n', j))
  local v, n = 0, 0
  if tonumber(got[1]) == k then v, n = tonumber(got[2]), tonumber(got[3]) end
  if kind == 'sum' then v = v + amount
  elseif kind == 'max' then v = math.max(v, amount)
  elseif bad then v = v + sample end
  n = n + sample
  redis.call('HSET', win_key, fld(name, 's', j), num(k), fld(name, 'v', j), num(v), fld(name, 'n', j), num(n))
end

-- transitions ---------------------------------------------------------------------------------------

local function trip(s, cause, name, kind, value, threshold, window, samples)
  local recently_closed = s.closed_at ~= nil and now - s.closed_at < max_open_for
  if s.status == 'half_open' or recently_closed then
    s.level = math.min(s.level + 1, MAX_LEVEL)
  else
    s.level = 0
  end
  s.status, s.opened_at = 'open', now
  s.open_dur = math.min(max_open_for, open_for * 2 ^ s.level)
  s.trips, s.good = s.trips + 1, 0
  s.cause, s.t_name, s.t_kind = cause, name, kind
  s.t_value, s.t_threshold, s.t_window, s.t_samples = value, threshold, window, samples
  -- probes belong to one opening; windows restart so probes are judged on what they do
  redis.call('DEL', win_key, probe_key)
end

local function close(s)
  s.status, s.closed_at, s.good, s.cause = 'closed', now, 0, nil
  redis.call('DEL', win_key, probe_key)
end

local function expire_probes()
  redis.call('ZREMRANGEBYSCORE', probe_key, '-inf', '(' .. num(now - probe_timeout))
end

local function verdict(s, probe)
  local rec = {}
  if s.status ~= 'closed' and s.cause then
    rec = {s.cause, s.t_name, s.t_kind, num(s.t_value), num(s.t_threshold), num(s.t_window), num(s.t_samples)}
  else
    rec = {'', '', '', '', '', '', ''}
  end
  local head
  if s.status == 'closed' then
    head = {'closed', '1', '0', ''}
  elseif s.status == 'open' then
    head = {'open', '0', '0', num(s.opened_at + s.open_dur - now)}
  elseif probe then
    head = {'half_open', '1', '1', ''}
  else
    local wait = 0
    if redis.call('ZCARD', probe_key) >= max_probes then
      local oldest = redis.call('ZRANGE', probe_key, 0, 0, 'WITHSCORES')
      wait = math.min(open_for, tonumber(oldest[2]) + probe_timeout - now)
    end
    head = {'half_open', '0', '0', num(wait)}
  end
  for _, r in ipairs(rec) do head[#head + 1] = r end
  return head
end

-- operations ----------------------------------------------------------------------------------------

local function do_check()
  local s = load()
  if not s then return verdict(fresh(), false) end
  if s.status == 'half_open' then
    expire_probes()
    if redis.call('ZCARD', probe_key) < max_probes then
      local id = redis.call('HINCRBY', state_key, 'seq', 1)
      redis.call('ZADD', probe_key, num(now), id)
      save(s)
      return verdict(s, true)
    end
  end
  return verdict(s, false)
end

local function do_observe(name, kind, window, threshold, min_samples, amount, bad, sample, probe)
  local s = load() or fresh()
  -- refused traffic is not counted: the window after an opening starts from the probes
  if s.status == 'open' then return verdict(s, false) end
  add(name, window, kind, amount, bad, sample)
  local value, samples = read_window(name, window, kind)
  local judged = probe and s.status == 'half_open'
  if judged and kind == 'ratio' and bad and s.cause then
    -- a ratio probe is judged on itself, like probe_done(good=False): one bad answer fails it
    trip(s, 'probe', s.t_name, s.t_kind, s.t_value, s.t_threshold, s.t_window, s.t_samples)
  elseif samples >= min_samples and value > threshold then
    trip(s, 'trigger', name, kind, value, threshold, window, samples)
  end
  save(s)
  return verdict(s, judged)
end

local function do_probe_done(good)
  local s = load()
  if not s then return verdict(fresh(), false) end
  if s.status ~= 'half_open' then return verdict(s, false) end
  expire_probes()
  -- nothing in flight: a late report from an earlier opening, or a lease that ran out
  if redis.call('ZCARD', probe_key) == 0 then return verdict(s, false) end
  redis.call('ZPOPMIN', probe_key)
  if good then
    s.good = s.good + 1
    if s.good >= close_after then close(s) end
  else
    trip(s, 'probe', s.t_name, s.t_kind, s.t_value, s.t_threshold, s.t_window, s.t_samples)
  end
  save(s)
  return verdict(s, false)
end

-- one step of a batch at ARGV[i]; returns its verdict (nil: nothing observed) and the next index
local function do_step(i, granted)
  local kind_of = ARGV[i]
  if kind_of == 'probe_done' then return do_probe_done(ARGV[i + 1] == '1'), i + 2 end
  local name, kind = ARGV[i + 1], ARGV[i + 2]
  local window, threshold, min_samples = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local amount, bad, sample = tonumber(ARGV[i + 6]), ARGV[i + 7] == '1', tonumber(ARGV[i + 8])
  local probe = ARGV[i + 9] == '1'
  if granted ~= nil then probe = granted end
  local counter, ttl_ms = KEYS[tonumber(ARGV[i + 10])], ARGV[i + 11]
  if kind_of == 'count' then
    amount = redis.call('INCR', counter)
    if amount == 1 then redis.call('PEXPIRE', counter, ttl_ms) end
  elseif kind_of == 'growth' then
    local previous = redis.call('SET', counter, ARGV[i + 6], 'PX', ttl_ms, 'GET')
    if not previous then return nil, i + 12 end
    amount = math.max(0, amount - tonumber(previous))
  end
  return do_observe(name, kind, window, threshold, min_samples, amount, bad, sample, probe), i + 12
end

if op == 'check' then
  return do_check()

elseif op == 'observe' then
  return do_observe(ARGV[11], ARGV[12], tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]),
    tonumber(ARGV[16]), ARGV[17] == '1', tonumber(ARGV[18]), ARGV[19] == '1')

elseif op == 'probe_done' then
  return do_probe_done(ARGV[11] == '1')

elseif op == 'arrive' or op == 'record' then
  -- ARGV[3]: breakers; then per breaker: its first key's index, member, 7 spec fields, steps, steps...
  local out, i = {}, 4
  for _ = 1, tonumber(ARGV[3]) do
    bind(tonumber(ARGV[i]), ARGV, i + 1)
    local steps = tonumber(ARGV[i + 9])
    i = i + 10
    if op == 'record' then
      local rows = {}
      for _ = 1, steps do
        local v
        v, i = do_step(i, nil)
        rows[#rows + 1] = v or verdict(fresh(), false)
      end
      out[#out + 1] = rows
    else
      local v = do_check()
      local granted = v[2] == '1' and v[3] == '1'
      if v[2] == '1' then
        for _ = 1, steps do
          local w
          w, i = do_step(i, granted)
          if w then v = w end
          if v[2] ~= '1' then break end
        end
      end
      table.insert(v, 1, granted and '1' or '0')
      out[#out + 1] = v
      -- the first refusal ends the arrival: later breakers are not checked, as one by one
      if v[3] ~= '1' then return out end
    end
  end
  return out

elseif op == 'snapshot' then
  local s = load()
  if not s then
    redis.call('SREM', index_key, member)
    return {}
  end
  local out = {s.status, '', '', num(s.trips)}
  if s.status ~= 'closed' then out[2] = num(s.opened_at) end
  if s.status == 'open' then out[3] = num(s.opened_at + s.open_dur - now) end
  for _, r in ipairs(RECORD) do
    if s.status == 'closed' or s[r] == nil then out[#out + 1] = ''
    elseif type(s[r]) == 'number' then out[#out + 1] = num(s[r])
    else out[#out + 1] = s[r] end
  end
  for _, t in ipairs(cjson.decode(s.spec)) do
    out[#out + 1] = t[1]
    out[#out + 1] = num((read_window(t[1], t[3], t[2])))
  end
  return out

elseif op == 'reset' then
  redis.call('SREM', index_key, member)
  return redis.call('DEL', state_key, win_key, probe_key) > 0 and 1 or 0
end
return redis.error_reply('unknown breaker op ' .. tostring(op))
"""
