-- Push job ids onto tag queues and check the "Redis still has our state"
-- marker, in one round trip.
--
-- KEYS[1] the marker, KEYS[2..] the tags' sorted sets.
-- ARGV, per queue in KEYS order: how many ids, then score, id, score, id...
-- NX: an id already queued keeps its place (a reconcile must not reorder).
-- Returns 1 if the marker was there, 0 if Redis lost its state since the last
-- reconcile (flushed or restarted): the workers then reconcile in full.
local at = 1
for k = 2, #KEYS do
    local count = tonumber(ARGV[at])
    for i = at + 1, at + 2 * count, 2 do
        redis.call('ZADD', KEYS[k], 'NX', ARGV[i], ARGV[i + 1])
    end
    at = at + 1 + 2 * count
end
return redis.call('EXISTS', KEYS[1])
