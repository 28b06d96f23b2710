-- Advance distribution cursors (round-robin), one per group.
-- KEYS[i] cursor of a group. Returns the values after the advance, in order.
-- (A script rather than INCR so that a decision's pipeline holds nothing but EVALSHAs: when
-- Redis answers NOSCRIPT none of them ran, and the pipeline can be sent again.)
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('INCR', key)
end
return out
