-- The start-up sync's read of one slice: the server clock and each entry's stored meta.
-- KEYS: the entries' hashes. Returns {seconds, microseconds, meta or false per key}.
local time = redis.call('TIME')
local out = {time[1], time[2]}
for i = 1, #KEYS do
    out[#out + 1] = redis.call('HGET', KEYS[i], 'meta')
end
return out
