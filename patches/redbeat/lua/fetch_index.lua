-- One tick's read of the schedule's index, for a store whose every key is declared (a hash-tagged prefix: a Redis
-- Cluster or a cloud proxy): the server clock, whether this beat still holds the lock, the due entries' keys and
-- scores, the next score and the one after it, and the run-now requests. The entries' hashes are read next, by
-- their keys (Store.fetch_due).
-- KEYS[1]: the schedule ZSET; KEYS[2]: the lock; KEYS[3]: the run-now requests (hash: entry name → epoch ms).
-- ARGV[1]: this beat's lock token; ARGV[2]: the most due entries to return (0 = all).
-- Returns an `index` record (WIRE.index), then `slot` records (key, score) for the due entries, then `request`
-- records (entry name, epoch ms).
local time, owned, due, head = read_index(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
local out = {}
local index = {seconds = time[1], micros = time[2], owned = owned and 1 or 0, head = head[2] or false,
               after_head = head[4] or false, head_key = head[1] or false, due = #due / 2}
if not owned then
    emit(out, 'index', index)
    return out
end
emit(out, 'index', index)
for i = 1, #due, 2 do
    emit(out, 'slot', {key = due[i], score = due[i + 1]})
end
local requests = redis.call('HGETALL', KEYS[3])
for i = 1, #requests, 2 do
    emit(out, 'request', {name = requests[i], stamp = requests[i + 1]})
end
return out
