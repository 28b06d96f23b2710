-- Prepaid credit shared by the nodes (the RFC 4006 model: reserve a slice, use it, report,
-- reserve the next). KEYS[1] the number's account hash:
--   used:MONTH:NODE  started minutes billed to MONTH by the calls NODE settled (absolute,
--                    written by that node: its CDR files are its ledger)
--   res:CALL-ID      credit (fen) a call in progress holds;  exp:CALL-ID  when it lapses (ms)
-- ARGV[1] call-id ('' to ask only)  ARGV[2] slice (fen)  ARGV[3] the slice's expiry (ms)
-- ARGV[4] now (ms)  ARGV[5] the balance without this month's usage (fen, the node computes it
-- from the usage this script returns: closed months, minimum charges, top-ups)
-- ARGV[6] rate (fen per minute)  ARGV[7] this month (YYYY-MM)
-- Reserves only if balance − this month's usage − every live reservation ≥ slice.
-- Returns {granted 0/1, available before this reservation, field, value, ...} (the used:
-- fields, for the caller's view of the balance).
local h = redis.call('HGETALL', KEYS[1])
local now = tonumber(ARGV[4])
local lapsed = {}
for i = 1, #h, 2 do
  local f = h[i]
  if string.sub(f, 1, 4) == 'exp:' and tonumber(h[i + 1]) < now then
    lapsed[string.sub(f, 5)] = true
  end
end
local used, reserved = 0, 0
local usage = {}
local prefix = 'used:' .. ARGV[7] .. ':'
for i = 1, #h, 2 do
  local f, v = h[i], h[i + 1]
  if string.sub(f, 1, 5) == 'used:' then
    usage[#usage + 1] = f
    usage[#usage + 1] = v
    if string.sub(f, 1, #prefix) == prefix then
      used = used + tonumber(v)
    end
  elseif string.sub(f, 1, 4) == 'res:' then
    local id = string.sub(f, 5)
    if lapsed[id] then
      redis.call('HDEL', KEYS[1], f, 'exp:' .. id)
    else
      reserved = reserved + tonumber(v)
    end
  end
end
local available = tonumber(ARGV[5]) - used * tonumber(ARGV[6]) - reserved
local granted = 0
if ARGV[1] ~= '' and available >= tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], 'res:' .. ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[1], 'exp:' .. ARGV[1], ARGV[3])
  granted = 1
end
local out = {granted, available}
for i = 1, #usage do
  out[#out + 1] = usage[i]
end
return out
