package redisstore

import "github.com/redis/go-redis/v9"

// Every state transition is one of these scripts, so that it is atomic and
// takes one round trip. Times are unix milliseconds. Delivery hashes hold the
// fields id, evt, hook, rule, action, status, n (attempts), due, lease,
// token, err, created and updated; action state hashes hold action, paused,
// breaker, failures, opens, blocked, changed, err and version; see codec.go.
//
// A delivery waiting for an attempt is in its action's queue
// (<base>q:<action>) scored by its due time; a leased one is in its
// action's lease set (<base>lease:<action>) scored by its lease's end,
// never in both. Scripts that do not get these keys as KEYS build them from
// the key base and the delivery's stored action, as keys.go does.

// enqueueLua stores and indexes the deliveries whose arguments start at
// ARGV[at] (f, then per delivery its id, due time, action and f-3
// field/value arguments). The script that includes it sets at and the KEYS
// positions queues (the set of queued actions), list (the event's
// deliveries), all (the deliveries index), pending (the pending index) and
// first (where each delivery's hash, hook index, action index and action
// queue start, four by four). It leaves n, the number of deliveries stored.
const enqueueLua = `
local f = tonumber(ARGV[at])
at = at + 1
local n = 0
while at <= #ARGV do
	local id = ARGV[at]
	local k = first + 4 * n
	n = n + 1
	redis.call("HSET", KEYS[k], unpack(ARGV, at + 3, at + f - 1))
	redis.call("RPUSH", KEYS[list], id)
	redis.call("ZADD", KEYS[k + 3], ARGV[at + 1], id)
	redis.call("SADD", KEYS[queues], ARGV[at + 2])
	redis.call("ZADD", KEYS[all], 0, id)
	redis.call("ZADD", KEYS[pending], 0, id)
	redis.call("ZADD", KEYS[k + 1], 0, id)
	redis.call("ZADD", KEYS[k + 2], 0, id)
	at = at + f
end
`

// acceptScript checks the idempotency key, stores the event, stores its
// deliveries, queues them and indexes them for listing, and wakes the
// relays.
//
//	KEYS[1]    idempotency key        <base>idem:<hook>:<sha256 of key>
//	KEYS[2]    queued actions         <base>queues
//	KEYS[3]    event hash             <base>evt:<id>
//	KEYS[4]    event deliveries       <base>evt:<id>:dlvs
//	KEYS[5]    events index           <base>idx:evt
//	KEYS[6]    hook's events index    <base>idx:evt:hook:<hook>
//	KEYS[7]    status's events index  <base>idx:evt:status:<status>
//	KEYS[8]    deliveries index       <base>idx:dlv
//	KEYS[9]    pending index          <base>idx:dlv:status:pending
//	KEYS[10..] per delivery: its hash <base>dlv:<id>, its hook's index
//	           <base>idx:dlv:hook:<hook>, its action's index
//	           <base>idx:dlv:action:<action> and its action's queue
//	           <base>q:<action>
//	ARGV[1]    event id
//	ARGV[2]    received at
//	ARGV[3]    key window ends at; "0" to skip the idempotency check
//	ARGV[4]    how long Redis keeps the idempotency key (ms)
//	ARGV[5]    wake channel
//	ARGV[6]    e: number of event field/value arguments that follow
//	ARGV[7..6+e]  event fields and values
//	then       f: number of arguments per delivery, and per delivery
//	           its id, its due time, its action and f-3 field/value
//	           arguments
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
local queues, list, all, pending, first = 2, 4, 8, 9, 10
` + enqueueLua + `if n > 0 then
	redis.call("PUBLISH", ARGV[5], n)
end
return {ARGV[1], 0}
`)

// leaseScript serves every quota of a lease request. Per action it applies
// the gate of store.Gate to the action's stored state (paused: none;
// blocked until later: none; blocked until now or earlier: one probe, after
// which the state becomes store.Probing's), then takes leases that ended
// unrenewed, then due deliveries, earliest first. Each leased delivery gets
// a fresh token and its lease's end, and moves to the lease set at that
// end. Ids whose delivery is missing or not pending or retrying are dropped
// from the queue or lease set they were found in.
//
//	KEYS       per quota: the action's queue <base>q:<action>, its lease
//	           set <base>lease:<action> and its state <base>act:<action>
//	ARGV[1]    now
//	ARGV[2]    lease ends at, > now
//	ARGV[3]    key base               <prefix>:{p}:
//	ARGV[4]    token head: the i-th lease of this call gets head..i
//	then       per quota, three by three: how many deliveries to take at
//	           most, when a probe would end, and the most live leases the
//	           action may have (0: no cap)
//
// Returns {next due, delivery, event, delivery, event, …}: next due is the
// earliest time at which one of the actions not paused has a delivery due
// (or its lease ending), no earlier than the action's block; 0 when none.
// Each delivery and event is its field/value list; a delivery's list ends
// with its new token and lease, which win over any read before them.
var leaseScript = redis.NewScript(`
local now, untl, base, head = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local out, seq, nextDue = {0}, 0, nil

local function take(key, lkey, from_queue, want)
	local got = 0
	while got < want do
		-- Rounds of at most 1000 keep unpack below Lua's stack limit.
		local ids = redis.call("ZRANGEBYSCORE", key, "-inf", now, "LIMIT", 0, math.min(want - got, 1000))
		if #ids == 0 then
			break
		end
		local leased = {}
		for _, id in ipairs(ids) do
			local dkey = base .. "dlv:" .. id
			local d = redis.call("HGETALL", dkey)
			local status, evt
			for j = 1, #d, 2 do
				if d[j] == "status" then
					status = d[j + 1]
				elseif d[j] == "evt" then
					evt = d[j + 1]
				end
			end
			if status == "pending" or status == "retrying" then
				seq = seq + 1
				got = got + 1
				local token = head .. seq
				redis.call("HSET", dkey, "token", token, "lease", untl)
				-- Later fields win when the reply is read: these replace
				-- the token and lease of a lease that ended.
				d[#d + 1], d[#d + 2], d[#d + 3], d[#d + 4] = "token", token, "lease", untl
				out[#out + 1] = d
				out[#out + 1] = redis.call("HGETALL", base .. "evt:" .. (evt or ""))
				leased[#leased + 1] = untl
				leased[#leased + 1] = id
			else
				redis.call("ZREM", key, id)
			end
		end
		if #leased > 0 then
			if from_queue then
				local gone = {}
				for j = 2, #leased, 2 do
					gone[#gone + 1] = leased[j]
				end
				redis.call("ZREM", key, unpack(gone))
			end
			redis.call("ZADD", lkey, unpack(leased))
		end
	end
	return got
end

local function first(key)
	return tonumber(redis.call("ZRANGE", key, 0, 0, "WITHSCORES")[2])
end

for i = 1, #KEYS / 3 do
	local qkey, lkey, akey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
	local want, cap = tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[4 + 3 * i])
	if cap > 0 and want > 0 then
		-- Live leases are those that end after now, held by any process.
		want = math.min(want, cap - redis.call("ZCOUNT", lkey, "(" .. now, "+inf"))
	end
	local s = redis.call("HMGET", akey, "paused", "blocked")
	if s[1] ~= "1" then
		local blocked = tonumber(s[2])
		local probe = false
		if blocked then
			if now < blocked then
				want = 0
			else
				want, probe = math.min(1, want), true
			end
		end
		-- An idle action costs a look at the head of each set.
		local t, l = first(qkey), first(lkey)
		if want > 0 and ((l and l <= now) or (t and t <= now)) then
			local got = 0
			if l and l <= now then
				got = take(lkey, lkey, false, want)
			end
			if t and t <= now then
				got = got + take(qkey, lkey, true, want - got)
			end
			if probe and got > 0 then
				blocked = tonumber(ARGV[3 + 3 * i])
				redis.call("HSET", akey, "breaker", "half-open", "blocked", ARGV[3 + 3 * i], "changed", ARGV[1])
				redis.call("HINCRBY", akey, "version", 1)
			end
			t, l = first(qkey), first(lkey)
		end
		if not t or (l and l < t) then
			t = l
		end
		if t then
			if blocked and blocked > now and blocked > t then
				t = blocked
			end
			if not nextDue or t < nextDue then
				nextDue = t
			end
		end
	end
end
if nextDue then
	out[1] = nextDue
end
return out
`)

// renewScript extends the leases that still hold: the delivery still has
// the lease's token and is pending or retrying.
//
//	KEYS       per lease: the delivery's hash  <base>dlv:<id>
//	ARGV[1]    lease ends at
//	ARGV[2]    key base   <prefix>:{p}:
//	then       per lease: the delivery id and the lease token
//
// Returns per lease 1 when extended, 0 when lost.
var renewScript = redis.NewScript(`
local out = {}
for i, dkey in ipairs(KEYS) do
	local id, token = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
	local d = redis.call("HMGET", dkey, "token", "status", "action")
	if token ~= "" and d[1] == token and (d[2] == "pending" or d[2] == "retrying") then
		redis.call("HSET", dkey, "lease", ARGV[1])
		redis.call("ZADD", ARGV[2] .. "lease:" .. (d[3] or ""), ARGV[1], id)
		out[i] = 1
	else
		out[i] = 0
	end
end
return out
`)

// finishScript records attempts and, for each whose lease still holds,
// counts it and applies its outcome; a succeeded outcome is applied without
// the lease too, unless the delivery succeeded already. Applying it takes
// the delivery out of its action's lease set, back into its queue at the
// next attempt when retrying, and moves it to its new status's listing
// index. One call serves a whole batch: the cost of running a script is
// paid once, not per attempt.
//
//	KEYS       per attempt, three by three: the delivery hash
//	           <base>dlv:<id>, its attempts list <base>dlv:<id>:attempts and
//	           the new status's index <base>idx:dlv:status:<new status>
//	ARGV[1]    key base          <prefix>:{p}:
//	then       per attempt, seven by seven: the delivery id, the lease
//	           token, the attempt (JSON), the new status (succeeded,
//	           retrying or dead), the next attempt at (retrying), the last
//	           error and the updated at
//
// Returns, per attempt, 1 when applied, 0 when the lease was lost (the
// attempt is still recorded), -1 when there is no such delivery (nothing is
// recorded).
var finishScript = redis.NewScript(`
local base = ARGV[1]
local out = {}
for i = 1, #KEYS / 3 do
	local dkey, akey, skey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
	local at = 2 + 7 * (i - 1)
	local id, token, attempt, status = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
	local nextAt, err, updated = ARGV[at + 4], ARGV[at + 5], ARGV[at + 6]
	local d = redis.call("HMGET", dkey, "status", "token", "action", "n")
	if not d[1] then
		out[i] = -1
	else
		redis.call("RPUSH", akey, attempt)
		local held = (d[1] == "pending" or d[1] == "retrying") and token ~= "" and d[2] == token
		if not held and (status ~= "succeeded" or d[1] == "succeeded") then
			out[i] = 0
		else
			local action = d[3] or ""
			local n = (tonumber(d[4]) or 0) + 1
			redis.call("ZREM", base .. "lease:" .. action, id)
			if status == "retrying" then
				-- An empty token, lease or due reads as none: one HSET
				-- instead of an HSET and an HDEL.
				redis.call("HSET", dkey, "status", status, "err", err, "updated", updated, "n", n, "due", nextAt, "token", "", "lease", "")
				redis.call("ZADD", base .. "q:" .. action, nextAt, id)
			else
				redis.call("HSET", dkey, "status", status, "err", err, "updated", updated, "n", n, "token", "", "lease", "", "due", "")
				if not held then
					-- Only a held delivery is sure to be out of its queue.
					redis.call("ZREM", base .. "q:" .. action, id)
				end
			end
			if d[1] ~= status then
				redis.call("ZREM", base .. "idx:dlv:status:" .. d[1], id)
				redis.call("ZADD", skey, 0, id)
			end
			out[i] = 1
		end
	end
end
return out
`)

// releaseScript gives leases back without counting an attempt: each
// delivery its lease still holds is due again at once, back in its
// action's queue, and the relays are woken.
//
//	KEYS       per lease: the delivery's hash  <base>dlv:<id>
//	ARGV[1]    now: the deliveries' new due time
//	ARGV[2]    key base      <prefix>:{p}:
//	ARGV[3]    wake channel
//	then       per lease: the delivery id and the lease token
//
// Returns how many leases were given back.
var releaseScript = redis.NewScript(`
local n = 0
for i, dkey in ipairs(KEYS) do
	local id, token = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
	local d = redis.call("HMGET", dkey, "token", "status", "action")
	if token ~= "" and d[1] == token and (d[2] == "pending" or d[2] == "retrying") then
		redis.call("HDEL", dkey, "token", "lease")
		redis.call("HSET", dkey, "due", ARGV[1])
		redis.call("ZREM", ARGV[2] .. "lease:" .. (d[3] or ""), id)
		redis.call("ZADD", ARGV[2] .. "q:" .. (d[3] or ""), ARGV[1], id)
		n = n + 1
	end
end
if n > 0 then
	redis.call("PUBLISH", ARGV[3], n)
end
return n
`)

// actionStatesScript reads the state of every action that has one.
//
//	KEYS[1]  actions with a state  <base>acts
//	ARGV[1]  key base              <prefix>:{p}:
//
// Returns one field/value list per action.
var actionStatesScript = redis.NewScript(`
local out = {}
for _, a in ipairs(redis.call("SMEMBERS", KEYS[1])) do
	local s = redis.call("HGETALL", ARGV[1] .. "act:" .. a)
	if #s > 0 then
		out[#out + 1] = s
	end
end
return out
`)

// putActionStateScript writes an action's state if its stored version is
// still the one the writer read (0 when none is stored).
//
//	KEYS[1]  action state          <base>act:<action>
//	KEYS[2]  actions with a state  <base>acts
//	ARGV[1]  version read
//	ARGV[2]  action
//	ARGV[3..]  the state's fields and values, version excepted
//
// Returns the new version, or -1 when the stored version differs.
var putActionStateScript = redis.NewScript(`
local v = tonumber(redis.call("HGET", KEYS[1], "version") or "0")
if v ~= tonumber(ARGV[1]) then
	return -1
end
redis.call("HSET", KEYS[1], "version", v + 1, unpack(ARGV, 3))
redis.call("SADD", KEYS[2], ARGV[2])
return v + 1
`)

// putIdentityScript replaces the store's identity if it is still the one
// the caller read.
//
//	KEYS[1]  identity      <base>identity
//	ARGV[1]  id read       "" when none was stored
//	ARGV[2..]  the new identity's fields and values
//
// Returns 1, or 0 when the stored identity is another one.
var putIdentityScript = redis.NewScript(`
local cur = redis.call("HGET", KEYS[1], "id") or ""
if cur ~= ARGV[1] then
	return 0
end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], unpack(ARGV, 2))
return 1
`)

// queueStatsScript counts, per queued action, its deliveries due (in the
// queue or under a lease that ended), in flight (under a live lease) and
// scheduled (due later), and finds its oldest due time. An action whose
// queue and lease set are both empty is dropped from the set of queued
// actions: every script that queues a delivery adds it back.
//
//	KEYS[1]  queued actions  <base>queues
//	ARGV[1]  now
//	ARGV[2]  key base        <prefix>:{p}:
//
// Returns per action with deliveries {action, due, in flight, scheduled,
// oldest due or 0}.
var queueStatsScript = redis.NewScript(`
local now, after = ARGV[1], "(" .. ARGV[1]
local out = {}
for _, a in ipairs(redis.call("SMEMBERS", KEYS[1])) do
	local q, l = ARGV[2] .. "q:" .. a, ARGV[2] .. "lease:" .. a
	local qdue = redis.call("ZCOUNT", q, "-inf", now)
	local ldue = redis.call("ZCOUNT", l, "-inf", now)
	local held = redis.call("ZCOUNT", l, after, "+inf")
	local later = redis.call("ZCOUNT", q, after, "+inf")
	if qdue + ldue + held + later == 0 then
		redis.call("SREM", KEYS[1], a)
	else
		local oldest = nil
		if qdue > 0 then
			oldest = tonumber(redis.call("ZRANGE", q, 0, 0, "WITHSCORES")[2])
		end
		if ldue > 0 then
			local t = tonumber(redis.call("ZRANGE", l, 0, 0, "WITHSCORES")[2])
			if not oldest or t < oldest then
				oldest = t
			end
		end
		out[#out + 1] = {a, qdue + ldue, held, later, oldest or 0}
	end
end
return out
`)

// upgradeScript moves up to a chunk of entries from the due index of
// earlier versions into the per-action queues: a pending or retrying
// delivery goes to its action's lease set when it has a lease (the entry's
// score is then the lease's end), else to its action's queue, both at the
// entry's score, unless it is queued there already. Entries of missing or
// final deliveries are dropped.
//
//	KEYS[1]  earlier due index  <base>due
//	KEYS[2]  queued actions     <base>queues
//	ARGV[1]  key base           <prefix>:{p}:
//	ARGV[2]  chunk size
//
// Returns how many entries the due index still holds.
var upgradeScript = redis.NewScript(`
local base = ARGV[1]
local zs = redis.call("ZRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1, "WITHSCORES")
local ids = {}
for i = 1, #zs, 2 do
	local id, score = zs[i], zs[i + 1]
	ids[#ids + 1] = id
	local d = redis.call("HMGET", base .. "dlv:" .. id, "status", "action", "token", "lease")
	if (d[1] == "pending" or d[1] == "retrying") and d[2] then
		local q, l = base .. "q:" .. d[2], base .. "lease:" .. d[2]
		if not redis.call("ZSCORE", q, id) and not redis.call("ZSCORE", l, id) then
			if d[3] and d[3] ~= "" and d[4] and d[4] ~= "" then
				redis.call("ZADD", l, score, id)
			else
				redis.call("ZADD", q, score, id)
			end
			redis.call("SADD", KEYS[2], d[2])
		end
	end
end
if #ids > 0 then
	redis.call("ZREM", KEYS[1], unpack(ids))
end
return redis.call("ZCARD", KEYS[1])
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
// lease token is dropped, so a worker whose lease had expired loses it, and
// it moves from its action's lease set, if there, to its queue.
//
//	KEYS[1]  delivery hash   <base>dlv:<id>
//	KEYS[2]  pending index   <base>idx:dlv:status:pending
//	KEYS[3]  queued actions  <base>queues
//	ARGV[1]  delivery id
//	ARGV[2]  due at (also its updated at)
//	ARGV[3]  wake channel
//	ARGV[4]  key base        <prefix>:{p}:
//
// Returns the delivery's field/value list, or -1 when there is no such
// delivery, 0 when it succeeded, -2 when it is leased past ARGV[2].
var retryScript = redis.NewScript(`
local d = redis.call("HMGET", KEYS[1], "id", "status", "lease", "action")
if not d[1] then
	return -1
end
if d[2] == "succeeded" then
	return 0
end
if d[3] and d[3] ~= "" and tonumber(d[3]) > tonumber(ARGV[2]) then
	return -2
end
local id, base, action = ARGV[1], ARGV[4], d[4] or ""
redis.call("HSET", KEYS[1], "status", "pending", "due", ARGV[2], "updated", ARGV[2])
redis.call("HDEL", KEYS[1], "token", "lease")
redis.call("ZREM", base .. "lease:" .. action, id)
redis.call("ZADD", base .. "q:" .. action, ARGV[2], id)
redis.call("SADD", KEYS[3], action)
if d[2] ~= "pending" then
	redis.call("ZREM", base .. "idx:dlv:status:" .. (d[2] or ""), id)
	redis.call("ZADD", KEYS[2], 0, id)
end
redis.call("PUBLISH", ARGV[3], 1)
return redis.call("HGETALL", KEYS[1])
`)

// addDeliveriesScript stores and enqueues new deliveries of a stored event,
// as acceptScript does, marks the event accepted and adds rules to its
// matched rules (JSON list, kept free of repeats). Nothing is written when
// the event is missing or one of the deliveries exists already.
//
//	KEYS[1]    queued actions          <base>queues
//	KEYS[2]    event hash              <base>evt:<id>
//	KEYS[3]    event deliveries        <base>evt:<id>:dlvs
//	KEYS[4]    ignored events index    <base>idx:evt:status:ignored
//	KEYS[5]    accepted events index   <base>idx:evt:status:accepted
//	KEYS[6]    deliveries index        <base>idx:dlv
//	KEYS[7]    pending index           <base>idx:dlv:status:pending
//	KEYS[8..]  per delivery: its hash, its hook's index, its action's
//	           index and its action's queue, as for acceptScript
//	ARGV[1]    event id
//	ARGV[2]    wake channel
//	ARGV[3]    r: number of rules that follow; ARGV[4..3+r] the rules
//	then       f: number of arguments per delivery, and per delivery
//	           its id, its due time, its action and f-3 field/value
//	           arguments
//
// Returns the number of deliveries stored, -1 when there is no such event,
// or {i} when the i-th delivery (from 0) exists already.
var addDeliveriesScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 0 then
	return -1
end
for k = 8, #KEYS, 4 do
	if redis.call("EXISTS", KEYS[k]) == 1 then
		return {(k - 8) / 4}
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
local queues, list, all, pending, first = 1, 3, 6, 7, 8
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

// pruneScript examines one batch of events, oldest first from where the
// last batch stopped, and removes those that are prunable (store.Prunable)
// with their deliveries and attempts and every index entry that names
// them: the listing indexes, and the action queues and lease sets (which
// hold no final delivery, but a stray entry would outlive its delivery).
// The idempotency key of a pruned event is left to expire on its own TTL.
// It runs only for the owner of the pruning lease, which it takes when
// free or ended and extends.
//
//	KEYS[1]  pruning lease   <base>prune:lease
//	KEYS[2]  pruning cursor  <base>prune:cursor
//	KEYS[3]  events index    <base>idx:evt
//	ARGV[1]  now
//	ARGV[2]  owner
//	ARGV[3]  lease ends at, > now
//	ARGV[4]  completed before: ignored and succeeded events received earlier go
//	ARGV[5]  failed before: events with a dead delivery received earlier go
//	ARGV[6]  bound: examine only ids below it
//	ARGV[7]  limit: how many events to examine at most
//	ARGV[8]  key base        <prefix>:{p}:
//
// Returns {-1} when another owner holds the lease, else {events,
// deliveries, attempts removed, more (1 or 0)}.
var pruneScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local held = redis.call("GET", KEYS[1])
if held then
	local owner, untl = string.match(held, "^(.*)|(%d+)$")
	if owner and owner ~= ARGV[2] and tonumber(untl) > now then
		return {-1}
	end
end
redis.call("SET", KEYS[1], ARGV[2] .. "|" .. ARGV[3], "PX", math.max(1, tonumber(ARGV[3]) - now))

local completed, failed = tonumber(ARGV[4]), tonumber(ARGV[5])
local limit, base = tonumber(ARGV[7]), ARGV[8]
local from = "-"
local cursor = redis.call("GET", KEYS[2])
if cursor then
	from = "(" .. cursor
end
local ids = redis.call("ZRANGEBYLEX", KEYS[3], from, "(" .. ARGV[6], "LIMIT", 0, limit)
local events, deliveries, attempts = 0, 0, 0
for _, id in ipairs(ids) do
	local ekey = base .. "evt:" .. id
	local e = redis.call("HMGET", ekey, "status", "recv", "hook")
	if not e[1] then
		-- An index entry without its event: nothing else to remove.
		redis.call("ZREM", KEYS[3], id)
	else
		local recv = tonumber(e[2]) or 0
		local dids = redis.call("LRANGE", ekey .. ":dlvs", 0, -1)
		local ds, open, dead = {}, false, false
		for _, did in ipairs(dids) do
			local d = redis.call("HMGET", base .. "dlv:" .. did, "status", "hook", "action")
			if d[1] then
				ds[#ds + 1] = {did, d[1], d[2] or "", d[3] or ""}
				if d[1] == "dead" then
					dead = true
				elseif d[1] ~= "succeeded" then
					open = true
				end
			end
		end
		local prunable = false
		if not open and not (e[1] == "accepted" and #ds == 0) then
			if dead then
				prunable = recv < failed
			else
				prunable = recv < completed
			end
		end
		if prunable then
			for _, d in ipairs(ds) do
				local did, dkey = d[1], base .. "dlv:" .. d[1]
				attempts = attempts + redis.call("LLEN", dkey .. ":attempts")
				redis.call("DEL", dkey, dkey .. ":attempts")
				redis.call("ZREM", base .. "idx:dlv", did)
				redis.call("ZREM", base .. "idx:dlv:hook:" .. d[3], did)
				redis.call("ZREM", base .. "idx:dlv:action:" .. d[4], did)
				redis.call("ZREM", base .. "idx:dlv:status:" .. d[2], did)
				redis.call("ZREM", base .. "q:" .. d[4], did)
				redis.call("ZREM", base .. "lease:" .. d[4], did)
				deliveries = deliveries + 1
			end
			redis.call("DEL", ekey, ekey .. ":dlvs")
			redis.call("ZREM", KEYS[3], id)
			redis.call("ZREM", base .. "idx:evt:hook:" .. (e[3] or ""), id)
			redis.call("ZREM", base .. "idx:evt:status:" .. e[1], id)
			events = events + 1
		end
	end
end
local more = 0
if #ids == limit then
	redis.call("SET", KEYS[2], ids[#ids])
	more = 1
else
	redis.call("DEL", KEYS[2])
end
return {events, deliveries, attempts, more}
`)
