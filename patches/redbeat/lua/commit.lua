-- One tick's write, fenced: new meta and score of every dispatched entry, only while this beat holds the lock.
-- KEYS[1]: the lock; KEYS[2]: the schedule ZSET.
-- ARGV[1]: this beat's lock token; then (entry key, score, meta JSON or "" to keep the meta) for each entry.
-- Returns the number of entries written, or -1 when the lock is not this beat's (nothing is written).
-- A member whose hash is gone (deleted meanwhile) is dropped from the ZSET instead of being resurrected.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return -1
end
local written = 0
for i = 2, #ARGV, 3 do
    if redis.call('EXISTS', ARGV[i]) == 1 then
        if ARGV[i + 2] ~= '' then
            redis.call('HSET', ARGV[i], 'meta', ARGV[i + 2])
        end
        redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
        written = written + 1
    else
        redis.call('ZREM', KEYS[2], ARGV[i])
    end
end
return written
