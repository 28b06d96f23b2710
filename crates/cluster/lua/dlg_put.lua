-- Publish an answered call so that another node can end its record if this one dies.
-- KEYS[1] the call (hash: owner, record, caller_tag, fence)
-- ARGV[1] owner node  ARGV[2] call record so far (a CDR JSON line)  ARGV[3] caller's From tag
-- ARGV[4] lifetime (ms: the call's longest possible duration, plus margin)
-- Returns the fencing token: incremented on every publication and take-over, so a node
-- that was taken over cannot end the call any more.
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'record', ARGV[2], 'caller_tag', ARGV[3])
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return fence
