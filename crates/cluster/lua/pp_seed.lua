-- Write a node's own prepaid usage (from its CDR files and the calls it settled since).
-- KEYS[1] the number's account hash  ARGV[1] "set" (at start: the files are the truth) or
-- "max" (later: a node's count only grows, so a lost or crossed write is repaired, e.g.
-- after Redis restarted empty)  ARGV[2..] field used:MONTH:NODE, minutes, ...
for i = 2, #ARGV, 2 do
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if ARGV[1] == 'set' or tonumber(ARGV[i + 1]) > old then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
