-- Release the lock on a clean stop, only while it holds this beat's token (a beat that lost it frees nothing).
-- KEYS[1]: the lock; ARGV[1]: the token. Returns 1 when released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
