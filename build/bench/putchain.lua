-- putchain.lua - wrk script: back-to-back writes, one document per thread
-- (run with as many connections as threads). MODE=cond sends If-Match with
-- the ETag of the previous answer, so every PUT is a checked, committed
-- write; MODE=blind sends the same PUTs without a precondition.
-- PUTPATH is the document path prefix; the thread number is appended.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
end

function init(args)
    path = os.getenv("PUTPATH") .. id
    cond = os.getenv("MODE") == "cond"
    etag = nil
    bad = 0
end

function request()
    if cond and not etag then
        return wrk.format("GET", path)
    end
    local h = { ["Content-Type"] = "application/json" }
    if cond then
        h["If-Match"] = etag
    end
    return wrk.format("PUT", path, h, '{"n":1}')
end

function response(status, headers, body)
    if cond then
        etag = headers["ETag"]
    end
    if status ~= 200 then
        bad = bad + 1
    end
end

function done(summary, latency, requests)
    local b = 0
    for _, t in ipairs(threads) do
        b = b + t:get("bad")
    end
    io.write(string.format("failed-writes %d\n", b))
end
