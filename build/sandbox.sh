#!/bin/sh
# sandbox.sh - a self-contained httpd for the demo, the stress run and the
# benchmark: Debian's /usr/sbin/apache2 with a configuration generated into
# one directory (its own ServerRoot, PidFile, logs, mutexes, CGI socket),
# listening on 127.0.0.1 only. /etc/apache2 is never read.
#
#   sh build/sandbox.sh start    DIR     write DIR/httpd.conf, start, wait
#   sh build/sandbox.sh stop     DIR     stop and wait for the parent to exit
#   sh build/sandbox.sh graceful DIR     apache2 -k graceful
#   sh build/sandbox.sh restart  DIR     apache2 -k restart
#   sh build/sandbox.sh conf     DIR     only write DIR/httpd.conf
#   sh build/sandbox.sh pid      DIR     print the parent's pid
#
# Settings (environment, remembered in DIR/sandbox.env for later commands):
#   MPM=prefork|event   (event)        PORT=N             (8090)
#   MODULE=1|0          load the module (1 when MODULE_SO exists)
#   MODULE_SO=PATH      (.libs/mod_conditional.so of this tree)
#   STORE=PATH          (DIR/store/conditional.db)
#   DATA=PATH           documents of the CGI API (DIR/data)
#   LEASE=N             ConditionalLeaseTime (60)
#   LOCKWAIT=N          ConditionalLockWait (10)
#   REQUIRE=1|0         ConditionalRequire on /api/ (0)
#   ACCESSLOG=1|0       access log with %{conditional}n (1)
#   STATUS=1|0          mod_status with ExtendedStatus at /server-status (0)
#   DBD=PARAMS          ConditionalStore dbd: mod_dbd with DBDriver pgsql
#                       and these DBDParams instead of the SQLite STORE
#   INDEX=1|0           serve DIR/htdocs/index.html as / (0; the demo's page)
#   QUICK_PORT=N        also listen on N: a virtual host with the same
#                       locations and ConditionalQuickHandler On (none)
#   FLOOR_PORT=N        also listen on N: a virtual host whose
#                       LuaQuickHandler answers every request 304
#                       (build/bench/quick304.lua), httpd's floor (none)
#
# Locations:
#   /api/       t/cgi-bin/docs.cgi, Conditional On
#   /raw/       the same CGI and documents, module off (the control)
#   /proxy/     mod_proxy to /raw/ on this server, Conditional On
#   /proxy1/    the same with a 1 s proxy timeout (to /raw1/, = /raw/)
#   /static/    a small static file, httpd's own FileETag (the baseline)
#   /lua/       the cheap backend (build/bench/docs.lua), Conditional On
#   /luaraw/    the cheap backend, module off
#   /selfetag/  build/bench/selfetag.cgi: a CGI that answers 304 itself
#
# The cheap backend is build/bench/docs.lua: the GET/PUT part of the same
# document API on the same files, run by mod_lua in one Lua state per
# thread inside the httpd worker. It forks nothing and starts no
# interpreter, yet it is a real backend: it reads the document file and a
# PUT replaces it (read-modify-write without a lock, like docs.cgi). A CGI,
# even a shell one, costs a fork and exec per request that would hide the
# module's cost; mod_proxy to another location would add a second request.
# Module on (/lua/) vs module off (/luaraw/) on this handler shows what the
# module itself costs per request, and the stress run can reach 100k
# operations in minutes.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HTTPD=${HTTPD:-/usr/sbin/apache2}
MODDIR=${MODDIR:-/usr/lib/apache2/modules}

usage() {
    echo "usage: $0 start|stop|graceful|restart|conf|pid DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# Remember the settings of `start` so that stop/graceful/restart act on
# the same configuration.
if [ "$CMD" = start ] || [ "$CMD" = conf ]; then
    MPM=${MPM:-event}
    PORT=${PORT:-8090}
    MODULE_SO=${MODULE_SO:-$ROOT/.libs/mod_conditional.so}
    if [ -z "${MODULE:-}" ]; then
        if [ -f "$MODULE_SO" ]; then MODULE=1; else MODULE=0; fi
    fi
    STORE=${STORE:-$DIR/store/conditional.db}
    DATA=${DATA:-$DIR/data}
    LEASE=${LEASE:-60}
    LOCKWAIT=${LOCKWAIT:-10}
    REQUIRE=${REQUIRE:-0}
    ACCESSLOG=${ACCESSLOG:-1}
    STATUS=${STATUS:-0}
    DBD=${DBD:-}
    INDEX=${INDEX:-0}
    QUICK_PORT=${QUICK_PORT:-}
    FLOOR_PORT=${FLOOR_PORT:-}
    cat >"$DIR/sandbox.env" <<EOF
MPM=$MPM
PORT=$PORT
MODULE=$MODULE
MODULE_SO=$MODULE_SO
STORE=$STORE
DATA=$DATA
LEASE=$LEASE
LOCKWAIT=$LOCKWAIT
REQUIRE=$REQUIRE
ACCESSLOG=$ACCESSLOG
STATUS=$STATUS
DBD="$DBD"
INDEX=$INDEX
QUICK_PORT=$QUICK_PORT
FLOOR_PORT=$FLOOR_PORT
EOF
elif [ -f "$DIR/sandbox.env" ]; then
    . "$DIR/sandbox.env"
else
    echo "$0: no sandbox in $DIR" >&2
    exit 1
fi

case $MPM in
    prefork|event) ;;
    *) echo "$0: MPM must be prefork or event" >&2; exit 2 ;;
esac

if [ "$(id -u)" = 0 ]; then
    RUNUSER=www-data
else
    RUNUSER=
fi

write_conf() {
    if [ -n "$DBD" ]; then STORE_SPEC=dbd; else STORE_SPEC=sqlite:$STORE; fi
    mkdir -p "$DIR/logs" "$DIR/run" "$DIR/cgi-bin" "$DIR/htdocs/static" \
             "$DATA/docs" "$(dirname "$STORE")"
    cp "$ROOT/t/cgi-bin/docs.cgi" "$DIR/cgi-bin/docs.cgi"
    cp "$ROOT/build/bench/selfetag.cgi" "$DIR/cgi-bin/selfetag.cgi"
    chmod 755 "$DIR/cgi-bin/docs.cgi" "$DIR/cgi-bin/selfetag.cgi"
    printf '{"name":"static","rev":1,"data":{}}\n' \
        >"$DIR/htdocs/static/doc.json"
    if [ -n "$RUNUSER" ]; then
        # The children write the documents and the store.
        chown -R "$RUNUSER:$RUNUSER" "$DATA" "$(dirname "$STORE")"
    fi

    {
        echo "# Generated by build/sandbox.sh; do not edit."
        echo "ServerRoot \"$DIR\""
        echo "DefaultRuntimeDir \"$DIR/run\""
        echo "PidFile \"$DIR/run/httpd.pid\""
        echo "ScoreBoardFile \"$DIR/run/scoreboard\""
        echo "Mutex file:$DIR/run default"
        echo "ErrorLog \"$DIR/logs/error.log\""
        echo "LogLevel warn"
        echo "Listen 127.0.0.1:$PORT"
        echo "ServerName localhost:$PORT"
        echo "ServerTokens Prod"
        echo "Timeout 60"
        echo "KeepAlive On"
        echo "MaxKeepAliveRequests 0"
        echo "KeepAliveTimeout 5"
        if [ -n "$RUNUSER" ]; then
            echo "User $RUNUSER"
            echo "Group $RUNUSER"
        fi
        echo
        echo "LoadModule mpm_${MPM}_module $MODDIR/mod_mpm_${MPM}.so"
        for m in authz_core authz_host alias env headers setenvif \
                 proxy proxy_http lua status; do
            echo "LoadModule ${m}_module $MODDIR/mod_$m.so"
        done
        if [ "$MPM" = prefork ]; then
            echo "LoadModule cgi_module $MODDIR/mod_cgi.so"
        else
            echo "LoadModule cgid_module $MODDIR/mod_cgid.so"
            echo "ScriptSock \"$DIR/run/cgisock\""
        fi
        if [ -n "$DBD" ]; then
            echo "LoadModule dbd_module $MODDIR/mod_dbd.so"
            echo "DBDriver pgsql"
            echo "DBDParams \"$DBD\""
            echo "DBDMin 0"
            echo "DBDKeep 8"
            echo "DBDMax 16"
        fi
        if [ "$MODULE" = 1 ]; then
            echo "LoadModule conditional_module \"$MODULE_SO\""
        fi
        echo
        # Enough workers for 64 clients whose requests may each hold a
        # worker for a slow CGI, plus /proxy/ requests that take two.
        if [ "$MPM" = prefork ]; then
            cat <<EOF
StartServers 48
MinSpareServers 48
MaxSpareServers 160
ServerLimit 200
MaxRequestWorkers 200
MaxConnectionsPerChild 0
EOF
        else
            cat <<EOF
StartServers 2
ServerLimit 8
ThreadLimit 64
ThreadsPerChild 64
MinSpareThreads 64
MaxSpareThreads 512
MaxRequestWorkers 512
MaxConnectionsPerChild 0
EOF
        fi
        echo
        if [ "$ACCESSLOG" = 1 ]; then
            echo "LogFormat \"%h %t \\\"%r\\\" %>s %b %Dus pid=%P \\\"%{conditional}n\\\"\" sandbox"
            echo "CustomLog \"$DIR/logs/access.log\" sandbox"
        fi
        cat <<EOF

<IfModule conditional_module>
    ConditionalStore $STORE_SPEC
    ConditionalLeaseTime $LEASE
</IfModule>

<Directory />
    AllowOverride None
    Require all denied
</Directory>
DocumentRoot "$DIR/htdocs"
<Directory "$DIR/htdocs">
    Require all granted
</Directory>
<Directory "$DIR/cgi-bin">
    Options +ExecCGI
    Require all granted
</Directory>

# The document API: PATH_INFO /docs/NAME, JSON files in DOCS_DATA/docs.
SetEnv DOCS_DATA "$DATA"
ScriptAlias /api/ "$DIR/cgi-bin/docs.cgi/"
ScriptAlias /raw/ "$DIR/cgi-bin/docs.cgi/"
ScriptAlias /selfetag/ "$DIR/cgi-bin/selfetag.cgi/"
<Location /api/>
    <IfModule conditional_module>
        Conditional On
        ConditionalLockWait $LOCKWAIT
        ConditionalRequire $( [ "$REQUIRE" = 1 ] && echo On || echo Off )
    </IfModule>
</Location>

ProxyPass /proxy/ http://127.0.0.1:$PORT/raw/
<Location /proxy/>
    <IfModule conditional_module>
        Conditional On
        ConditionalLockWait $LOCKWAIT
    </IfModule>
</Location>

# A proxy that gives up after 1 s while its backend goes on: the proxy
# answers 502 for a write the backend may still complete. (Its own backend
# URL, /raw1/ = /raw/, so that it gets a worker of its own and the timeout
# is not shared with /proxy/.)
ScriptAlias /raw1/ "$DIR/cgi-bin/docs.cgi/"
ProxyPass /proxy1/ http://127.0.0.1:$PORT/raw1/ timeout=1
<Location /proxy1/>
    <IfModule conditional_module>
        Conditional On
    </IfModule>
</Location>

Alias /static/ "$DIR/htdocs/static/"
<Location /static/>
    FileETag MTime Size
    ForceType application/json
</Location>

LuaScope thread
LuaCodeCache stat
LuaMapHandler "^/lua(raw)?/" "$ROOT/build/bench/docs.lua" handle
<Location /lua/>
    <IfModule conditional_module>
        Conditional On
        ConditionalLockWait $LOCKWAIT
    </IfModule>
</Location>
# The same sections as /lua/, so that /lua/ against /luaraw/ compares the
# module and not one more <Location> to walk and merge: a user turns the
# module on in the section that already configures the API.
<Location /luaraw/>
    <IfModule conditional_module>
        Conditional Off
    </IfModule>
</Location>
EOF
        if [ "$INDEX" = 1 ]; then
            # Only / itself: mod_dir and mod_mime stay unloaded, so the
            # benchmark's requests walk the same hooks as without the page.
            cat <<EOF

AliasMatch "^/\$" "$DIR/htdocs/index.html"
<LocationMatch "^/\$">
    ForceType "text/html; charset=utf-8"
</LocationMatch>
EOF
        fi
        if [ -n "$QUICK_PORT" ] && [ "$MODULE" = 1 ]; then
            # Inherits every location above; only the phase that answers
            # a revalidation differs.
            cat <<EOF

Listen 127.0.0.1:$QUICK_PORT
<VirtualHost 127.0.0.1:$QUICK_PORT>
    ServerName localhost:$QUICK_PORT
    ConditionalQuickHandler On
</VirtualHost>
EOF
        fi
        if [ -n "$FLOOR_PORT" ]; then
            cat <<EOF

Listen 127.0.0.1:$FLOOR_PORT
<VirtualHost 127.0.0.1:$FLOOR_PORT>
    ServerName localhost:$FLOOR_PORT
    LuaQuickHandler "$ROOT/build/bench/quick304.lua" handle
</VirtualHost>
EOF
        fi
        if [ "$STATUS" = 1 ]; then
            cat <<EOF

ExtendedStatus On
<Location /server-status>
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
EOF
        fi
    } >"$DIR/httpd.conf"
}

parent_pid() {
    cat "$DIR/run/httpd.pid" 2>/dev/null || true
}

alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

wait_ready() {
    i=0
    while [ $i -lt 100 ]; do
        if curl -s -o /dev/null --max-time 2 \
            "http://127.0.0.1:$PORT/static/doc.json"; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "$0: httpd in $DIR did not answer; see $DIR/logs/error.log" >&2
    tail -n 20 "$DIR/logs/error.log" >&2 || true
    return 1
}

httpd() {
    "$HTTPD" -d "$DIR" -f "$DIR/httpd.conf" "$@"
}

case $CMD in
    conf)
        write_conf
        httpd -t
        ;;
    start)
        if alive "$(parent_pid)"; then
            echo "$0: already running in $DIR (pid $(parent_pid))" >&2
            exit 1
        fi
        write_conf
        httpd -k start
        wait_ready
        ;;
    stop)
        pid=$(parent_pid)
        if ! alive "$pid"; then
            exit 0
        fi
        httpd -k stop || kill -TERM "$pid" 2>/dev/null || true
        i=0
        while alive "$pid" && [ $i -lt 150 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if alive "$pid"; then
            echo "$0: httpd $pid did not stop; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        ;;
    graceful|restart)
        httpd -k "$CMD"
        sleep 0.5
        wait_ready
        ;;
    pid)
        parent_pid
        ;;
    *)
        usage
        ;;
esac
