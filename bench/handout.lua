-- wrk script: visitors asking for numbers. Each connection plays visitors of random pools; a share of
-- requests are new visitors, the rest renew one of the connection's recent visitors (keepalive).
-- Every promo answer is written to holds-<thread>.txt for the double-hold check.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  pool_keys = {}
  for key in string.gmatch(os.getenv("BENCH_POOL_KEYS"), "[^,]+") do table.insert(pool_keys, key) end
  new_share = tonumber(os.getenv("BENCH_NEW_SHARE") or "0.3")
  out = io.open(os.getenv("BENCH_OUT") .. "/holds-" .. id .. ".txt", "w")
  recent = {}
  serial = 0
  math.randomseed(id * 7919 + os.time())
  errors5xx = 0
  last = nil
end

function request()
  local visitor, key, keepalive
  if #recent == 0 or math.random() < new_share then
    serial = serial + 1
    visitor = string.format("bench-%02d-%08d", id, serial)
    key = pool_keys[math.random(#pool_keys)]
    keepalive = "false"
    if #recent >= 64 then table.remove(recent, 1) end
    table.insert(recent, { visitor, key })
  else
    local pick = recent[math.random(#recent)]
    visitor, key, keepalive = pick[1], pick[2], "true"
  end
  last = visitor
  local body = '{"visitor_id":"' .. visitor .. '","page_url":"https://www.example.com/landing?utm_source=bench",'
    .. '"params":{"utm_source":"bench"},"keepalive":' .. keepalive .. '}'
  return wrk.format("POST", "/api/v1/ringpools/" .. key .. "/numbers",
    { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status >= 500 then errors5xx = errors5xx + 1 end
  if status == 200 then
    local number, kind, expires = string.match(body, '"number": "([^"]+)".-"kind": "([^"]+)", "expires_at": "?([^",}]*)')
    if kind == "promo" then out:write(last, " ", number, " ", expires, "\n") end
  end
end

function done(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
