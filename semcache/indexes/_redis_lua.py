"""The Lua scripts the RedisVL index runs in Redis, where a read-modify-write of one
entry's hash must be atomic (semcache/indexes/redisvl.py)."""

from __future__ import annotations

__all__ = ["DELETE_IF_UNCHANGED_LUA", "OBSERVE_LUA"]

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
    and (type(e[2]) == 'boolean' or e[2] == 0 or e[2] == 1)
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


# Delete the entry's hash only if it is still the one a search returned: the same key
# (ARGV[1]), created time (ARGV[2]) and expiry (ARGV[3], '' for never): atomic, so a
# writer that replaced the entry since the search keeps its fresh hash.
DELETE_IF_UNCHANGED_LUA = """
local h = redis.call('hmget', KEYS[1], 'k', 'c', 'x')
if h[1] ~= ARGV[1] or tonumber(h[2]) ~= tonumber(ARGV[2]) then return 0 end
local x = tonumber(h[3])
if x == nil then return 0 end
if ARGV[3] == '' then
  if x < tonumber(ARGV[4]) then return 0 end
elseif x ~= tonumber(ARGV[3]) then return 0 end
return redis.call('del', KEYS[1])
"""
