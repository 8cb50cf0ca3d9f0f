-- healthz's read of the beat lock, in one round trip that declares its keys (so it runs on a Redis Cluster, where
-- the schedule's keys share one slot, as on a single Redis): the lock's token, its TTL in milliseconds, the leader
-- record (HGETALL's flat list) and the server's clock.
-- KEYS[1]: the lock; KEYS[2]: the leader record.
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('TIME')}
