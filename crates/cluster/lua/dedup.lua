-- Claim a new INVITE (Call-ID + From-tag + CSeq) for this node, so that a carrier's retry of
-- the same INVITE on another node does not start a second call.
-- KEYS[1] the INVITE's claim key; ARGV[1] this node; ARGV[2] claim lifetime (ms);
-- ARGV[3] prefix of the nodes' heartbeat keys (the owner is alive while its key exists).
-- Returns {"new"}, {"mine"}, {"dup", owner} (owner alive: refuse) or {"takeover", owner}
-- (owner dead: the claim is now this node's).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'new'}
end
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  return {'mine'}
end
if owner and redis.call('EXISTS', ARGV[3] .. owner) == 1 then
  return {'dup', owner}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'takeover', owner or ''}
