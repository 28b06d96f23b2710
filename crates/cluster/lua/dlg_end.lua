-- Claim the end of an answered call: exactly one node writes its CDR.
-- KEYS[1] the call; KEYS[2] its "ended elsewhere" mark; ARGV[1] this node; ARGV[2] "owner"
-- (the owner ends its own call: only if it is still the owner and its fencing token ARGV[3]
-- is current) or "bye" (a BYE of the call reached this node: whoever sees it first ends the
-- call); ARGV[4] the mark's lifetime (ms); ARGV[5] prefix of the owners' call sets;
-- ARGV[6] the call-id. KEYS[3..] (owner only): lease sets the call holds a slot in (its
-- answered target, its trunk), released here in the same round trip unless another node
-- took the call over (then the slots are that node's).
-- Returns nil when the call is not (or no longer) to be ended here, "lost" (owner only) when
-- Redis does not know the call at all, else
-- {record, caller_tag, owner}; the call is gone from Redis afterwards. When a BYE ended it,
-- KEYS[2] tells its owner, if alive, to let the call go without a CDR of its own.
local function release()
  for i = 3, #KEYS do
    redis.call('ZREM', KEYS[i], ARGV[6])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[2] == 'owner' then
    release()
  end
  -- Not here: ended elsewhere (the mark says so), or lost (Redis restarted empty): then the
  -- owner's own record is the one to write.
  if ARGV[2] == 'owner' and redis.call('EXISTS', KEYS[2]) == 0 then
    return 'lost'
  end
  return false
end
local h = redis.call('HMGET', KEYS[1], 'owner', 'record', 'caller_tag', 'fence')
if ARGV[2] == 'owner' and (h[1] ~= ARGV[1] or h[4] ~= ARGV[3]) then
  if h[1] == ARGV[1] then
    release()
  end
  return false
end
if ARGV[2] == 'owner' then
  release()
end
redis.call('DEL', KEYS[1])
if h[1] then
  redis.call('SREM', ARGV[5] .. h[1], ARGV[6])
end
if ARGV[2] == 'bye' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
end
return {h[2], h[3], h[1]}
