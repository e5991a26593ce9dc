/**
 * Lua run inside Redis. Each script touches only keys passed in KEYS, all under one hash tag, so
 * the whole federation lives in one Redis Cluster slot and every script is atomic.
 */

/**
 * Applies a batch of hash writes and appends one change-log entry per change, at one new
 * revision, after checking preconditions. A value marked `stamp` has its "@REVISION@" placeholder
 * replaced by that revision (policies record the revision they were written at). Writes and log entries cannot be separated: either the
 * whole batch (with its entries) happens, or nothing does.
 *
 * KEYS: 1 epoch, 2 revision, 3 change stream, 4.. data keys referenced by index from the request.
 * ARGV: 1 expected epoch, 2 stream max length, 3 JSON request { checks, ops }.
 * Replies: {'OK', revision} | {'NOOP'} | {'EPOCH', actual} | {'EXISTS', value} | {'MISSING'} | {'FENCE'} | {'STALE', current} | {'SAME'}
 */
export const COMMIT = `
local req = cjson.decode(ARGV[3])
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {'EPOCH', epoch or ''} end
for _, c in ipairs(req.checks) do
  local key = KEYS[c.k]
  if c.t == 'absent' then
    local v = redis.call('HGET', key, c.f)
    if v then return {'EXISTS', v} end
  elseif c.t == 'present' then
    if redis.call('HEXISTS', key, c.f) == 0 then return {'MISSING'} end
  elseif c.t == 'fence' then
    if redis.call('GET', key) ~= c.v then return {'FENCE'} end
  elseif c.t == 'seq' then
    local v = redis.call('HGET', key, c.f)
    if v then
      local current = cjson.decode(v).sequence
      if current >= c.n then return {'STALE', tostring(current)} end
    end
  elseif c.t == 'state' then
    local v = redis.call('HGET', key, c.f)
    if not v then return {'MISSING'} end
    if cjson.decode(v).state == c.v then return {'SAME'} end
  elseif c.t == 'unique' then
    for _, v in ipairs(redis.call('HVALS', key)) do
      if cjson.decode(v)[c.field] == c.v then return {'EXISTS', v} end
    end
  end
end
local rev = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
local entries = {}
for _, op in ipairs(req.ops) do
  local key = KEYS[op.k]
  if op.t == 'hset' then
    local value = op.v
    if op.stamp then value = string.gsub(value, '"@REVISION@"', tostring(rev), 1) end
    local same = false
    if op.ct and op.skipSame then same = redis.call('HGET', key, op.f) == value end
    if not same then
      redis.call('HSET', key, op.f, value)
      if op.ct then table.insert(entries, {op.ct, op.ck, 'put', value}) end
    end
  elseif op.t == 'hdel' then
    local removed = redis.call('HDEL', key, op.f)
    if op.ct and removed == 1 then table.insert(entries, {op.ct, op.ck, 'delete', ''}) end
  elseif op.t == 'hclear' then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      table.insert(entries, {op.ct, op.cp .. field, 'delete', ''})
    end
    redis.call('DEL', key)
  elseif op.t == 'zrem' then
    redis.call('ZREM', key, op.f)
  elseif op.t == 'hdelplain' then
    redis.call('HDEL', key, op.f)
  elseif op.t == 'hdelprefix' then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 1, #op.p) == op.p then redis.call('HDEL', key, field) end
    end
  end
end
if #entries == 0 then return {'NOOP'} end
redis.call('SET', KEYS[2], rev)
for i, e in ipairs(entries) do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], rev .. '-' .. (i - 1), 'n', #entries, 't', e[1], 'k', e[2], 'o', e[3], 'v', e[4])
end
return {'OK', rev}
`;

/**
 * Reads the whole catalog at one revision. The caller passes the export hashes of the clusters it
 * expects; if the cluster set changed in between, the script answers RETRY instead of a torn read.
 *
 * KEYS: 1 epoch, 2 revision, 3 clusters, 4 bundles, 5 policies, 6.. exports:<cluster> (sorted by name)
 * ARGV: the cluster names, sorted.
 */
export const SNAPSHOT = `
local names = redis.call('HKEYS', KEYS[3])
table.sort(names)
if #names ~= #ARGV then return {'RETRY'} end
for i, n in ipairs(names) do if n ~= ARGV[i] then return {'RETRY'} end end
local exports = {}
for i = 6, #KEYS do
  for _, v in ipairs(redis.call('HVALS', KEYS[i])) do table.insert(exports, v) end
end
return {'OK', redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '0',
  redis.call('HVALS', KEYS[3]), redis.call('HVALS', KEYS[4]), redis.call('HVALS', KEYS[5]), exports}
`;

/** KEYS: 1 token hash. ARGV: 1 now (ms). The token's fields: r (record JSON), e (expiry ms), u (used at). */
export const CONSUME_TOKEN = `
local record = redis.call('HGET', KEYS[1], 'r')
if not record then return {'unknown'} end
local used = redis.call('HGET', KEYS[1], 'u')
if used then return {'used', record, used} end
if tonumber(redis.call('HGET', KEYS[1], 'e')) <= tonumber(ARGV[1]) then return {'expired', record} end
if cjson.decode(record).cluster ~= ARGV[2] then return {'wrong-cluster', record} end
redis.call('HSET', KEYS[1], 'u', ARGV[1])
return {'ok', record}
`;

/** KEYS: 1 lock, 2 fence counter. ARGV: 1 holder, 2 ttl ms. Returns the fencing token or false. */
export const ACQUIRE_LOCK = `
local current = redis.call('GET', KEYS[1])
if current then
  local holder, token = string.match(current, '^(.*)|(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
`;

/** KEYS: 1 lock. ARGV: 1 "holder|token", 2 ttl ms. */
export const RENEW_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** KEYS: 1 lock. ARGV: 1 "holder|token". */
export const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * Writes a whole catalog under a new epoch after a state loss. Refuses when the store already
 * holds clusters (someone restored first, or the loss was not real) or the fence moved on.
 *
 * KEYS: 1 epoch, 2 revision, 3 changes, 4 clusters, 5 bundles, 6 policies, 7 lock, 8.. exports:<cluster>
 * ARGV: 1 new epoch, 2 revision, 3 "holder|token", 4 JSON { clusters, bundles, policies, exports: [[cluster index, field, value]] }
 */
export const RESTORE = `
if redis.call('GET', KEYS[7]) ~= ARGV[3] then return {'FENCE'} end
if redis.call('HLEN', KEYS[4]) > 0 then return {'EXISTS'} end
local data = cjson.decode(ARGV[4])
redis.call('DEL', KEYS[3])
for _, c in ipairs(data.clusters) do redis.call('HSET', KEYS[4], c[1], c[2]) end
for _, b in ipairs(data.bundles) do redis.call('HSET', KEYS[5], b[1], b[2]) end
for _, p in ipairs(data.policies) do redis.call('HSET', KEYS[6], p[1], p[2]) end
for _, e in ipairs(data.exports) do redis.call('HSET', KEYS[7 + e[1]], e[2], e[3]) end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local rev = math.max(current, tonumber(ARGV[2]))
redis.call('SET', KEYS[2], rev)
redis.call('SET', KEYS[1], ARGV[1])
return {'OK', tostring(rev)}
`;

/**
 * Stores one gateway status, only while its cluster is registered (a stream closing after its
 * cluster was removed must not bring the status back).
 *
 * KEYS: 1 clusters, 2 status. ARGV: 1 cluster, 2 status field, 3 record JSON. Returns 1 when stored.
 */
export const PUT_STATUS = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
`;

/**
 * Removes the gateway statuses last seen before a time, in one step, so a status refreshed in the
 * meantime is never removed. A record that does not parse is removed too.
 *
 * KEYS: 1 status. ARGV: 1 before (ms). Returns how many were removed.
 */
export const PRUNE_STATUS = `
local before = tonumber(ARGV[1])
local entries = redis.call('HGETALL', KEYS[1])
local removed = 0
for i = 1, #entries, 2 do
  local ok, record = pcall(cjson.decode, entries[i + 1])
  if not ok or type(record) ~= 'table' or type(record.lastSeen) ~= 'number' or record.lastSeen < before then
    redis.call('HDEL', KEYS[1], entries[i])
    removed = removed + 1
  end
end
return removed
`;
