-- read_index(schedule, lock, token, limit): what both fetch scripts start with. The server clock (the one clock
-- every beat compares due times with) and, only while the lock holds `token`, the due entries (a flat list of key,
-- score; at most `limit`, 0 = all) and the two next after now (key, score, key, score).
-- Returns time, owned (boolean), due, head.
local function read_index(schedule, lock, token, limit)
    local time = redis.call('TIME')
    if redis.call('GET', lock) ~= token then
        return time, false, {}, {}
    end
    local now = string.format('%d.%06d', time[1], time[2])
    local due
    if limit > 0 then
        due = redis.call('ZRANGEBYSCORE', schedule, 0, now, 'WITHSCORES', 'LIMIT', 0, limit)
    else
        due = redis.call('ZRANGEBYSCORE', schedule, 0, now, 'WITHSCORES')
    end
    local head = redis.call('ZRANGEBYSCORE', schedule, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 2)
    return time, true, due, head
end
