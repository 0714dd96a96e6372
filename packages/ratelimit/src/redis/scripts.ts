import { createHash } from 'node:crypto';
import { AlgCode, Mode } from '../algorithm.js';

/** What a reply holds in place of a call whose deadline had passed when the script ran (it did nothing). */
export const DROPPED = -1;

// Each algorithm but the sliding log is a pure Lua function over the key's value, run once per call:
//   dec<code>(v, p1, p2, p3, now, cost, mode, rts) -> ok, remaining, reset, retry, newValue, pxMs
// with times in µs from the server's TIME, mode one of PEEK, COMMIT and REFUND (the values of `Mode`; REFUND
// returns a reservation made at rts), newValue nil when nothing changes and pxMs nil when the key's TTL stays.
// So a call costs one GET and at most one SET, the TTL rides on the SET, and limitAll decides every scope
// before writing any. The state is the memory store's Slot model, (at, level[, prevLevel or exp]), packed as
// doubles: exact, and no number formatting or parsing in Lua. A value of another length (the text format of
// earlier versions) reads as a new key.

// Token bucket and GCRA also keep their key's expiry (server µs) in the value, so a write whose key already
// lives long enough keeps its TTL (a SET with PX costs Redis about twice one with KEEPTTL); a key that needs
// more gets twice what it needs plus a second. A key that outlives its state reads as a new one would: a full
// bucket, no cells in flight. The expiry kept errs 2 ms early: Redis counts a script's PX from its start in
// whole ms.
const EXPIRY = `
local function ttl(now, need, exp)
  if exp ~= nil and exp >= now + need + 1000 then return nil, exp end
  local px = ms(2 * need) + 1002
  return px, now + (px - 2) * 1000
end
`;

const PRELUDE = `
local PEEK, COMMIT, REFUND = ${Mode.peek}, ${Mode.commit}, ${Mode.refund}
local spack, sunpack = struct.pack, struct.unpack
local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local function ms(us)
  if us <= 0 then return 0 end
  return ceil(us / 1000)
end
local function rem(x) if x < 0 then return 0 end return floor(x + 1e-9) end
-- a denial always says when to come back, at least 1 ms: a retry of 0 reads as allowed in the reply
local function retryMs(ok, us)
  if ok then return 0 end
  local r = ms(us)
  if r < 1 then return 1 end
  return r
end
local function put(k, nv, px)
  if nv == nil then return end
  if px == nil then redis.call('SET', k, nv, 'KEEPTTL') else redis.call('SET', k, nv, 'PX', px) end
end
${EXPIRY}`;

// Token bucket and GCRA keep (at, level): at is the server's TIME in whole µs, level the bucket's small
// remainder at that time (tokens, or GCRA cells in flight). Calls at one instant then subtract or add whole
// units to a small number, which is exact, so a due token is never lost to rounding; a single absolute float
// (an empty-at time or a TAT near 1.7e15 µs) rounds to 0.25 µs on every charge.
const TOKEN_BUCKET = `
local function dec${AlgCode.tokenBucket}(v, cap, rate, _, now, cost, mode, rts)
  local ts, tokens, exp = now, cap, nil
  if v and #v == 24 then
    ts, tokens, exp = sunpack('<ddd', v)
    -- a server clock that steps back keeps ts: no refill until time catches up
    if now > ts then tokens = tokens + (now - ts) * rate; ts = now end
    if tokens > cap then tokens = cap end
  end
  if mode == REFUND then
    tokens = min(cap, tokens + cost)
  elseif tokens < cost then
    return false, tokens, (cap - tokens) / rate, (cost - tokens) / rate
  elseif mode ~= COMMIT then
    return true, tokens, (cap - tokens) / rate, 0
  else
    tokens = tokens - cost
  end
  local need = (cap - tokens) / rate
  local px, e = ttl(now, need, exp)
  return true, tokens, need, 0, spack('<ddd', ts, tokens, e), px
end
`;

const GCRA = `
local function dec${AlgCode.gcra}(v, t, burst, _, now, cost, mode, rts)
  local ts, cells, exp = now, 0, nil
  if v and #v == 24 then
    ts, cells, exp = sunpack('<ddd', v)
    if now > ts then cells = max(0, cells - (now - ts) / t); ts = now end
  end
  if mode == REFUND then
    cells = max(0, cells - cost)
  else
    local nxt = cells + cost
    if nxt > burst then return false, burst - cells, cells * t, (nxt - burst) * t end
    if mode ~= COMMIT then return true, burst - cells, cells * t, 0 end
    cells = nxt
  end
  local px, e = ttl(now, cells * t, exp)
  return true, burst - cells, cells * t, 0, spack('<ddd', ts, cells, e), px
end
`;

// The windows keep (window number, count[, previous count]); the TTL is set when a window starts and kept
// for the rest of it.
const FIXED_WINDOW = `
local function dec${AlgCode.fixedWindow}(v, limit, w, _, now, cost, mode, rts)
  local win = floor(now / w)
  local count, px = 0, nil
  if v and #v == 16 then
    local vw, c = sunpack('<dd', v)
    if vw == win then count = c end
  end
  local rest = (win + 1) * w - now
  if count == 0 then px = ms(rest) + 1 end
  if mode == REFUND then
    if floor(rts / w) ~= win then return true, limit - count, rest, 0 end
    count = max(0, count - cost)
    return true, limit - count, rest, 0, spack('<dd', win, count), px
  end
  if count + cost > limit then
    if count == 0 then return false, limit, 0, rest end
    return false, limit - count, rest, rest
  end
  if mode ~= COMMIT then
    if count == 0 then return true, limit, 0, 0 end
    return true, limit - count, rest, 0
  end
  count = count + cost
  return true, limit - count, rest, 0, spack('<dd', win, count), px
end
`;

const SLIDING_COUNTER = `
local function dec${AlgCode.slidingCounter}(v, limit, w, _, now, cost, mode, rts)
  local win = floor(now / w)
  local cur, prev, px = 0, 0, nil
  if v and #v == 24 then
    local a, b, c = sunpack('<ddd', v)
    if a == win then cur = b; prev = c elseif a == win - 1 then prev = b end
  end
  local start = win * w
  if v == nil or cur == 0 then px = ms(start + 2 * w - now) + 1 end
  local f = (now - start) / w
  local retry, nv = 0, nil
  local ok = true
  if mode == REFUND then
    local rw = floor(rts / w)
    if rw == win then cur = max(0, cur - cost) elseif rw == win - 1 then prev = max(0, prev - cost) end
    nv = spack('<ddd', win, cur, prev)
  else
    ok = prev * (1 - f) + cur + cost <= limit
    if ok then
      if mode == COMMIT then
        cur = cur + cost
        nv = spack('<ddd', win, cur, prev)
      end
    elseif cur + cost <= limit and prev > 0 then
      retry = max(1000, start + (1 - (limit - cost - cur) / prev) * w - now)
    else
      local g = 0
      if cur > limit - cost then g = 1 - (limit - cost) / cur end
      retry = max(1000, start + w + g * w - now)
    end
  end
  local reset = 0
  if cur > 0 then reset = start + 2 * w - now elseif prev > 0 then reset = start + w - now end
  return ok, limit - (prev * (1 - f) + cur), reset, retry, nv, px
end
`;

// One list entry per admitted unit: it reads and writes the list itself, so it is a function of the key.
const SLIDING_LOG = `
local function alg${AlgCode.slidingLog}(key, limit, w, _, now, cost, mode, rts)
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
        for i = 1, min(left, 1000) do batch[i] = s end
        redis.call('RPUSH', key, unpack(batch))
        left = left - #batch
      end
      redis.call('PEXPIRE', key, ms(w) + 1)
      n = n + cost
    end
  else
    retry = max(1000, tonumber(redis.call('LINDEX', key, n + cost - limit - 1)) + w - now)
  end
  local reset = 0
  if n > 0 then reset = tonumber(redis.call('LINDEX', key, -1)) + w - now end
  return ok, limit - n, reset, retry
end
`;

const DECS = ['', TOKEN_BUCKET, GCRA, FIXED_WINDOW, SLIDING_COUNTER, SLIDING_LOG] as const;
const LOG = AlgCode.slidingLog;

/** The algorithm as a function of the key, `alg<code>(key, p1, p2, p3, now, cost, mode, rts)`, for tests. */
const ALG_OF_KEY = [1, 2, 3, 4]
  .map(
    (c) => `
local function alg${c}(key, p1, p2, p3, now, cost, mode, rts)
  local ok, r, reset, retry, nv, px = dec${c}(redis.call('GET', key), p1, p2, p3, now, cost, mode, rts)
  put(key, nv, px)
  return ok, r, reset, retry
end`,
  )
  .join('\n');

const lib = (code?: number): string => `${PRELUDE}${code === undefined ? DECS.join('\n') : DECS[code]}`;

/**
 * The Lua function `alg<code>(key, p1, p2, p3, now, cost, mode, rts)` with what it needs, so a test can run
 * several decisions at one server instant.
 */
export const algorithmLua = (code: number): string => `${lib(code)}${code === LOG ? '' : ALG_OF_KEY}`;

const CLOCK = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
`;

/**
 * One call of one algorithm. KEYS[1]; ARGV: p1 p2 p3 deadline mode cost
 * -> {ok, remaining, resetMs, retryMs, nowUs}: ok DROPPED when the deadline had passed
 */
function single(code: number): string {
  const call =
    code === LOG
      ? `local ok, r, reset, retry = alg${code}(k, p1, p2, p3, now, cost, mode, 0)`
      : `local ok, r, reset, retry, nv, px = dec${code}(redis.call('GET', k), p1, p2, p3, now, cost, mode, 0)
put(k, nv, px)`;
  return `${lib(code)}${CLOCK}
local dl = tonumber(ARGV[4])
-- a call its client already gave up on (offline queue, resend after reconnect) must not charge anything
if dl > 0 and now > dl then return {${DROPPED}, 0, 0, 0, now} end
local k = KEYS[1]
local p1, p2, p3 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mode, cost = tonumber(ARGV[5]), tonumber(ARGV[6])
${call}
local okn = 0
if ok then okn = 1 end
return {okn, rem(r), ms(reset), retryMs(ok, retry), now}
`;
}

// Calls name their algorithm, parameters and deadline by a profile: the few limiters of a send each send
// theirs once. ARGV[first] is the number of profiles, then (code p1 p2 p3 deadline) each.
const PROFILES = (first: number) => `
local np = tonumber(ARGV[${first}]) or 0
local code, P1, P2, P3, DL = {}, {}, {}, {}, {}
for j = 1, np do
  local b = ${first + 1} + (j - 1) * 5
  code[j] = tonumber(ARGV[b]); P1[j] = tonumber(ARGV[b + 1]); P2[j] = tonumber(ARGV[b + 2])
  P3[j] = tonumber(ARGV[b + 3]); DL[j] = tonumber(ARGV[b + 4])
end
local a = ${first + 1} + np * 5
local D = {dec1, dec2, dec3, dec4}
`;

/**
 * Independent single-scope calls sent together (calls of one event-loop tick): one round trip and one script
 * run. Each runs exactly as its own script would, in order, so repeated keys see each other's charges.
 * ARGV: nProfiles, per profile (code p1 p2 p3 deadline), then per call (profile × 3 + mode, cost); KEYS per call
 * -> {nowUs, then (remaining resetMs retryMs) per call}: remaining DROPPED when that call's deadline had passed
 */
const BATCH = `${lib()}${CLOCK}${PROFILES(1)}
local out = {now}
for i = 1, #KEYS do
  local pm = tonumber(ARGV[a])
  local cost = tonumber(ARGV[a + 1])
  a = a + 2
  local j = floor(pm / 3) + 1
  local o = 2 + (i - 1) * 3
  local dl = DL[j]
  -- a call its client already gave up on must not charge anything
  if dl > 0 and now > dl then
    out[o] = ${DROPPED}; out[o + 1] = 0; out[o + 2] = 0
  else
    local c, k = code[j], KEYS[i]
    local ok, r, reset, retry, nv, px
    if c == ${LOG} then
      ok, r, reset, retry = alg${LOG}(k, P1[j], P2[j], P3[j], now, cost, pm % 3, 0)
    else
      ok, r, reset, retry, nv, px = D[c](redis.call('GET', k), P1[j], P2[j], P3[j], now, cost, pm % 3, 0)
      put(k, nv, px)
    end
    out[o] = rem(r); out[o + 1] = ms(reset); out[o + 2] = retryMs(ok, retry)
  end
end
return out
`;

/**
 * `limitAll` calls, each all or nothing, in one run: one pass decides every scope of a call (one GET each), and
 * its writes happen only when all allowed. A tick's calls share the run; on Cluster one slot's scopes run alone.
 * ARGV: mode rts, the profiles (see PROFILES), then per call: n cost, then n profile indexes (the first one's
 * deadline is the call's); KEYS in order
 * -> {nowUs, then per call: deniedIndex (0 = none, DROPPED = deadline passed), then (remaining resetMs retryMs) per key}
 */
const MULTI = `${lib()}${CLOCK}
local mode, rts = tonumber(ARGV[1]), tonumber(ARGV[2])
${PROFILES(3)}
local out = {now}
local ki, nargs = 0, #ARGV
local V, NV, PX, J = {}, {}, {}, {}
local function emit(o, ok, r, reset, retry)
  out[o] = rem(r); out[o + 1] = ms(reset); out[o + 2] = retryMs(ok, retry)
end
while a <= nargs do
  local n, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local o0 = #out + 1
  out[o0] = 0
  -- a refund only returns what a reservation took: it lands whatever the time
  if mode ~= REFUND and now > DL[tonumber(ARGV[a]) + 1] then
    out[o0] = ${DROPPED}
    for i = 1, n * 3 do out[o0 + i] = 0 end
  else
    for i = 1, n do
      local j = tonumber(ARGV[a + i - 1]) + 1
      local k = KEYS[ki + i]
      local ok, r, reset, retry, nv, px
      J[i] = j
      if code[j] == ${LOG} then
        -- the log writes its list itself: it checks here and charges in the write pass
        local m = mode
        if m == COMMIT then m = PEEK end
        ok, r, reset, retry = alg${LOG}(k, P1[j], P2[j], P3[j], now, cost, m, rts)
        NV[i] = ok and mode == COMMIT
      else
        local v = redis.call('GET', k)
        V[i] = v
        ok, r, reset, retry, nv, px = D[code[j]](v, P1[j], P2[j], P3[j], now, cost, mode, rts)
        NV[i] = nv; PX[i] = px
      end
      emit(o0 + 1 + (i - 1) * 3, ok, r, reset, retry)
      if not ok and out[o0] == 0 then out[o0] = i end
    end
    for i = 1, n do
      local j, k, o = J[i], KEYS[ki + i], o0 + 1 + (i - 1) * 3
      if out[o0] == 0 then
        if code[j] == ${LOG} then
          if NV[i] then emit(o, alg${LOG}(k, P1[j], P2[j], P3[j], now, cost, COMMIT, rts)) end
        else
          put(k, NV[i], PX[i])
        end
      elseif NV[i] and code[j] ~= ${LOG} then
        -- denied elsewhere: nothing is written, and this scope reports its state without the charge
        emit(o, D[code[j]](V[i], P1[j], P2[j], P3[j], now, cost, PEEK, rts))
      end
      NV[i] = nil; PX[i] = nil; V[i] = nil
    end
  end
  a = a + n
  ki = ki + n
end
return out
`;

/** A script and its SHA1, for EVALSHA. */
export interface Script {
  readonly src: string;
  readonly sha: string;
}

const script = (src: string): Script => ({ src, sha: createHash('sha1').update(src).digest('hex') });

/** The multi-scope script of `limitAll`, then one single-call script per algorithm (index = algorithm code). */
export const SCRIPTS: readonly Script[] = [script(MULTI), ...[1, 2, 3, 4, 5].map((c) => script(single(c)))];
export const MULTI_SCRIPT = SCRIPTS[0]!;
/** The script of same-tick single-scope calls sent together. */
export const BATCH_SCRIPT = script(BATCH);
/** Reads the server clock: the batch script with no profiles and no calls. */
export const CLOCK_SCRIPT = BATCH_SCRIPT;
/** Every script the store may run, loaded ahead of a store's first command. */
export const ALL_SCRIPTS: readonly Script[] = [...SCRIPTS, BATCH_SCRIPT];
