-- Count a new call against a trunk's calls-per-second limit, shared by every node: one
-- counter per trunk and second, gone two seconds later.
-- KEYS[1] the trunk's counter prefix; ARGV[1] now (ms); ARGV[2] the limit.
-- Returns 1 (admitted, counted) or 0 (over the limit, not counted).
local sec = math.floor(tonumber(ARGV[1]) / 1000)
local key = KEYS[1] .. ':' .. sec
local n = tonumber(redis.call('GET', key) or '0')
if n >= tonumber(ARGV[2]) then
  return 0
end
redis.call('INCR', key)
redis.call('PEXPIRE', key, 2000)
return 1
