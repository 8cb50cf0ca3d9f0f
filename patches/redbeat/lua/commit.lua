-- One tick's write, fenced: new meta and score of every dispatched entry, and the run-now requests it served, only
-- while this beat holds the lock.
-- KEYS[1]: the lock; KEYS[2]: the schedule ZSET; KEYS[3]: the run-now requests (hash: entry name → epoch ms);
-- KEYS[4 ..]: the entries' hashes, one per `update` record, in the same order (every key is declared: a Redis
-- Cluster or a cloud proxy routes a script by its keys).
-- ARGV[1]: this beat's lock token; ARGV[2]: the key prefix; then an `update` record per entry (WIRE.update: score or
-- "" to keep the score, meta JSON or "" to keep the meta, the run-now request it served or "").
-- Returns the number of entries written, or -1 when the lock is not this beat's (nothing is written).
-- A member whose hash is gone (deleted meanwhile) is dropped from the ZSET instead of being resurrected.
-- A request is cleared only if it is still the one served (compare and delete): a newer one is kept for the next tick.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return -1
end
local prefix_length = #ARGV[2]
local written = 0
local n = 0
for i = 3, #ARGV, #WIRE.update do
    local update = read(ARGV, i, 'update')
    n = n + 1
    local key = KEYS[3 + n]
    if update.served ~= '' then
        local name = string.sub(key, prefix_length + 1)
        if redis.call('HGET', KEYS[3], name) == update.served then
            redis.call('HDEL', KEYS[3], name)
        end
    end
    if redis.call('EXISTS', key) == 1 then
        if update.meta ~= '' then
            redis.call('HSET', key, 'meta', update.meta)
        end
        if update.score ~= '' then
            redis.call('ZADD', KEYS[2], update.score, key)
        end
        written = written + 1
    else
        redis.call('ZREM', KEYS[2], key)
    end
end
return written
