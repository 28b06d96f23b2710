-- Take over the answered calls of a dead node (its heartbeat expired).
-- KEYS[1] the dead node's call set  KEYS[2] its heartbeat  KEYS[3] this node's call set
-- ARGV[1] this node  ARGV[2] the dead node  ARGV[3] prefix of the call hashes  ARGV[4] at
-- most this many calls per run
-- Returns {{call-id, fence, record, caller_tag, field, value, ...}, ...}: each call is this
-- node's from now on (owner and a new fencing token, so the dead node, should it come back,
-- can neither end it nor write its CDR). A node restarted under the same name (ARGV[2] =
-- ARGV[1]) adopts the calls of its previous life: they are in its set, not in its memory.
if ARGV[1] ~= ARGV[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {}
end
local out = {}
local ids = redis.call('SPOP', KEYS[1], tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  local k = ARGV[3] .. '{' .. id .. '}'
  if redis.call('HGET', k, 'owner') == ARGV[2] then
    redis.call('HSET', k, 'owner', ARGV[1])
    local fence = redis.call('HINCRBY', k, 'fence', 1)
    redis.call('SADD', KEYS[3], id)
    local row = {id, fence}
    local h = redis.call('HGETALL', k)
    local rec, tag = '', ''
    for i = 1, #h, 2 do
      if h[i] == 'record' then rec = h[i + 1] elseif h[i] == 'caller_tag' then tag = h[i + 1] end
    end
    row[3] = rec
    row[4] = tag
    for i = 1, #h, 2 do
      if h[i] ~= 'record' and h[i] ~= 'caller_tag' and h[i] ~= 'owner' and h[i] ~= 'fence' then
        row[#row + 1] = h[i]
        row[#row + 1] = h[i + 1]
      end
    end
    out[#out + 1] = row
  end
end
return out
