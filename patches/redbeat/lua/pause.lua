-- Pause or resume an entry (`beat_schedule pause|resume`): the `paused` field of its hash, which fetch_due.lua
-- hands to the leader; the leader skips a paused entry's slots. Not fenced: this is an operator's request, not a
-- leader's write, and the leader only reads it inside its own fenced tick. The sync (seed.lua) leaves the field
-- alone; pruning the entry deletes it with the hash.
-- KEYS[1]: the entry's hash; ARGV[1]: '1' to pause, '0' to resume.
-- Returns {exists (1/0), changed (1/0), paused since (epoch seconds) or false}. A missing entry is left missing.
-- This script writes after reading TIME: Redis < 5 allows that only with effects replication (a no-op since 7).
redis.replicate_commands()
if redis.call('HEXISTS', KEYS[1], 'definition') == 0 then
    return {0, 0, false}
end
if ARGV[1] == '1' then
    local changed = redis.call('HSETNX', KEYS[1], 'paused', redis.call('TIME')[1])
    return {1, changed, redis.call('HGET', KEYS[1], 'paused')}
end
return {1, redis.call('HDEL', KEYS[1], 'paused'), false}
