-- Publish an answered call so that another node can end its record if this one dies, or
-- take it over (its dialog, timers and billing) once this node's heartbeat has expired.
-- KEYS[1] the call (hash: owner, record, caller_tag, fence, and the fields below)
-- KEYS[2] the set of calls this node owns (what a take-over scans when the node is dead)
-- ARGV[1] owner node  ARGV[2] call record so far (a CDR JSON line)  ARGV[3] caller's From tag
-- ARGV[4] lifetime (ms: the call's longest possible duration, plus margin)  ARGV[5] call-id
-- ARGV[6..] field, value pairs (the dialog, its times, billing state)
-- Returns the fencing token: incremented on every publication and take-over, so a node
-- that was taken over cannot end the call any more.
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'record', ARGV[2], 'caller_tag', ARGV[3])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
return fence
