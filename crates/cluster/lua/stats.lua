-- Read targets' live counters for least-recent / fewest-calls ordering.
-- KEYS[2i-1] lease set of target i, KEYS[2i] its counters hash; ARGV[1] now (ms).
-- Returns a flat array: active, calls, last (ms) for each target.
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local h = redis.call('HMGET', KEYS[i + 1], 'calls', 'last')
  out[#out + 1] = redis.call('ZCARD', KEYS[i])
  out[#out + 1] = tonumber(h[1] or '0')
  out[#out + 1] = tonumber(h[2] or '0')
end
return out
