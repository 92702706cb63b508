-- quick304.lua - LuaQuickHandler for `make bench`: every request is
-- answered 304 in httpd's quick handler, before URL mapping, with the
-- ETag it asked about. The cheapest 304 httpd can give; the floor the
-- module's quick-path 304 is measured against.
function handle(r)
    r.headers_out["ETag"] = r.headers_in["If-None-Match"] or '"floor"'
    r.status = 304
    return apache2.OK
end
