-- Extend the lock to a full TTL, only while it holds this beat's token, and stamp the beat in the beats seen (see
-- acquire.lua).
-- KEYS[1]: the lock; KEYS[2]: the beats seen; ARGV[1]: the token; ARGV[2]: the TTL in milliseconds.
-- Returns 1, or 0 when not the holder.
-- Writes follow TIME: replicate the effects, not the script (required before Redis 5, the default since).
redis.replicate_commands()
if redis.call('GET', KEYS[1]) == ARGV[1] then
    local time = redis.call('TIME')
    redis.call('ZADD', KEYS[2], string.format('%d.%06d', time[1], time[2]), ARGV[1])
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
