-- Put back messages a consumer took, each only if its record in `unacked` is still the one read (else kombu's own
-- visibility restore, or an acknowledgement, got there first: putting it back again would make a copy); and, to
-- reap a dead consumer, what its BLMOVE moved in, and its records, only if it has not beaten since it was read.
-- KEYS[1]: `unacked`; KEYS[2]: `unacked_index`; KEYS[3]: the consumer's taken set; KEYS[4]: its processing list;
-- KEYS[5]: its record; KEYS[6]: the index of consumers.
-- ARGV[1]: its beat as read ('' for none), or '*' to put back the tags only (a live consumer's own);
-- ARGV[2]: its id; ARGV[3]: the queue key its BLMOVE waited on ('' for none);
-- ARGV[4..]: groups of four: tag, its record as read, a queue key, the message to push there (one group per queue).
-- Returns how many messages went back, or -1 when the consumer beat again (nothing done).
local reap = ARGV[1] ~= '*'
if reap and (redis.call('HGET', KEYS[5], 'beat') or '') ~= ARGV[1] then
    return -1
end
local restored = 0
local unchanged = {}
for i = 4, #ARGV, 4 do
    local tag = ARGV[i]
    if unchanged[tag] == nil then
        unchanged[tag] = redis.call('HGET', KEYS[1], tag) == ARGV[i + 1]
        redis.call('SREM', KEYS[3], tag)
        if unchanged[tag] then
            redis.call('HDEL', KEYS[1], tag)
            redis.call('ZREM', KEYS[2], tag)
            restored = restored + 1
        end
    end
    if unchanged[tag] then
        redis.call('RPUSH', ARGV[i + 2], ARGV[i + 3])
    end
end
if not reap then
    return restored
end
if ARGV[3] ~= '' then
    -- newest first, each to the head of the queue: the oldest ends up taken first
    while redis.call('LMOVE', KEYS[4], ARGV[3], 'LEFT', 'RIGHT') do
        restored = restored + 1
    end
end
redis.call('DEL', KEYS[3], KEYS[5])
if redis.call('LLEN', KEYS[4]) == 0 then
    redis.call('ZREM', KEYS[6], ARGV[2])
end
return restored
