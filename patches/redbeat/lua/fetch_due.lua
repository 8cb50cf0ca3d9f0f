-- One tick's read: the server clock, whether this beat still holds the lock, every due entry with its hash, and
-- every entry an operator asked to run now (`beat_schedule run`), so an idle tick stays one round trip.
-- KEYS[1]: the schedule ZSET; KEYS[2]: the lock; KEYS[3]: the run-now requests (hash: entry name → epoch ms).
-- ARGV[1]: this beat's lock token; ARGV[2]: the most due entries to return (0 = all); ARGV[3]: the key prefix.
-- Returns {seconds, microseconds, owned (1/0), next score or false, the score after it or false,
--          the next entry's key, definition and meta (or false),
--          key, score or false, definition, meta, paused, run-now request or false, due (1/0), key, ...}.
-- Reading TIME here makes the Redis server the one clock every beat compares due times with. The next entry comes
-- with its hash so the leader can sleep until the slot its score stands for (a score stock redbeat wrote lies up to a
-- second before it), and with the score after it, which that sleep must not pass.
local time = redis.call('TIME')
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
    return {time[1], time[2], 0, false, false, false, false, false}
end
local now = string.format('%d.%06d', time[1], time[2])
local limit = tonumber(ARGV[2])
local due
if limit > 0 then
    due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, now, 'WITHSCORES', 'LIMIT', 0, limit)
else
    due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, now, 'WITHSCORES')
end
local head = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 2)
local out = {time[1], time[2], 1, head[2] or false, head[4] or false, head[1] or false, false, false}
if head[1] then
    local fields = redis.call('HMGET', head[1], 'definition', 'meta')
    out[7] = fields[1] or false
    out[8] = fields[2] or false
end
local requests = redis.call('HGETALL', KEYS[3])
local requested = {}
for i = 1, #requests, 2 do
    requested[ARGV[3] .. requests[i]] = requests[i + 1]
end
local served = {}
local function add(key, score, is_due)
    local fields = redis.call('HMGET', key, 'definition', 'meta', 'paused')
    out[#out + 1] = key
    out[#out + 1] = score
    out[#out + 1] = fields[1] or false
    out[#out + 1] = fields[2] or false
    out[#out + 1] = fields[3] or false
    out[#out + 1] = requested[key] or false
    out[#out + 1] = is_due
    served[key] = true
end
for i = 1, #due, 2 do
    add(due[i], due[i + 1], 1)
end
-- Requested entries that are not due: returned for their request only (their score is left as it is).
for i = 1, #requests, 2 do
    local key = ARGV[3] .. requests[i]
    if not served[key] then
        add(key, redis.call('ZSCORE', KEYS[1], key) or false, 0)
    end
end
return out
