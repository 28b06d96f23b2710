-- Count a call in a caller's anti-harassment windows (fixed windows, then a block), the same
-- rules as the in-memory state (crates/route/src/live.rs).
-- KEYS[1] window of caller + number, KEYS[2] window of the caller over all numbers
--   (hashes: start, count, blocked; both keys share the caller's hash tag)
-- ARGV[1] now (ms)  ARGV[2] block length (ms)
-- ARGV[3] window 1 length (ms, 0 = no such window)  ARGV[4] window 1 calls
-- ARGV[5] window 2 length (ms, 0 = none)            ARGV[6] window 2 calls
-- ARGV[7] "1" to count the call, "0" to only evaluate it
-- Returns 0 (allowed) or the end of the block (ms).
local now = tonumber(ARGV[1])
local block = tonumber(ARGV[2])
local commit = ARGV[7] == '1'
local wins = {
  {KEYS[1], tonumber(ARGV[3]), tonumber(ARGV[4])},
  {KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6])},
}
-- A blocked caller does not keep extending windows.
for _, w in ipairs(wins) do
  if w[2] > 0 then
    local b = tonumber(redis.call('HGET', w[1], 'blocked') or '0')
    if b > now then
      return b
    end
  end
end
local verdict = 0
for _, w in ipairs(wins) do
  local key, win, calls = w[1], w[2], w[3]
  if win > 0 then
    local h = redis.call('HMGET', key, 'start', 'count', 'blocked')
    local start = tonumber(h[1] or '0')
    local count = tonumber(h[2] or '0')
    local blocked = tonumber(h[3] or '0')
    if count == 0 or now - start >= win or now < start then
      start = now
      count = 0
    end
    count = count + 1
    if count > calls then
      blocked = now + block
      count = 0
      verdict = blocked
    end
    if commit then
      redis.call('HSET', key, 'start', start, 'count', count, 'blocked', blocked)
      local ttl = math.max(start + win - now, blocked - now, 1)
      redis.call('PEXPIRE', key, math.floor(ttl))
    end
  end
end
return verdict
