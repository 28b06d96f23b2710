-- Settle a prepaid call once (idempotent by Call-ID): write the settling node's usage of the
-- call's month and drop the call's reservation.
-- KEYS[1] the number's account hash  KEYS[2] the call's settlement mark
-- ARGV[1] call-id  ARGV[2] field used:MONTH:NODE  ARGV[3] that node's minutes of MONTH with
-- this call (absolute)  ARGV[4] the mark's lifetime (ms)
-- Returns 1 when settled now, 0 when it was settled before (only the reservation is dropped).
redis.call('HDEL', KEYS[1], 'res:' .. ARGV[1], 'exp:' .. ARGV[1])
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then
  -- A node's own count only grows while it runs: keep the larger (writes may cross).
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
  if tonumber(ARGV[3]) > old then
    redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  end
  return 1
end
return 0
