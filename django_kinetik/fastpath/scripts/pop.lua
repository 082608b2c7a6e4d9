-- Pop up to ARGV[1] job ids from the tag queues KEYS[1..n], in that order.
--
-- Kinetik's "first tag with work": the first key is emptied before the
-- second is touched, and within a key the lowest score (highest priority,
-- then oldest id) comes first. Atomic, so two workers never pop the same id.
-- Returns the ids as strings.
local wanted = tonumber(ARGV[1])
local popped = {}
for _, queue in ipairs(KEYS) do
    if wanted <= 0 then
        break
    end
    local entries = redis.call('ZPOPMIN', queue, wanted)
    -- ZPOPMIN answers id, score, id, score, ...
    for i = 1, #entries, 2 do
        popped[#popped + 1] = entries[i]
        wanted = wanted - 1
    end
end
return popped
