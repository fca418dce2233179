package redisstore

import "github.com/redis/go-redis/v9"

// Every state transition is one of these scripts, so that it is atomic and
// takes one round trip. Times are unix milliseconds. Delivery hashes hold the
// fields id, evt, hook, rule, action, status, n (attempts), due, lease,
// token, err, created and updated; see codec.go.

// enqueueLua stores and indexes the deliveries whose arguments start at
// ARGV[at] (f, then per delivery its id, due time and f-2 field/value
// arguments). The script that includes it sets at and the KEYS positions
// due (the due index), list (the event's deliveries), all (the deliveries
// index), pending (the pending index) and first (where each delivery's hash,
// hook index and action index start, three by three). It leaves n, the
// number of deliveries stored.
const enqueueLua = `
local f = tonumber(ARGV[at])
at = at + 1
local n = 0
while at <= #ARGV do
	local id = ARGV[at]
	local k = first + 3 * n
	n = n + 1
	redis.call("HSET", KEYS[k], unpack(ARGV, at + 2, at + f - 1))
	redis.call("RPUSH", KEYS[list], id)
	redis.call("ZADD", KEYS[due], ARGV[at + 1], id)
	redis.call("ZADD", KEYS[all], 0, id)
	redis.call("ZADD", KEYS[pending], 0, id)
	redis.call("ZADD", KEYS[k + 1], 0, id)
	redis.call("ZADD", KEYS[k + 2], 0, id)
	at = at + f
end
`

// acceptScript checks the idempotency key, stores the event, stores its
// deliveries, indexes them as due and for listing, and wakes the relays.
//
//	KEYS[1]    idempotency key        <base>idem:<hook>:<sha256 of key>
//	KEYS[2]    due index              <base>due
//	KEYS[3]    event hash             <base>evt:<id>
//	KEYS[4]    event deliveries       <base>evt:<id>:dlvs
//	KEYS[5]    events index           <base>idx:evt
//	KEYS[6]    hook's events index    <base>idx:evt:hook:<hook>
//	KEYS[7]    status's events index  <base>idx:evt:status:<status>
//	KEYS[8]    deliveries index       <base>idx:dlv
//	KEYS[9]    pending index          <base>idx:dlv:status:pending
//	KEYS[10..] per delivery: its hash <base>dlv:<id>, its hook's index
//	           <base>idx:dlv:hook:<hook> and its action's index
//	           <base>idx:dlv:action:<action>
//	ARGV[1]    event id
//	ARGV[2]    received at
//	ARGV[3]    key window ends at; "0" to skip the idempotency check
//	ARGV[4]    how long Redis keeps the idempotency key (ms)
//	ARGV[5]    wake channel
//	ARGV[6]    e: number of event field/value arguments that follow
//	ARGV[7..6+e]  event fields and values
//	then       f: number of arguments per delivery, and per delivery
//	           its id, its due time and f-2 field/value arguments
//
// Returns {event id, 0} when stored, {original event id, 1} for a duplicate.
var acceptScript = redis.NewScript(`
if ARGV[3] ~= "0" then
	local held = redis.call("GET", KEYS[1])
	if held then
		local id, exp = string.match(held, "^(.*)|(%d+)$")
		if id and tonumber(exp) > tonumber(ARGV[2]) then
			return {id, 1}
		end
	end
	redis.call("SET", KEYS[1], ARGV[1] .. "|" .. ARGV[3], "PX", ARGV[4])
end
local e = tonumber(ARGV[6])
redis.call("HSET", KEYS[3], unpack(ARGV, 7, 6 + e))
for i = 5, 7 do
	redis.call("ZADD", KEYS[i], 0, ARGV[1])
end
local at = 7 + e
local due, list, all, pending, first = 2, 4, 8, 9, 10
` + enqueueLua + `if n > 0 then
	redis.call("PUBLISH", ARGV[5], n)
end
return {ARGV[1], 0}
`)

// leaseScript leases up to n due deliveries: each gets a fresh token, its
// lease end, and is re-indexed at that end so that it falls due again if its
// worker never finishes. Ids in the index whose delivery is missing or final
// are dropped from it.
//
//	KEYS[1]    due index         <base>due
//	ARGV[1]    now
//	ARGV[2]    lease ends at
//	ARGV[3]    key base          <prefix>:{p}:
//	ARGV[4..]  n fresh lease tokens, one per delivery that may be leased
//
// Returns, per leased delivery, its hash and its event's hash as
// field/value lists.
var leaseScript = redis.NewScript(`
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, #ARGV - 3)
local out = {}
for i, id in ipairs(ids) do
	local dkey = ARGV[3] .. "dlv:" .. id
	local d = redis.call("HMGET", dkey, "status", "evt")
	if d[1] == "pending" or d[1] == "retrying" then
		redis.call("HSET", dkey, "token", ARGV[3 + i], "lease", ARGV[2])
		redis.call("ZADD", KEYS[1], ARGV[2], id)
		out[#out + 1] = redis.call("HGETALL", dkey)
		out[#out + 1] = redis.call("HGETALL", ARGV[3] .. "evt:" .. d[2])
	else
		redis.call("ZREM", KEYS[1], id)
	end
end
return out
`)

// finishScript records an attempt and, if the lease still holds, applies
// the outcome: succeeded and dead leave the due index, retrying is
// re-indexed at its next attempt; the delivery moves to its new status's
// listing index.
//
//	KEYS[1]  due index        <base>due
//	KEYS[2]  delivery hash    <base>dlv:<id>
//	KEYS[3]  attempts list    <base>dlv:<id>:attempts
//	KEYS[4]  pending index    <base>idx:dlv:status:pending
//	KEYS[5]  retrying index   <base>idx:dlv:status:retrying
//	KEYS[6]  new status index <base>idx:dlv:status:<new status>
//	ARGV[1]  delivery id
//	ARGV[2]  lease token
//	ARGV[3]  attempt (JSON)
//	ARGV[4]  new status: succeeded, retrying or dead
//	ARGV[5]  next attempt at (retrying)
//	ARGV[6]  last error
//	ARGV[7]  updated at
//
// Returns 1 when applied, 0 when the lease was lost (the attempt is still
// recorded), -1 when there is no such delivery (nothing is recorded).
var finishScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 0 then
	return -1
end
redis.call("RPUSH", KEYS[3], ARGV[3])
local d = redis.call("HMGET", KEYS[2], "token", "status")
if ARGV[2] == "" or d[1] ~= ARGV[2] or (d[2] ~= "pending" and d[2] ~= "retrying") then
	return 0
end
redis.call("HINCRBY", KEYS[2], "n", 1)
redis.call("HSET", KEYS[2], "status", ARGV[4], "err", ARGV[6], "updated", ARGV[7])
redis.call("HDEL", KEYS[2], "token", "lease")
if ARGV[4] == "retrying" then
	redis.call("HSET", KEYS[2], "due", ARGV[5])
	redis.call("ZADD", KEYS[1], ARGV[5], ARGV[1])
else
	redis.call("HDEL", KEYS[2], "due")
	redis.call("ZREM", KEYS[1], ARGV[1])
end
redis.call("ZREM", KEYS[4], ARGV[1])
redis.call("ZREM", KEYS[5], ARGV[1])
redis.call("ZADD", KEYS[6], 0, ARGV[1])
return 1
`)

// deliveriesScript reads an event's deliveries in accept order.
//
//	KEYS[1]  event hash        <base>evt:<id>
//	KEYS[2]  event deliveries  <base>evt:<id>:dlvs
//	ARGV[1]  key base          <prefix>:{p}:
//
// Returns nil when there is no such event, else one field/value list per delivery.
var deliveriesScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return false
end
local out = {}
for _, id in ipairs(redis.call("LRANGE", KEYS[2], 0, -1)) do
	out[#out + 1] = redis.call("HGETALL", ARGV[1] .. "dlv:" .. id)
end
return out
`)

// attemptsScript reads a delivery's attempts in the order recorded.
//
//	KEYS[1]  delivery hash  <base>dlv:<id>
//	KEYS[2]  attempts list  <base>dlv:<id>:attempts
//
// Returns nil when there is no such delivery, else the attempts (JSON).
var attemptsScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return false
end
return redis.call("LRANGE", KEYS[2], 0, -1)
`)

// pageScript reads one page of a listing, newest first. It walks down the
// smallest of the candidate indexes (each holds every id the filter can
// match; ids scored 0, so ordered by id) from below the cursor, reads the
// fields the filter checks of each record, and the fields listed of those
// that match. It examines at most budget ids, so that a selective filter on
// a large store cannot hold Redis for long: when the budget runs out the
// page may be short, and next is the last id examined.
//
//	KEYS[1..]  candidate indexes  <base>idx:evt…, <base>idx:dlv…
//	ARGV[1]    record key head    <base>evt: or <base>dlv:
//	ARGV[2]    cursor: list ids below it; "" from the newest
//	ARGV[3]    limit
//	ARGV[4]    budget, > limit
//	ARGV[5]    r: number of fields to list; ARGV[6..5+r] their names, the
//	           first one a field every record has
//	then       m: number of field/value pairs a record must match, then the pairs
//	then       a time field and the bounds since (>=) and until (<) of its
//	           value; "" for no bound
//
// Returns {next, record, …}: next is the last id of the page when more may
// follow, else ""; each record is its field/value list.
var pageScript = redis.NewScript(`
local head, limit, budget = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
local r = tonumber(ARGV[5])
local names = {unpack(ARGV, 6, 5 + r)}
local at = 6 + r
local checked, want = {}, {}
for i = 1, tonumber(ARGV[at]) do
	checked[i], want[i] = ARGV[at + 2 * i - 1], ARGV[at + 2 * i]
end
at = at + 1 + 2 * #checked
local since, untl = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
local m = #want
if since or untl then
	checked[m + 1] = ARGV[at]
end

local idx, size = KEYS[1], redis.call("ZCARD", KEYS[1])
for i = 2, #KEYS do
	local n = redis.call("ZCARD", KEYS[i])
	if n < size then
		idx, size = KEYS[i], n
	end
end

local function keep(key)
	if #checked == 0 then
		return true
	end
	local v = redis.call("HMGET", key, unpack(checked))
	for i = 1, m do
		if v[i] ~= want[i] then
			return false
		end
	end
	if since or untl then
		local t = tonumber(v[m + 1])
		if not t or (since and t < since) or (untl and t >= untl) then
			return false
		end
	end
	return true
end

local out = {""}
local found, seen, last = 0, 0, nil
local from = "+"
if ARGV[2] ~= "" then
	from = "(" .. ARGV[2]
end
while true do
	local ids = redis.call("ZREVRANGEBYLEX", idx, from, "-", "LIMIT", 0, math.min(256, budget - seen))
	if #ids == 0 then
		return out
	end
	for _, id in ipairs(ids) do
		seen = seen + 1
		local key = head .. id
		if keep(key) then
			local v = redis.call("HMGET", key, unpack(names))
			if v[1] then
				if found == limit then
					out[1] = last
					return out
				end
				found, last = found + 1, id
				local rec = {}
				for i, name in ipairs(names) do
					rec[2 * i - 1] = name
					rec[2 * i] = v[i] or ""
				end
				out[#out + 1] = rec
			end
		end
		if seen >= budget then
			out[1] = id
			return out
		end
	end
	from = "(" .. ids[#ids]
end
`)

// retryScript makes a delivery that is not final, or is dead, pending and
// due at a given time, unless it succeeded or a worker holds it then. Its
// lease token is dropped, so a worker whose lease had expired loses it.
//
//	KEYS[1]  due index       <base>due
//	KEYS[2]  delivery hash   <base>dlv:<id>
//	KEYS[3]  pending index   <base>idx:dlv:status:pending
//	KEYS[4]  retrying index  <base>idx:dlv:status:retrying
//	KEYS[5]  dead index      <base>idx:dlv:status:dead
//	ARGV[1]  delivery id
//	ARGV[2]  due at (also its updated at)
//	ARGV[3]  wake channel
//
// Returns the delivery's field/value list, or -1 when there is no such
// delivery, 0 when it succeeded, -2 when it is leased past ARGV[2].
var retryScript = redis.NewScript(`
local d = redis.call("HMGET", KEYS[2], "id", "status", "lease")
if not d[1] then
	return -1
end
if d[2] == "succeeded" then
	return 0
end
if d[3] and d[3] ~= "" and tonumber(d[3]) > tonumber(ARGV[2]) then
	return -2
end
redis.call("HSET", KEYS[2], "status", "pending", "due", ARGV[2], "updated", ARGV[2])
redis.call("HDEL", KEYS[2], "token", "lease")
redis.call("ZADD", KEYS[1], ARGV[2], ARGV[1])
redis.call("ZREM", KEYS[4], ARGV[1])
redis.call("ZREM", KEYS[5], ARGV[1])
redis.call("ZADD", KEYS[3], 0, ARGV[1])
redis.call("PUBLISH", ARGV[3], 1)
return redis.call("HGETALL", KEYS[2])
`)

// addDeliveriesScript stores and enqueues new deliveries of a stored event,
// as acceptScript does, marks the event accepted and adds rules to its
// matched rules (JSON list, kept free of repeats). Nothing is written when
// the event is missing or one of the deliveries exists already.
//
//	KEYS[1]    due index               <base>due
//	KEYS[2]    event hash              <base>evt:<id>
//	KEYS[3]    event deliveries        <base>evt:<id>:dlvs
//	KEYS[4]    ignored events index    <base>idx:evt:status:ignored
//	KEYS[5]    accepted events index   <base>idx:evt:status:accepted
//	KEYS[6]    deliveries index        <base>idx:dlv
//	KEYS[7]    pending index           <base>idx:dlv:status:pending
//	KEYS[8..]  per delivery: its hash, its hook's index and its action's
//	           index, as for acceptScript
//	ARGV[1]    event id
//	ARGV[2]    wake channel
//	ARGV[3]    r: number of rules that follow; ARGV[4..3+r] the rules
//	then       f: number of arguments per delivery, and per delivery
//	           its id, its due time and f-2 field/value arguments
//
// Returns the number of deliveries stored, -1 when there is no such event,
// or {i} when the i-th delivery (from 0) exists already.
var addDeliveriesScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 0 then
	return -1
end
for k = 8, #KEYS, 3 do
	if redis.call("EXISTS", KEYS[k]) == 1 then
		return {(k - 8) / 3}
	end
end
local r = tonumber(ARGV[3])
local rules = {}
local cur = redis.call("HGET", KEYS[2], "rules")
if cur and cur ~= "" then
	rules = cjson.decode(cur)
end
local have = {}
for _, rule in ipairs(rules) do
	have[rule] = true
end
for i = 4, 3 + r do
	if not have[ARGV[i]] then
		have[ARGV[i]] = true
		rules[#rules + 1] = ARGV[i]
	end
end
if #rules > 0 then
	redis.call("HSET", KEYS[2], "rules", cjson.encode(rules))
end
redis.call("HSET", KEYS[2], "status", "accepted")
redis.call("ZREM", KEYS[4], ARGV[1])
redis.call("ZADD", KEYS[5], 0, ARGV[1])
local at = 4 + r
local due, list, all, pending, first = 1, 3, 6, 7, 8
` + enqueueLua + `redis.call("PUBLISH", ARGV[2], n)
return n
`)

// createKeyScript stores a new API key unless its id or the hash of its
// secret is taken.
//
//	KEYS[1]  key hash      <base>key:<id>
//	KEYS[2]  hash lookup   <base>keyhash:<hash of the secret>
//	KEYS[3]  keys index    <base>keys
//	ARGV[1]  key id
//	ARGV[2]  created at (the index score)
//	ARGV[3..]  the key's fields and values
//
// Returns 1 when stored, 0 when the id is taken, -1 when the hash is.
var createKeyScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return 0
end
if redis.call("EXISTS", KEYS[2]) == 1 then
	return -1
end
redis.call("HSET", KEYS[1], unpack(ARGV, 3))
redis.call("SET", KEYS[2], ARGV[1])
redis.call("ZADD", KEYS[3], ARGV[2], ARGV[1])
return 1
`)

// keysScript reads every API key, oldest first.
//
//	KEYS[1]  keys index  <base>keys
//	ARGV[1]  key base    <prefix>:{p}:
//
// Returns one field/value list per key.
var keysScript = redis.NewScript(`
local out = {}
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
	out[#out + 1] = redis.call("HGETALL", ARGV[1] .. "key:" .. id)
end
return out
`)

// keyByHashScript reads the API key whose secret has a given hash.
//
//	KEYS[1]  hash lookup  <base>keyhash:<hash of the secret>
//	ARGV[1]  key base     <prefix>:{p}:
//
// Returns nil when there is no such key, else its field/value list.
var keyByHashScript = redis.NewScript(`
local id = redis.call("GET", KEYS[1])
if not id then
	return false
end
return redis.call("HGETALL", ARGV[1] .. "key:" .. id)
`)

// stampKeyScript sets a time field of an API key: "revoked" only once,
// "used" only forward.
//
//	KEYS[1]  key hash  <base>key:<id>
//	ARGV[1]  field: revoked or used
//	ARGV[2]  time
//
// Returns 1 when set, 0 when kept, -1 when there is no such key.
var stampKeyScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return -1
end
local cur = tonumber(redis.call("HGET", KEYS[1], ARGV[1]))
if cur and (ARGV[1] == "revoked" or cur >= tonumber(ARGV[2])) then
	return 0
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
return 1
`)
