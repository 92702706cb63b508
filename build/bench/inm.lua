-- inm.lua - wrk script: every request carries If-None-Match: $INM.
wrk.headers["If-None-Match"] = os.getenv("INM")
