-- Release a service lock only while it still holds the caller's token.
-- KEYS[1]: the lock key; ARGV[1]: the token written when it was acquired.
-- Returns 1 when the key was deleted, 0 when it was gone or held by someone else (it expired and was re-taken).
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
