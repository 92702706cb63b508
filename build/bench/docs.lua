-- docs.lua - the cheap backend of the stress run and the benchmark.
--
-- The GET/HEAD/PUT part of the document API of t/cgi-bin/docs.cgi, on the
-- same files (DOCS_DATA/docs/NAME.json, the same JSON shape), run by
-- mod_lua inside the httpd worker: no fork, no interpreter start-up, so a
-- request costs tens of microseconds and the module's own cost is not
-- hidden behind the backend's. Like docs.cgi it reads, modifies and writes
-- without any lock (whole-file replace by rename), so concurrent PUTs lose
-- updates unless something in front serialises them.
--
--   GET    .../docs/NAME         200 {"data":..,"name":..,"rev":N} or 404
--   PUT    .../docs/NAME         body replaces data; rev+1; 201 on create
--   ?sleep=SECONDS               pause between reading and writing
--   ?after=SECONDS               pause between writing and answering
local seeded = false

local function answer(r, status, body)
    r.status = status
    r.content_type = "application/json"
    if r.method ~= "HEAD" then
        r:puts(body, "\n")
    end
    return apache2.OK
end

-- ?sleep=S pauses between reading and writing (widens the lost-update
-- race); ?after=S pauses after the write, before the answer (a backend
-- whose write is done but whose response is still on its way).
local function pause(r, name)
    local s = tonumber((r.args or ""):match(name .. "=([%d.]+)"))
    if s and s > 0 then
        r.usleep(math.floor(s * 1000000))
    end
end

local function slurp(file)
    local fh = io.open(file, "rb")
    if not fh then
        return nil
    end
    local text = fh:read("a")
    fh:close()
    return text
end

function handle(r)
    local name = r.uri:match("/docs/([%w._-]+)$")
    local dir = r.subprocess_env["DOCS_DATA"]
    if not name or name:sub(1, 1) == "." or not dir then
        return answer(r, 404, '{"error":"no document named"}')
    end
    local file = dir .. "/docs/" .. name .. ".json"

    if r.method == "GET" or r.method == "HEAD" then
        local text = slurp(file)
        if not text then
            return answer(r, 404, '{"error":"no document ' .. name .. '"}')
        end
        return answer(r, 200, text)
    end

    if r.method == "PUT" then
        local body = r:requestbody() or ""
        if not body:match("^%s*[%[{\"%d%-tfn]") then
            return answer(r, 400, '{"error":"body is not JSON"}')
        end
        body = body:gsub("%s+$", "")
        local old = slurp(file)
        pause(r, "sleep")
        local rev = old and tonumber(old:match('"rev":(%d+)')) or 0
        local doc = '{"data":' .. body .. ',"name":"' .. name
                    .. '","rev":' .. (rev + 1) .. '}'
        if not seeded then
            -- Children forked from one parent start with the same Lua state
            -- layout and the same random sequence: seed with the clock.
            math.randomseed(r:clock())
            seeded = true
        end
        local tmp = string.format("%s/docs/.tmp-%x-%d", dir, r:clock(),
                                  math.random(1, 1000000000))
        local fh = io.open(tmp, "wb")
        if not fh then
            return answer(r, 500, '{"error":"cannot write"}')
        end
        fh:write(doc)
        fh:close()
        if not os.rename(tmp, file) then
            os.remove(tmp)
            return answer(r, 500, '{"error":"cannot rename"}')
        end
        pause(r, "after")
        return answer(r, old and 200 or 201, doc)
    end

    r.headers_out["Allow"] = "GET, HEAD, PUT"
    return answer(r, 405, '{"error":"method not allowed"}')
end
