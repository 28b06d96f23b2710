-- Lease one slot on a target for a call, if the target is under its limit.
-- KEYS[1] lease set of the target (sorted set: call-id -> lease expiry, ms)
-- KEYS[2] counters of the target (hash: calls, last)
-- ARGV[1] now (ms)  ARGV[2] lease lifetime (ms)  ARGV[3] call-id  ARGV[4] limit (0 = none)
-- Returns 1 (leased, or already held by this call: renewed) or 0 (at the limit).
local now = tonumber(ARGV[1])
local life = tonumber(ARGV[2])
local limit = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + life, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], life)
  return 1
end
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + life, ARGV[3])
redis.call('PEXPIRE', KEYS[1], life)
redis.call('HINCRBY', KEYS[2], 'calls', 1)
redis.call('HSET', KEYS[2], 'last', now)
return 1
