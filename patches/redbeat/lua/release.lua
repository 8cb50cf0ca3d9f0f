-- Release the lock on a clean stop, only while it holds this beat's token (a beat that lost it frees nothing).
-- The leader record notes the release, so whoever takes the lock next sees a hand-over, not a failover.
-- A beat that stops (leading or not) leaves the beats seen.
-- KEYS[1]: the lock; KEYS[2]: the leader record; KEYS[3]: the beats seen; ARGV[1]: the token. Returns 1 when
-- released, 0 otherwise.
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then
    if redis.call('HGET', KEYS[2], 'token') == ARGV[1] then
        redis.call('HSET', KEYS[2], 'released', '1')
    end
    return redis.call('DEL', KEYS[1])
end
return 0
