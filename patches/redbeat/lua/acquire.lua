-- Take the lock, or keep it: a beat that still holds its token (it stepped down on a transient Redis error) leads
-- again at once instead of waiting out its own TTL.
-- KEYS[1]: the lock; ARGV[1]: this beat's token; ARGV[2]: the TTL in milliseconds. Returns 1 when held, else 0.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
