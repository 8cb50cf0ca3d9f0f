-- One consumer takes the next message of its queues and records it as unacknowledged in the same step, so there is
-- no moment at which the message is in neither the queue nor a record a live or dead consumer's messages come back
-- from (kombu's transport pops with BRPOP, then records in a second command).
-- KEYS[1]: kombu's `unacked` hash; KEYS[2]: its `unacked_index` zset; KEYS[3]: this consumer's set of taken tags;
-- KEYS[4]: its processing list (what its blocking BLMOVE moved in); KEYS[5]: its record (hash: beat, source, ack);
-- KEYS[6..]: the queue keys, in the order to try.
-- ARGV[1]: the score for `unacked_index` (the consumer's clock, as kombu's own records and visibility restore use);
-- ARGV[2]: one character per queue key, '1' when its messages are acknowledged (recorded), '0' for no_ack;
-- ARGV[3]: '1' for the consumer's own loop, which first takes what its BLMOVE moved in and, finding nothing, notes
-- in its record the queue key it blocks on next; '0' for a one-off get.
-- Returns {key, payload, '1' | '0'} or false.
local function record(payload)
    local properties = cjson.decode(payload)['properties']
    local tag = properties['delivery_tag']
    local info = properties['delivery_info']
    -- kombu's own record, [message, exchange, routing_key], with the message as it was sent (not re-encoded).
    redis.call('HSET', KEYS[1], tag,
        '[' .. payload .. ',' .. cjson.encode(info['exchange']) .. ',' .. cjson.encode(info['routing_key']) .. ']')
    redis.call('ZADD', KEYS[2], ARGV[1], tag)
    redis.call('SADD', KEYS[3], tag)
end

-- A message the consumer's BLMOVE moved in first: it is the one that command answered (or would have).
local payload = ARGV[3] == '1' and redis.call('RPOP', KEYS[4])
if payload then
    local source = redis.call('HMGET', KEYS[5], 'source', 'ack')
    if source[2] ~= '0' then
        record(payload)
    end
    return {source[1] or KEYS[6], payload, source[2] or '1'}
end
for i = 6, #KEYS do
    payload = redis.call('RPOP', KEYS[i])
    if payload then
        local ack = string.sub(ARGV[2], i - 5, i - 5)
        if ack == '1' then
            record(payload)
        end
        return {KEYS[i], payload, ack}
    end
end
if ARGV[3] == '1' then
    redis.call('HSET', KEYS[5], 'source', KEYS[6], 'ack', string.sub(ARGV[2], 1, 1))
end
return false
