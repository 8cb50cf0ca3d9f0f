-- One tick's read: the server clock, whether this beat still holds the lock, every due entry with its hash, and
-- every entry an operator asked to run now (`beat_schedule run`), so an idle tick stays one round trip.
-- KEYS[1]: the schedule ZSET; KEYS[2]: the lock; KEYS[3]: the run-now requests (hash: entry name → epoch ms).
-- ARGV[1]: this beat's lock token; ARGV[2]: the most due entries to return (0 = all); ARGV[3]: the key prefix.
-- Returns a `header` record (WIRE.header: seconds, microseconds, owned 1/0, the next score, the score after it, the
-- next entry's key, definition and meta; false where there is none), then an `entry` record (WIRE.entry: key,
-- score, definition, meta, paused, run-now request, due 1/0; false where there is none) per entry.
-- Reading TIME here makes the Redis server the one clock every beat compares due times with. The next entry comes
-- with its hash so the leader can sleep until the slot its score stands for (a score stock redbeat wrote lies up to a
-- second before it), and with the score after it, which that sleep must not pass.
local time, owned, due, head = read_index(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
local out = {}
local header = {seconds = time[1], micros = time[2], owned = owned and 1 or 0, head = head[2] or false,
                after_head = head[4] or false, head_key = head[1] or false, head_definition = false,
                head_meta = false}
if not owned then
    emit(out, 'header', header)
    return out
end
if head[1] then
    local fields = redis.call('HMGET', head[1], 'definition', 'meta')
    header.head_definition, header.head_meta = fields[1] or false, fields[2] or false
end
emit(out, 'header', header)
local requests = redis.call('HGETALL', KEYS[3])
local requested = {}
for i = 1, #requests, 2 do
    requested[ARGV[3] .. requests[i]] = requests[i + 1]
end
local served = {}
local function add(key, score, is_due)
    local fields = redis.call('HMGET', key, 'definition', 'meta', 'paused')
    emit(out, 'entry', {key = key, score = score, definition = fields[1] or false, meta = fields[2] or false,
                        paused = fields[3] or false, requested = requested[key] or false, due = is_due})
    served[key] = true
end
for i = 1, #due, 2 do
    add(due[i], due[i + 1], 1)
end
-- Requested entries that are not due: returned for their request only (their score is left as it is).
for i = 1, #requests, 2 do
    local key = ARGV[3] .. requests[i]
    if not served[key] then
        add(key, redis.call('ZSCORE', KEYS[1], key) or false, 0)
    end
end
return out
