-- A consumer's heartbeat, on the Redis server's clock (a consumer whose own clock is off is neither taken for dead
-- nor kept alive by it).
-- KEYS[1]: the index of consumers (zset: id -> last beat); KEYS[2]: this consumer's record (hash).
-- ARGV[1]: the consumer's id.
-- Returns the server's time in seconds.
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'beat', now)
return now
