-- One tick's read: the server clock, whether this beat still holds the lock, and every due entry with its hash.
-- KEYS[1]: the schedule ZSET; KEYS[2]: the lock.
-- ARGV[1]: this beat's lock token; ARGV[2]: the most entries to return (0 = all).
-- Returns {seconds, microseconds, owned (1/0), next score or false, key, score, definition, meta, key, ...}.
-- Reading TIME here makes the Redis server the one clock every beat compares due times with.
local time = redis.call('TIME')
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
    return {time[1], time[2], 0, false}
end
local now = string.format('%d.%06d', time[1], time[2])
local limit = tonumber(ARGV[2])
local due
if limit > 0 then
    due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, now, 'WITHSCORES', 'LIMIT', 0, limit)
else
    due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, now, 'WITHSCORES')
end
local head = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local out = {time[1], time[2], 1, head[2] or false}
for i = 1, #due, 2 do
    local fields = redis.call('HMGET', due[i], 'definition', 'meta')
    out[#out + 1] = due[i]
    out[#out + 1] = due[i + 1]
    out[#out + 1] = fields[1] or false
    out[#out + 1] = fields[2] or false
end
return out
