-- wrk script for bench/search_load.py: GET /api/v1/search with a rotating list of queries.
--
--   wrk -t T -c C -d 20s --latency -s bench/wrk_search.lua http://127.0.0.1:PORT \
--       -- QUERIES_FILE TOKEN K MODE OFFSET SPACING
--
-- QUERIES_FILE holds one query per line, already URL-encoded. Thread i starts at
-- OFFSET + i * SPACING and walks the list in order (wrapping), so that each run and each thread
-- asks for different queries. MODE "-" leaves mode out (the index's default).
-- done() prints the summary and latency percentiles (microseconds) as one JSON line that starts
-- with "WRK_JSON " (done runs in wrk's main Lua state, which never sees init's arguments).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  queries = {}
  for line in io.lines(args[1]) do
    if line ~= "" then
      queries[#queries + 1] = line
    end
  end
  local suffix = "&k=" .. args[3]
  if args[4] ~= "-" then
    suffix = suffix .. "&mode=" .. args[4]
  end
  path_suffix = suffix
  headers = { ["Authorization"] = "Token " .. args[2], ["Accept"] = "application/json" }
  counter = (tonumber(args[5]) + id * tonumber(args[6])) % #queries
end

function request()
  counter = counter + 1
  local q = queries[(counter % #queries) + 1]
  return wrk.format("GET", "/api/v1/search?q=" .. q .. path_suffix, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  local parts = {
    string.format('"requests": %d', summary.requests),
    string.format('"duration_us": %d', summary.duration),
    string.format('"bytes": %d', summary.bytes),
    string.format(
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}',
      e.connect, e.read, e.write, e.status, e.timeout
    ),
    string.format('"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p99_9": %d}',
      latency.min, latency.mean, latency.stdev, latency.max, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency:percentile(99.9)),
  }
  io.write("WRK_JSON {" .. table.concat(parts, ", ") .. "}\n")
end
