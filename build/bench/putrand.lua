-- putrand.lua - wrk script: PUTs without a precondition to random documents
-- PUTPATH..i, i in 1..NKEYS. Through the module every one is a claim and a
-- commit in the store: this is the sustained commit rate.
local n = tonumber(os.getenv("NKEYS"))
local prefix = os.getenv("PUTPATH")

function init(args)
    local seed = tonumber((tostring({}):match("0x(%x+)")) or "1", 16)
    math.randomseed(os.time() + seed % 100000)
end

function request()
    return wrk.format("PUT", prefix .. math.random(1, n),
                      { ["Content-Type"] = "application/json" }, '{"n":1}')
end
