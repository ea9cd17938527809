"""The Lua scripts the RedisVL index runs in Redis, where a read-modify-write of one
entry's hash must be atomic (semcache/indexes/redisvl.py)."""

from __future__ import annotations

__all__ = ["OBSERVE_LUA"]

# Append one observation to the entry's "o" field (a JSON list, the last ARGV[2] kept),
# atomically, and only if the entry still exists. A field of the entry's own hash, so
# searches return it for free, it expires with the entry and a replacement keeps it.
# An "o" another writer shaped otherwise (not JSON, not an array, elements that are not
# what Observation.from_json reads: [similarity, correct, query-or-null]) would fail the
# script (an index fault: the outcome lost) or keep the hash unsearchable (a search
# skips it): the readable elements are kept, the rest dropped, and the script answers
# 1 + how many were dropped (0: no entry) so the caller counts and logs the repair.
OBSERVE_LUA = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do if t[i] == nil then return false end end
  return true, n
end
local function finite(x) return type(x) == 'number' and x - x == 0 end
local function valid(e)
  if type(e) ~= 'table' then return false end
  local ok, n = is_array(e)
  if not ok or n < 2 or n > 3 then return false end
  local q = e[3]
  return finite(e[1]) and e[1] >= -1.5 and e[1] <= 1.5
    and (type(e[2]) == 'boolean' or finite(e[2]))
    and (q == nil or q == cjson.null or type(q) == 'string')
end
local raw = redis.call('hget', KEYS[1], 'o')
local arr, bad = {}, 0
if raw then
  local ok, got = pcall(cjson.decode, raw)
  if ok and type(got) == 'table' and is_array(got) then
    for i = 1, #got do
      if valid(got[i]) then table.insert(arr, got[i]) else bad = bad + 1 end
    end
  else
    bad = 1
  end
end
table.insert(arr, cjson.decode(ARGV[1]))
while #arr > tonumber(ARGV[2]) do table.remove(arr, 1) end
redis.call('hset', KEYS[1], 'o', cjson.encode(arr))
return 1 + bad
"""
