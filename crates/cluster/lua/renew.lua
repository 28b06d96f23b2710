-- Renew the leases a node holds (and re-create those a restarted Redis lost).
-- KEYS[i] lease set of a target; ARGV[1] now (ms); ARGV[2] lease lifetime (ms);
-- ARGV[2 + i] the call-id leased on KEYS[i].
-- Returns how many leases had been lost (re-created).
local now = tonumber(ARGV[1])
local life = tonumber(ARGV[2])
local lost = 0
for i, key in ipairs(KEYS) do
  local added = redis.call('ZADD', key, now + life, ARGV[2 + i])
  lost = lost + added
  redis.call('PEXPIRE', key, life)
end
return lost
