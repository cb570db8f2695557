-- wrk script of bench/load.sh: rotates over a list of read URLs and counts what comes back.
--
--   wrk ... -s bench/load/reads.lua http://127.0.0.1:PORT -- READS_FILE
--
-- READS_FILE holds `KIND<TAB>PATH` lines (bench/load/clients.py reads). Each thread starts at
-- its own place in the list. Requests are counted by kind as they are sent, answers by status
-- class; wrk does not say which request an answer belongs to, so the first answers that are
-- not 2xx are kept (status and body) to say what failed. done() prints `LOAD ...` lines.

local kinds, paths = {}, {}
local i = 0
local threads = {}
local counter = 0

sent = {}
classes = {}
failures = {}

function setup(thread)
    counter = counter + 1
    thread:set("id", counter)
    table.insert(threads, thread)
end

function init(args)
    for line in io.lines(args[1]) do
        local kind, path = line:match("^(%S+)\t(.+)$")
        if kind then
            kinds[#kinds + 1] = kind
            paths[#paths + 1] = path
        end
    end
    assert(#paths > 0, "no read URLs in " .. tostring(args[1]))
    -- Threads start far apart in the list, so they do not ask for the same thing at once.
    i = ((id - 1) * 7919) % #paths
end

function request()
    i = i % #paths + 1
    local kind = kinds[i]
    sent[kind] = (sent[kind] or 0) + 1
    return wrk.format("GET", paths[i])
end

function response(status, headers, body)
    local class = math.floor(status / 100) .. "xx"
    classes[class] = (classes[class] or 0) + 1
    if status >= 300 and #failures < 20 then
        failures[#failures + 1] = status .. " " .. string.sub(body or "", 1, 200)
    end
end

local function add(total, t)
    for k, v in pairs(t) do
        total[k] = (total[k] or 0) + v
    end
end

function done(summary, latency, requests)
    local s, c = {}, {}
    for _, thread in ipairs(threads) do
        add(s, thread:get("sent"))
        add(c, thread:get("classes"))
        for _, f in ipairs(thread:get("failures")) do
            io.write("LOAD failure ", f:gsub("\n", " "), "\n")
        end
    end
    for kind, n in pairs(s) do
        io.write(string.format("LOAD sent %s %d\n", kind, n))
    end
    for class, n in pairs(c) do
        io.write(string.format("LOAD status %s %d\n", class, n))
    end
    local e = summary.errors
    io.write(string.format("LOAD errors connect=%d read=%d write=%d timeout=%d\n",
        e.connect, e.read, e.write, e.timeout))
    io.write(string.format("LOAD latency p50=%.2f p99=%.2f max=%.2f\n",
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
