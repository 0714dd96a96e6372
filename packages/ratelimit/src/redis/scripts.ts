import { createHash } from 'node:crypto';
import { Mode } from '../algorithm.js';

// Every algorithm is a Lua function f(key, p1, p2, p3, now, cost, mode, rts) -> ok, remaining, reset, retry
// with times in µs from the server's TIME. mode is one of PEEK (evaluate only), COMMIT (charge when allowed)
// and REFUND (return a reservation made at rts), the values of `Mode`. Values are stored with %.17g so doubles
// round-trip exactly.

const PRELUDE = `
local PEEK, COMMIT, REFUND = ${Mode.peek}, ${Mode.commit}, ${Mode.refund}
-- limitAll checks every scope, then charges them: the charge pass reuses what the check pass read
local cache = nil
local function GET(k)
  if cache == nil then return redis.call('GET', k) end
  local v = cache[k]
  if v == nil then v = redis.call('GET', k); cache[k] = v end
  return v
end
-- Lua turns numbers into strings with %.14g, which rounds µs timestamps (~1.7e15) to 100 µs; %.17g is exact
local function num(x) return string.format('%.17g', x) end
local function pair(v)
  local sp = string.find(v, ' ', 1, true)
  return tonumber(string.sub(v, 1, sp - 1)), tonumber(string.sub(v, sp + 1))
end
local function ms(us)
  if us <= 0 then return 0 end
  return math.ceil(us / 1000)
end
`;

// Token bucket and GCRA keep "at level", the memory store's Slot model: at is the server's TIME in whole µs
// (exact in a double and in %.17g), level the bucket's small remainder at that time (tokens, or GCRA cells in
// flight). Calls at one instant then subtract or
// add whole units to a small number, which is exact, so a due token is never lost to rounding; a single
// absolute float (an empty-at time or a TAT near 1.7e15 µs) rounds to 0.25 µs on every charge.
const STATE = `
local function state(v)
  local sp = string.find(v, ' ', 1, true)
  return tonumber(string.sub(v, 1, sp - 1)), tonumber(string.sub(v, sp + 1))
end
`;

const TOKEN_BUCKET = `
local function alg1(key, cap, rate, _, now, cost, mode, rts)
  local ts, tokens = now, cap
  local v = GET(key)
  if v then
    ts, tokens = state(v)
    -- a server clock that steps back keeps ts: no refill until time catches up
    if now > ts then tokens = tokens + (now - ts) * rate; ts = now end
    if tokens > cap then tokens = cap end
  end
  if mode == REFUND then
    tokens = math.min(cap, tokens + cost)
    redis.call('SET', key, num(ts) .. ' ' .. num(tokens), 'PX', ms((cap - tokens) / rate) + 1)
    return true, tokens, (cap - tokens) / rate, 0
  end
  local ok = tokens >= cost
  local retry = 0
  if ok then
    if mode == COMMIT then
      tokens = tokens - cost
      redis.call('SET', key, num(ts) .. ' ' .. num(tokens), 'PX', ms((cap - tokens) / rate) + 1)
    end
  else
    retry = (cost - tokens) / rate
  end
  return ok, tokens, (cap - tokens) / rate, retry
end
`;

const GCRA = `
local function alg2(key, t, burst, _, now, cost, mode, rts)
  local ts, cells = now, 0
  local v = GET(key)
  if v then
    ts, cells = state(v)
    if now > ts then cells = math.max(0, cells - (now - ts) / t); ts = now end
  end
  if mode == REFUND then
    cells = math.max(0, cells - cost)
    redis.call('SET', key, num(ts) .. ' ' .. num(cells), 'PX', ms(cells * t) + 1)
    return true, burst - cells, cells * t, 0
  end
  local nxt = cells + cost
  local ok = nxt <= burst
  local retry = 0
  if ok then
    if mode == COMMIT then
      cells = nxt
      redis.call('SET', key, num(ts) .. ' ' .. num(cells), 'PX', ms(cells * t) + 1)
    end
  else
    retry = (nxt - burst) * t
  end
  return ok, burst - cells, cells * t, retry
end
`;

const FIXED_WINDOW = `
local function alg3(key, limit, w, _, now, cost, mode, rts)
  local win = math.floor(now / w)
  local count = 0
  local v = GET(key)
  if v then
    local vw, c = pair(v)
    if vw == win then count = c end
  end
  local rest = (win + 1) * w - now
  if mode == REFUND then
    if math.floor(rts / w) == win then
      count = math.max(0, count - cost)
      redis.call('SET', key, num(win) .. ' ' .. num(count), 'PX', ms(rest) + 1)
    end
    return true, limit - count, rest, 0
  end
  local ok = count + cost <= limit
  if ok and mode == COMMIT then
    count = count + cost
    redis.call('SET', key, num(win) .. ' ' .. num(count), 'PX', ms(rest) + 1)
  end
  local retry = 0
  if not ok then retry = rest end
  if count == 0 then rest = 0 end
  return ok, limit - count, rest, retry
end
`;

const SLIDING_COUNTER = `
local function alg4(key, limit, w, _, now, cost, mode, rts)
  local win = math.floor(now / w)
  local cur, prev = 0, 0
  local v = GET(key)
  if v then
    local a, b, c = string.match(v, '(%S+) (%S+) (%S+)')
    a = tonumber(a)
    if a == win then cur = tonumber(b); prev = tonumber(c) elseif a == win - 1 then prev = tonumber(b) end
  end
  local start = win * w
  local f = (now - start) / w
  local retry = 0
  local ok = true
  if mode == REFUND then
    local rw = math.floor(rts / w)
    if rw == win then cur = math.max(0, cur - cost) elseif rw == win - 1 then prev = math.max(0, prev - cost) end
    redis.call('SET', key, num(win) .. ' ' .. num(cur) .. ' ' .. num(prev), 'PX', ms(start + 2 * w - now) + 1)
  else
    ok = prev * (1 - f) + cur + cost <= limit
    if ok then
      if mode == COMMIT then
        cur = cur + cost
        redis.call('SET', key, num(win) .. ' ' .. num(cur) .. ' ' .. num(prev), 'PX', ms(start + 2 * w - now) + 1)
      end
    elseif cur + cost <= limit and prev > 0 then
      retry = math.max(1000, start + (1 - (limit - cost - cur) / prev) * w - now)
    else
      local g = 0
      if cur > limit - cost then g = 1 - (limit - cost) / cur end
      retry = math.max(1000, start + w + g * w - now)
    end
  end
  local reset = 0
  if cur > 0 then reset = start + 2 * w - now elseif prev > 0 then reset = start + w - now end
  return ok, limit - (prev * (1 - f) + cur), reset, retry
end
`;

const SLIDING_LOG = `
local function alg5(key, limit, w, _, now, cost, mode, rts)
  if mode == REFUND then
    redis.call('LREM', key, -cost, string.format('%.17g', rts))
    return true, 0, 0, 0
  end
  local edge = now - w
  while true do
    local h = redis.call('LINDEX', key, 0)
    if not h or tonumber(h) > edge then break end
    redis.call('LPOP', key)
  end
  local n = redis.call('LLEN', key)
  local ok = n + cost <= limit
  local retry = 0
  if ok then
    if mode == COMMIT then
      local s = string.format('%.17g', now)
      local left = cost
      while left > 0 do
        local batch = {}
        for i = 1, math.min(left, 1000) do batch[i] = s end
        redis.call('RPUSH', key, unpack(batch))
        left = left - #batch
      end
      redis.call('PEXPIRE', key, ms(w) + 1)
      n = n + cost
    end
  else
    retry = math.max(1000, tonumber(redis.call('LINDEX', key, n + cost - limit - 1)) + w - now)
  end
  local reset = 0
  if n > 0 then reset = tonumber(redis.call('LINDEX', key, -1)) + w - now end
  return ok, limit - n, reset, retry
end
`;

const ALGS = ['', TOKEN_BUCKET, GCRA, FIXED_WINDOW, SLIDING_COUNTER, SLIDING_LOG] as const;

/**
 * The Lua function `alg<code>(key, p1, p2, p3, now, cost, mode, rts)` with what it needs, so a test can run
 * several decisions at one server instant.
 */
export const algorithmLua = (code: number): string => `${PRELUDE}${STATE}${ALGS[code]}`;

const CLOCK = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local dl = tonumber(ARGV[ARGC_DL])
-- a call its client already gave up on (offline queue, resend after reconnect) must not charge anything
if dl > 0 and now > dl then return {-1, now} end
`;

const rem = `local function rem(x) if x < 0 then return 0 end return math.floor(x + 1e-9) end`;

/** KEYS[1]; ARGV: p1 p2 cost mode deadline -> {ok, remaining, resetMs, retryMs, nowUs} */
function single(code: number): string {
  return `${PRELUDE}${STATE}${rem}${ALGS[code]}${CLOCK.replace('ARGC_DL', '5')}
local ok, r, reset, retry = alg${code}(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 0, now,
  tonumber(ARGV[3]), tonumber(ARGV[4]), 0)
if ok then ok = 1 else ok = 0 end
return {ok, rem(r), ms(reset), ms(retry), now}
`;
}

/**
 * KEYS[1..n]; ARGV: cost mode deadline rts, then (code p1 p2 p3) per key
 * -> {deniedIndex (0 = none), nowUs, then (ok remaining resetMs retryMs) per key}
 */
const MULTI = `${PRELUDE}${STATE}${rem}${ALGS.join('\n')}
local A = {alg1, alg2, alg3, alg4, alg5}
${CLOCK.replace('ARGC_DL', '3')}
local cost, mode, rts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local out = {0, now}
local function run(m)
  for i = 1, #KEYS do
    local b = 4 + (i - 1) * 4
    local ok, r, reset, retry = A[tonumber(ARGV[b + 1])](KEYS[i], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]),
      tonumber(ARGV[b + 4]), now, cost, m, rts)
    local o = 3 + (i - 1) * 4
    if ok then out[o] = 1 else out[o] = 0 end
    out[o + 1] = rem(r); out[o + 2] = ms(reset); out[o + 3] = ms(retry)
    if not ok and out[1] == 0 then out[1] = i end
  end
end
if mode == REFUND then run(REFUND) return out end
cache = {}
run(PEEK)
if out[1] == 0 and mode == COMMIT then run(COMMIT) end
return out
`;

/**
 * Independent single-scope decisions sent together (calls of one event-loop tick): one round trip and one
 * script run instead of one each. Each runs exactly as its own script would, in order, so repeated keys see
 * each other's charges. KEYS[1..n]; ARGV per key: code p1 p2 cost mode deadline
 * -> {nowUs, then (ok remaining resetMs retryMs) per key}, ok = -1 when that call's deadline had passed
 */
const BATCH = `${PRELUDE}${STATE}${rem}${ALGS.join('\n')}
local A = {alg1, alg2, alg3, alg4, alg5}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {now}
for i = 1, #KEYS do
  local b = (i - 1) * 6
  local o = 2 + (i - 1) * 4
  local dl = tonumber(ARGV[b + 6])
  -- a call its client already gave up on must not charge anything
  if dl > 0 and now > dl then
    out[o] = -1; out[o + 1] = 0; out[o + 2] = 0; out[o + 3] = 0
  else
    local ok, r, reset, retry = A[tonumber(ARGV[b + 1])](KEYS[i], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]),
      0, now, tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]), 0)
    if ok then out[o] = 1 else out[o] = 0 end
    out[o + 1] = rem(r); out[o + 2] = ms(reset); out[o + 3] = ms(retry)
  end
end
return out
`;

/**
 * Independent `limitAll` calls of one tick in one run, each all or nothing exactly as MULTI runs it.
 * ARGV[1] = number of calls; per call: n cost mode deadline rts, then (code p1 p2 p3) per key; KEYS in order
 * -> {nowUs, then per call: deniedIndex (0 = none, -1 = deadline passed), then (ok remaining resetMs retryMs) per key}
 */
const MULTI_BATCH = `${PRELUDE}${STATE}${rem}${ALGS.join('\n')}
local A = {alg1, alg2, alg3, alg4, alg5}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {now}
local ai, ki = 2, 0
for g = 1, tonumber(ARGV[1]) do
  local n, cost, mode = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1]), tonumber(ARGV[ai + 2])
  local dl, rts = tonumber(ARGV[ai + 3]), tonumber(ARGV[ai + 4])
  ai = ai + 5
  local o0 = #out + 1
  out[o0] = 0
  local function run(m)
    for i = 1, n do
      local b = ai + (i - 1) * 4
      local ok, r, reset, retry = A[tonumber(ARGV[b])](KEYS[ki + i], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]),
        tonumber(ARGV[b + 3]), now, cost, m, rts)
      local o = o0 + 1 + (i - 1) * 4
      if ok then out[o] = 1 else out[o] = 0 end
      out[o + 1] = rem(r); out[o + 2] = ms(reset); out[o + 3] = ms(retry)
      if not ok and out[o0] == 0 then out[o0] = i end
    end
  end
  if dl > 0 and now > dl then
    out[o0] = -1
    for i = 1, n * 4 do out[o0 + i] = 0 end
  elseif mode == REFUND then
    run(REFUND)
  else
    cache = {}
    run(PEEK)
    if out[o0] == 0 and mode == COMMIT then run(COMMIT) end
    cache = nil
  end
  ai = ai + n * 4
  ki = ki + n
end
return out
`;

export interface Script {
  readonly src: string;
  readonly sha: string;
}

const script = (src: string): Script => ({ src, sha: createHash('sha1').update(src).digest('hex') });

/** One script per algorithm (index = algorithm code), plus the multi-scope script of `limitAll`. */
export const SCRIPTS: readonly Script[] = [script(MULTI), ...[1, 2, 3, 4, 5].map((c) => script(single(c)))];
export const MULTI_SCRIPT = SCRIPTS[0]!;
/** The script of same-tick single-scope calls sent together. */
export const BATCH_SCRIPT = script(BATCH);
/** The script of same-tick `limitAll` calls sent together. */
export const MULTI_BATCH_SCRIPT = script(MULTI_BATCH);
/** Reads the server clock: the batch script with no keys. */
export const CLOCK_SCRIPT = BATCH_SCRIPT;
/** Every script the store may run, loaded ahead of a store's first command. */
export const ALL_SCRIPTS: readonly Script[] = [...SCRIPTS, BATCH_SCRIPT, MULTI_BATCH_SCRIPT];
