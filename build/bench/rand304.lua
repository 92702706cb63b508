-- rand304.lua - wrk script: revalidate random documents of a seeded store.
-- Document i is at PATHPREFIX..i and its current ETag is
-- "STOREID-hex(VBASE + i)" (build/bench.sh seeds the store that way), so
-- every request is a matching If-None-Match on a random key: a 304 answered
-- by one indexed store lookup. The keys are FIRSTKEY .. FIRSTKEY+NKEYS-1
-- (FIRSTKEY defaults to 1).
local n = tonumber(os.getenv("NKEYS"))
local first = tonumber(os.getenv("FIRSTKEY") or "1")
local base = tonumber(os.getenv("VBASE"))
local id = os.getenv("STOREID")
local prefix = os.getenv("PATHPREFIX")

function init(args)
    local seed = tonumber((tostring({}):match("0x(%x+)")) or "1", 16)
    math.randomseed(os.time() + seed % 100000)
end

function request()
    local i = math.random(first, first + n - 1)
    return wrk.format("GET", prefix .. i,
                      { ["If-None-Match"] = string.format('"%s-%x"', id, base + i) })
end
