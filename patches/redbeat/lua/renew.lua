-- Extend the lock to a full TTL, only while it holds this beat's token.
-- KEYS[1]: the lock; ARGV[1]: the token; ARGV[2]: the TTL in milliseconds. Returns 1, or 0 when not the holder.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
