-- Sync of the static schedule, fenced: prune entries gone from the config, write definitions, keep metas.
-- KEYS[1]: the lock; KEYS[2]: the schedule ZSET; KEYS[3]: the statics SET; KEYS[4 .. 3+n]: the hashes of the n
-- entries to prune; then the hash of each entry to write, one per `seed` record, in the same order.
-- ARGV[1]: this beat's lock token; ARGV[2]: how many entries to prune (n); ARGV[3 .. 2+n]: their names; then a
-- `seed` record per entry (WIRE.seed: name, definition JSON, meta JSON for a new entry, score).
-- An existing meta (last_run_at, total_run_count) is kept (HSETNX), so restarts do not re-run entries, and so is a
-- live score whose definition did not change: the score the previous leader committed is the truth (rebuilding it
-- from the meta would rewind skipped slots or give a half-published first run a new slot id).
-- Returns {pruned, written}, or -1 when the lock is not this beat's (nothing is written).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return -1
end
local prune = tonumber(ARGV[2])
for i = 1, prune do
    redis.call('ZREM', KEYS[2], KEYS[3 + i])
    redis.call('DEL', KEYS[3 + i])
    redis.call('SREM', KEYS[3], ARGV[2 + i])
end
local written = 0
for i = 3 + prune, #ARGV, #WIRE.seed do
    local seed = read(ARGV, i, 'seed')
    written = written + 1
    local key = KEYS[3 + prune + written]
    local same = redis.call('HGET', key, 'definition') == seed.definition
    redis.call('HSET', key, 'definition', seed.definition)
    redis.call('HSETNX', key, 'meta', seed.meta)
    if not (same and redis.call('ZSCORE', KEYS[2], key)) then
        redis.call('ZADD', KEYS[2], seed.score, key)
    end
    redis.call('SADD', KEYS[3], seed.name)
end
return {prune, written}
