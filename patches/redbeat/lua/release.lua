-- Release the lock on a clean stop, only while it holds this beat's token (a beat that lost it frees nothing).
-- The leader record notes the release, so whoever takes the lock next sees a hand-over, not a failover.
-- KEYS[1]: the lock; KEYS[2]: the leader record; ARGV[1]: the token. Returns 1 when released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    if redis.call('HGET', KEYS[2], 'token') == ARGV[1] then
        redis.call('HSET', KEYS[2], 'released', '1')
    end
    return redis.call('DEL', KEYS[1])
end
return 0
