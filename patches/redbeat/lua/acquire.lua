-- Take the lock, or keep it: a beat that still holds its token (it stepped down on a transient Redis error) leads
-- again at once instead of waiting out its own TTL.
-- A beat that takes the lock anew writes who leads since when into the leader record (a hash: token, since = server
-- time, previous = the token before it, terms = how many times the lock was taken, released = 1 once its holder
-- gave it up cleanly), for `manage.py healthz` and so the new leader can tell a failover — its predecessor's lease
-- ran out (a crash, a pause, a partition) — from a first start or a hand-over (a clean stop or restart).
-- Every call also stamps this beat in the beats seen (a ZSET: token -> server time of its last try or renewal, for
-- the console's standbys), dropping beats not seen for ARGV[3] seconds. A failover is counted in the record
-- (failovers, last_failover).
-- KEYS[1]: the lock; KEYS[2]: the leader record; KEYS[3]: the beats seen; ARGV[1]: this beat's token; ARGV[2]: the
-- TTL in milliseconds; ARGV[3]: how long a beat stays in the beats seen without trying.
-- Returns 0 (another beat holds it), 1 (it was already ours), 2 (taken: first start, hand-over, or its own lapsed
-- lease) or 3 (taken over from another beat whose lease ran out: a failover).
-- Writes follow TIME: replicate the effects, not the script (required before Redis 5, the default since).
redis.replicate_commands()
local time = redis.call('TIME')
local now = string.format('%d.%06d', time[1], time[2])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tonumber(time[1]) - tonumber(ARGV[3])))
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    local previous = redis.call('HGET', KEYS[2], 'token')
    local released = redis.call('HGET', KEYS[2], 'released') == '1'
    redis.call('HSET', KEYS[2], 'token', ARGV[1], 'since', now, 'previous', previous or '', 'released', '0')
    redis.call('HINCRBY', KEYS[2], 'terms', 1)
    if previous and previous ~= ARGV[1] and not released then
        redis.call('HINCRBY', KEYS[2], 'failovers', 1)
        redis.call('HSET', KEYS[2], 'last_failover', now)
        return 3
    end
    return 2
end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
-- Held under a token the record does not name: a beat that keeps no record leads (stock celery-redbeat, in a rolling
-- upgrade from the original). Recorded as a term of its own, so `healthz` names it rather than the beat before it,
-- and so the beat that takes over when its lease runs out counts a failover, not a free lock.
if holder and redis.call('HGET', KEYS[2], 'token') ~= holder then
    redis.call('HSET', KEYS[2], 'previous', redis.call('HGET', KEYS[2], 'token') or '', 'token', holder,
               'since', now, 'released', '0')
    redis.call('HINCRBY', KEYS[2], 'terms', 1)
end
return 0
