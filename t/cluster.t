# Several nodes, one truth: three httpd nodes (127.0.0.2-4, one port, one
# ServerName, as behind a load balancer) share one PostgreSQL through
# "ConditionalStore dbd" and mod_dbd. This test starts all of them itself
# (PostgreSQL with initdb/pg_ctl on a Unix socket in a temporary directory,
# fsync off) and stops every one at the end; the Apache::Test server is not
# used. The backend is the same legacy CGI with one data directory.
#
#   - ETags are identical on every node; a tag from one node gives 304 on
#     another and a stale one 412 on a third; paths that are not UTF-8 are
#     keys of their own
#   - read-modify-write clients spread over random nodes lose no update
#     (tools/stress.pl --nodes), while PostgreSQL is restarted under them
#     with -m fast and then -m immediate: service comes back without a
#     restart of httpd, and no statement is ever missing on a new session
#   - kill -9 of the child running a write: its claim ends by its lease
#     (the database's clock) and the version moves
#   - PostgreSQL frozen (SIGSTOP): writes get 503 + Retry-After and reads
#     pass through untagged, each within a bounded time, and the backend
#     never sees such a write; after SIGCONT tags come back
#   - PostgreSQL stopped: writes get 503 + Retry-After on a node that knew
#     the store and on one that never reached it; a node started while
#     PostgreSQL is down tags once it is up again
#   - a node whose clock is 5 minutes ahead (libfaketime) waits for another
#     node's live claim: leases are judged by the database's clock
#   - conditionalctl reads and bumps the shared store
#   - a write longer than its lease keeps its claim (renewal through the
#     dbd store); a write invalidates its parent on every node
#   - server-status on every node names the shared store by the identity
#     in the tags, and counts what that node decided
#   - one httpd, two virtual hosts with DBDParams of their own: each has
#     its own store (its database's identity in its tags); one of them with
#     DBDMax 1 still writes while a slow write of its own is in its backend
#     (a connection is borrowed per store call, never held for a request)
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(plan ok skip need need_cgi);
use Apache::TestUtil qw(t_cmp t_debug);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use HTTP::Date ();
use LWP::UserAgent;
use POSIX ();
use Time::HiRes qw(time sleep);

my $PG = $ENV{PG_BIN} || '/usr/lib/postgresql/15/bin';
my @IPS = qw(127.0.0.2 127.0.0.3 127.0.0.4);
my $LEASE = 6;

plan tests => 59, need need_cgi,
    { "PostgreSQL server binaries in $PG" => -x "$PG/initdb" },
    { 'mod_dbd' => -e modules_dir() . '/mod_dbd.so' };

my $vars = Apache::Test::vars();
my $top = $vars->{top_dir};
my $httpd = $vars->{httpd};
my $dir = tempdir('cond-cluster-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{COND_KEEP});
t_debug("cluster in $dir");
my $port = free_port();
my @started;          # pid files of the httpd nodes we started
my $pg_up = 0;

sub modules_dir {
    my $apxs = Apache::Test::vars('apxs') || 'apxs';
    my $d = `$apxs -q LIBEXECDIR 2>/dev/null`;
    chomp $d;
    return $d || '/usr/lib/apache2/modules';
}

sub free_port {
    for my $try (1 .. 50) {
        my $p = 20000 + int rand 20000;
        my $ok = 1;
        for my $ip (@IPS) {
            my $s = IO::Socket::INET->new(LocalAddr => $ip, LocalPort => $p,
                                          Proto => 'tcp', ReuseAddr => 1,
                                          Listen => 1);
            $ok = 0, last unless $s;
            close $s;
        }
        return $p if $ok;
    }
    die "no free port on @IPS";
}

sub sh {
    my ($cmd) = @_;
    t_debug($cmd);
    my $out = `$cmd 2>&1`;
    t_debug($out) if $out;
    return $? == 0;
}

sub pg_ctl {
    my ($what) = @_;
    return sh("$PG/pg_ctl -D $dir/pg -l $dir/pg.log -w -t 60 -o \"-k $dir "
              . "-c listen_addresses='' -c fsync=off -c max_connections=150 "
              . "-c shared_preload_libraries=pg_stat_statements\" "
              . $what);
}

sub postmaster_pid {
    open my $fh, '<', "$dir/pg/postmaster.pid" or return 0;
    my $pid = <$fh>;
    chomp $pid;
    return $pid;
}

# ---------------------------------------------------------------- nodes

# Node $n's configuration; $listen and $tail (appended, so its MPM
# settings win) for a node of another shape.
sub node_conf {
    my ($n, $listen, $tail) = @_;
    $listen //= "$IPS[$n]:$port";
    $tail //= '';
    my $root = "$dir/node$n";
    my $mods = modules_dir();
    # The error log outlives the temporary directory: what a node logged
    # stays readable, and under SANITIZE=1 build/run-tests.sh looks in it
    # for sanitizer reports (UBSan writes to httpd's stderr).
    my $logs = $vars->{t_logs};
    # COND_CLUSTER_CONTROL=1: each node on an SQLite store of its own, the
    # situation this test exists to rule out (cross-node checks must fail)
    my $store = $ENV{COND_CLUSTER_CONTROL} ? "sqlite:$root/own.db" : 'dbd';
    mkdir $root;
    open my $fh, '>', "$root/httpd.conf" or die "$root/httpd.conf: $!";
    print $fh <<"EOF";
ServerRoot "$root"
PidFile "$root/httpd.pid"
Listen $listen
# One name and port on every node: the default key is the site plus the
# path, so the same configuration gives the same keys everywhere.
ServerName cluster.test:$port
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule alias_module $mods/mod_alias.so
LoadModule env_module $mods/mod_env.so
LoadModule cgid_module $mods/mod_cgid.so
LoadModule dbd_module $mods/mod_dbd.so
LoadModule status_module $mods/mod_status.so
LoadModule conditional_module "$top/.libs/mod_conditional.so"
StartServers 2
ServerLimit 4
ThreadsPerChild 10
MinSpareThreads 10
MaxSpareThreads 40
MaxRequestWorkers 40
ErrorLog "$logs/cluster-node$n.error_log"
LogLevel info conditional:debug
LogFormat "%m %U%q %>s %{conditional}n pid=%P" conditional
CustomLog "$root/access_log" conditional
ScriptSock "$root/cgisock"
SetEnv DOCS_DATA "$dir/data"
DBDriver pgsql
DBDParams "host=$dir dbname=cond user=cond connect_timeout=2"
DBDMin 0
DBDKeep 4
DBDMax 12
ConditionalStore $store
ConditionalLeaseTime $LEASE
<Directory "$top/t/cgi-bin">
    Options +ExecCGI
    Require all granted
</Directory>
ScriptAlias /raw/ "$top/t/cgi-bin/docs.cgi/"
ScriptAlias /api/ "$top/t/cgi-bin/docs.cgi/"
<Location /server-status>
    SetHandler server-status
</Location>
<Location /api/>
    Conditional On
    ConditionalLockWait 1
</Location>
$tail
EOF
    close $fh;
    return "$root/httpd.conf";
}

sub node_start {
    my ($n, $ip, $p, $tail) = @_;
    $ip //= $IPS[$n];
    $p //= $port;
    my $conf = node_conf($n, "$ip:$p", $tail);
    my $ok = sh("$httpd -f $conf -k start");
    push @started, "$dir/node$n/httpd.pid";
    # up when it answers
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => $ip, PeerPort => $p);
        return $ok if $s;
        sleep 0.1;
    }
    return 0;
}

sub stop_all {
    for my $pidfile (@started) {
        open my $fh, '<', $pidfile or next;
        my $pid = <$fh>;
        chomp $pid;
        kill 'TERM', $pid if $pid;
        for (1 .. 100) {
            last unless kill 0, $pid;
            sleep 0.1;
        }
    }
    @started = ();
    if ($pg_up) {
        my $pm = postmaster_pid();
        sh("kill -CONT $pm; pkill -CONT -P $pm") if $pm;
        pg_ctl('stop -m immediate');
        $pg_up = 0;
    }
}
END { stop_all() }
$SIG{INT} = $SIG{TERM} = sub { stop_all(); exit 1 };

my $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 0);

# The module's tag on a response ("<store identity>-<version>"), or undef:
# a pass-through keeps the backend's own.
sub module_tag {
    my ($res) = @_;
    my $t = $res->header('ETag') // '';
    return $t =~ /^"[0-9a-f]{16}-[0-9a-f]+"$/ ? $t : undef;
}

# A boolean check with its name in the output, as t_cmp gives.
sub named {
    my ($ok, $name) = @_;
    print '# ', ($ok ? 'ok: ' : 'NOT ok: '), $name, "\n";
    return $ok ? 1 : 0;
}

sub req {
    my ($n, $method, $path, $hdrs, $body) = @_;
    my $r = HTTP::Request->new($method, "http://$IPS[$n]:$port$path",
                               [ %{ $hdrs || {} } ], $body);
    my $t0 = time;
    my $res = $ua->request($r);
    $res->{took} = time - $t0;
    return $res;
}

# ---------------------------------------------------------------- start

mkdir "$dir/data";
ok named(sh("$PG/initdb -D $dir/pg -U cond -A trust --no-sync") && pg_ctl('start')
   && sh("$PG/createdb -h $dir -U cond cond"),
         'PostgreSQL started');
$pg_up = 1;
ok named(node_start(0) && node_start(1) && node_start(2),
         'three httpd nodes up');

# ---------------------------------------------------------------- tags

req(0, 'PUT', '/raw/docs/shared', {}, '{"v":1}');
my $r0 = req(0, 'GET', '/api/docs/shared');
my $r1 = req(1, 'GET', '/api/docs/shared');
my $r2 = req(2, 'GET', '/api/docs/shared');
my $tag = $r0->header('ETag') // '';
t_debug("tags: $tag / " . ($r1->header('ETag') // '-') . ' / '
        . ($r2->header('ETag') // '-'));
ok named($tag =~ /^"[0-9a-f]{16}-[0-9a-f]+"$/,
         'node 1 tags a 200');
ok named($tag ne '' && ($r1->header('ETag') // '') eq $tag
   && ($r2->header('ETag') // '') eq $tag,
         'the same ETag on every node');
ok t_cmp(req(1, 'GET', '/api/docs/shared', { 'If-None-Match' => $tag })->code,
         304, "node 1's tag: 304 on node 2");

my $w = req(1, 'PUT', '/api/docs/shared', { 'If-Match' => $tag },
            '{"v":2}');
ok t_cmp($w->code, 200, 'write through node 2 with the current tag');
my $tag2 = $w->header('ETag') // '';
ok named($tag2 ne '' && $tag2 ne $tag,
         'it carries a new tag');
ok t_cmp(req(2, 'PUT', '/api/docs/shared', { 'If-Match' => $tag },
             '{"v":3}')->code, 412, 'the old tag on node 3: 412');
my $g = req(0, 'GET', '/api/docs/shared', { 'If-None-Match' => $tag });
ok named($g->code == 200 && ($g->header('ETag') // '') eq $tag2,
         'the old tag on node 1: 200 with the new tag');
ok t_cmp(req(2, 'GET', '/api/docs/shared', { 'If-None-Match' => $tag2 })
         ->code, 304, 'the new tag on node 3: 304');

# The round trips of a write, counted by PostgreSQL (pg_stat_statements
# counts a statement as it ends, before its answer is sent): with the
# current tag one statement before the backend runs - the claim, which
# reads the key in the same statement - and the commit after it; a 412
# (a stale tag, If-None-Match: * on a present key) one statement and not
# one WAL record (nothing claimed).
sub psql_number {
    my ($sql) = @_;
    my $out = `$PG/psql -X -At -h $dir -U cond -d cond -c "$sql" 2>&1`;
    t_debug("$sql: $out");
    my @lines = split /\n/, $out;
    return $? == 0 && @lines && $lines[-1] =~ /^(\d+)$/ ? $1 : -1;
}
sub store_statements {
    my ($where) = @_;
    return psql_number("SELECT coalesce(sum(calls), 0) FROM "
        . "pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
        . "WHERE datname = 'cond') AND query LIKE '%cond_resources%' "
        . "AND query NOT LIKE '%pg_stat_statements%' $where");
}
my $N = 5;
my $now_tag = $tag2;
my ($wrote, $stale) = (0, 0);
psql_number('CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT 1');
psql_number('SELECT 1 FROM pg_stat_statements_reset()');
for my $i (1 .. $N) {
    my $res = req($i % 3, 'PUT', '/api/docs/trips', $i == 1 ? {}
                  : { 'If-Match' => $now_tag }, "{\"v\":$i}");
    $now_tag = $res->header('ETag') // '';
}
# the first PUT made the key: count from here
psql_number('SELECT 1 FROM pg_stat_statements_reset()');
for my $i (1 .. $N) {
    my $res = req($i % 3, 'PUT', '/api/docs/trips', { 'If-Match' => $now_tag },
                  "{\"v\":$i}");
    $now_tag = $res->header('ETag') // '';
    $wrote++ if $res->code == 200;
}
# before the backend: neither a commit (nextval) nor a release
my $claims = store_statements("AND query NOT LIKE '%nextval%' "
                              . "AND query NOT LIKE '%claim_owner = NULL%'");
my $all = store_statements('');
t_debug("$N writes with the current tag: $claims statements before the "
        . "backend, $all in all");
ok named($wrote == $N && $claims == $N && $all >= 2 * $N
         && $all <= 3 * $N,
         'a write with the current tag: one statement before its backend');
# A list of tags (a client that kept an older one too): the claim is
# sent for the newest version the list names, so the same two statements.
psql_number('SELECT 1 FROM pg_stat_statements_reset()');
$wrote = 0;
for my $i (1 .. $N) {
    my $res = req($i % 3, 'PUT', '/api/docs/trips',
                  { 'If-Match' => "$tag2, $now_tag" }, "{\"v\":$i}");
    $now_tag = $res->header('ETag') // '';
    $wrote++ if $res->code == 200;
}
$all = store_statements('');
t_debug("$N writes with a list of an old and the current tag: $all "
        . "statements");
ok named($wrote == $N && $all == 2 * $N,
         'a write with a list of tags: two statements');
psql_number('SELECT 1 FROM pg_stat_statements_reset()');
for my $i (1 .. $N) {
    $stale++ if req($i % 3, 'PUT', '/api/docs/trips',
                    { 'If-Match' => $tag2 }, '{"v":0}')->code == 412;
    $stale++ if req($i % 3, 'PUT', '/api/docs/trips',
                    { 'If-Match' => "$tag, $tag2" }, '{"v":0}')->code
                 == 412;
    # create-only on a present key: no version to expect, nothing claimed
    $stale++ if req($i % 3, 'PUT', '/api/docs/trips',
                    { 'If-None-Match' => '*' }, '{"v":0}')->code == 412;
}
$all = store_statements('');
my $wal = psql_number("SELECT coalesce(sum(wal_records), 0) FROM "
                      . "pg_stat_statements WHERE dbid = (SELECT oid FROM "
                      . "pg_database WHERE datname = 'cond') AND query NOT "
                      . "LIKE '%pg_stat_statements%'");
t_debug("$N writes with a stale tag, $N with a stale list, $N with "
        . "If-None-Match: *: $all "
        . "statements, $wal WAL records");
ok named($stale == 3 * $N && $all == 3 * $N && $wal == 0,
         'a 412 (stale tag, stale list, If-None-Match: *): one statement, '
         . 'nothing written');

# A create: an unknown key written with no precondition is one statement
# before its backend - the claim, which inserts the claimed placeholder
# row in the same statement - and the commit. With If-None-Match: * the
# backend is asked first whether it has the resource (HEAD, outside the
# store), which takes the one read that found the key unknown; then the
# same single claim statement and the commit. Over a resource deleted
# through the module the store knows there is none: two statements.
# $N PUTs to PREFIX1..PREFIX$N with the given headers, the statistics
# reset before: each must be made (200, 201), and the store must have run
# $per statements for each.
sub writes_cost {
    my ($prefix, $headers, $per, $name) = @_;
    my $made = 0;
    psql_number('SELECT 1 FROM pg_stat_statements_reset()');
    for my $i (1 .. $N) {
        $made++ if req($i % 3, 'PUT', "$prefix$i", $headers, "{\"v\":$i}")
                   ->code =~ /^20[01]$/;
    }
    my $all = store_statements('');
    t_debug("$N writes to $prefix: $made made, $all statements");
    ok named($made == $N && $all == $per * $N, $name);
}
# $N PUTs to PREFIX1..PREFIX$N with the given headers, the statistics
# reset before: each must be refused with 412 in one statement.
sub refusals_cost {
    my ($prefix, $headers, $name) = @_;
    psql_number('SELECT 1 FROM pg_stat_statements_reset()');
    my $refused = grep {
        req($_ % 3, 'PUT', "$prefix$_", $headers, '{"v":0}')->code == 412
    } 1 .. $N;
    my $all = store_statements('');
    t_debug("$N writes to $prefix: $refused refused, $all statements");
    ok named($refused == $N && $all == $N, $name);
}
writes_cost('/api/docs/made', {}, 2,
            'a create without a precondition: two statements');
writes_cost('/api/docs/only', { 'If-None-Match' => '*' }, 3,
            'a create with If-None-Match: *: a read, the probe, two '
            . 'statements');
for my $i (1 .. $N) {
    req($i % 3, 'DELETE', "/api/docs/only$i");
}
writes_cost('/api/docs/only', { 'If-None-Match' => '*' }, 2,
            'a create with If-None-Match: * over a deleted resource: two '
            . 'statements');

# If-Match: * on a resource the store knows: the claim, which takes only a
# key with a resource, and the commit. On a key the store never saw (made
# behind the module's back) the backend is asked first, after the one read
# that found the key unknown; then the claim that inserts and the commit.
# On a resource deleted through the module: a 412, one statement.
writes_cost('/api/docs/made', { 'If-Match' => '*' }, 2,
            'If-Match: * on a present key: two statements');
for my $i (1 .. $N) {
    req($i % 3, 'PUT', "/raw/docs/behind$i", {}, '{"v":0}');
}
writes_cost('/api/docs/behind', { 'If-Match' => '*' }, 3,
            'If-Match: * on a key the store never saw: a read, the probe, '
            . 'two statements');
for my $i (1 .. $N) {
    req($i % 3, 'DELETE', "/api/docs/made$i");
}
refusals_cost('/api/docs/made', { 'If-Match' => '*' },
              'If-Match: * on a deleted resource: a 412, one statement');

# If-Unmodified-Since alone: the claim, which takes a key not modified
# since the date (or unknown: inserted claimed), and the commit; on a key
# modified since, a 412 in one statement.
my $later = HTTP::Date::time2str(time + 3600);
writes_cost('/api/docs/behind', { 'If-Unmodified-Since' => $later }, 2,
            'If-Unmodified-Since on a key not modified since: two '
            . 'statements');
writes_cost('/api/docs/since', { 'If-Unmodified-Since' => $later }, 2,
            'If-Unmodified-Since on a key the store never saw: two '
            . 'statements');
refusals_cost('/api/docs/behind',
              { 'If-Unmodified-Since' => HTTP::Date::time2str(time - 3600) },
              'If-Unmodified-Since on a key modified since: a 412, one '
              . 'statement');

# Keys are bytes: two paths that differ only in a byte that is not UTF-8
# are two keys, tagged alike on every node.
req(0, 'PUT', '/raw/docs/b%FF', {}, '{"v":1}');
req(0, 'PUT', '/raw/docs/b%FE', {}, '{"v":1}');
my $bff = module_tag(req(0, 'GET', '/api/docs/b%FF')) // '';
my $bfe = module_tag(req(1, 'GET', '/api/docs/b%FE')) // '';
t_debug("not UTF-8: $bff / $bfe");
ok named($bff ne '' && $bfe ne '' && $bff ne $bfe
         && (module_tag(req(1, 'GET', '/api/docs/b%FF')) // '') eq $bff
         && (module_tag(req(2, 'GET', '/api/docs/b%FE')) // '') eq $bfe,
         'paths that are not UTF-8: tagged, apart, alike on every node');
ok t_cmp(req(2, 'PUT', '/api/docs/b%FF', { 'If-Match' => $bff }, '{"v":2}')
         ->code, 200, "... and node 1's tag of one takes a write on node 3");

# conditionalctl on the shared store: a bump from the shell is seen by
# every node (the backend's data changed out of band).
my $ctl = "$top/tools/conditionalctl -s 'dbd:host=$dir dbname=cond user=cond'";
my $key = "cluster.test:$port/api/docs/shared";
ok named(sh("$ctl show $key | grep -q $tag2") && sh("$ctl bump $key"),
         'conditionalctl show and bump on the shared store');
ok t_cmp(req(0, 'GET', '/api/docs/shared', { 'If-None-Match' => $tag2 })
         ->code, 200, 'after the bump the old tag no longer matches');

# ---------------------------------------------------------------- kill -9

# A slow write (the backend sleeps) on node 1; its child is killed. The
# claim stays until its lease runs out by the database's clock, then the
# next writer breaks it and the version moves past every tag before it.
req(0, 'PUT', '/raw/docs/killed', {}, '{"v":1}');
my $kt = req(0, 'GET', '/api/docs/killed')->header('ETag') // '';
my $pid = fork;
if (!$pid) {
    req(0, 'PUT', '/api/docs/killed?sleep=30', { 'If-Match' => $kt },
        '{"v":2}');
    POSIX::_exit(0);         # not exit: END would stop every server
}
sleep 1.5;
my $victim = claim_holder_pid();
t_debug("child holding the claim: " . ($victim // 'none'));
ok named($victim && kill('KILL', $victim),
         'kill -9 the child running the write');
waitpid $pid, 0;
my $busy = req(1, 'PUT', '/api/docs/killed', { 'If-Match' => $kt },
               '{"v":3}');
ok t_cmp($busy->code, 409, 'while the lease runs: 409 on another node');
sleep $LEASE + 0.5;
my $after = req(2, 'GET', '/api/docs/killed', { 'If-None-Match' => $kt });
ok named($after->code == 200 && ($after->header('ETag') // $kt) ne $kt,
         'after the lease: the claim was broken and the version moved');

# The child of node 1 serving the slow write: the one holding an
# established connection on our port (the CGI itself runs under mod_cgid's
# daemon, not under the child).
sub claim_holder_pid {
    open my $fh, '<', "$dir/node0/httpd.pid" or return undef;
    my $parent = <$fh>;
    chomp $parent;
    for my $k (split ' ', `pgrep -P $parent`) {
        return $k if connection_of($k);
    }
    return undef;
}

# Does child $k hold an established TCP connection to our port?
sub connection_of {
    my ($k) = @_;
    my %inodes;
    for my $fd (glob("/proc/$k/fd/*")) {
        my $l = readlink($fd) // next;
        $inodes{$1} = 1 if $l =~ /^socket:\[(\d+)\]/;
    }
    my $hexport = sprintf '%04X', $port;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (<$fh>) {
        my @f = split ' ';
        next unless @f > 9;
        # local address is ours, state 01 (ESTABLISHED)
        return 1 if $f[1] =~ /:$hexport$/ && $f[3] eq '01' && $inodes{$f[9]};
    }
    return 0;
}

# ---------------------------------------------------------------- renewal

# A write that runs longer than its lease keeps its claim (renewed by its
# child through the dbd store): a writer on another node waits and gets
# 409, never breaks in; when the slow write is done the version moves.
req(0, 'PUT', '/raw/docs/slow', {}, '{"v":1}');
my $st = req(0, 'GET', '/api/docs/slow')->header('ETag') // '';
my $spid = fork;
if (!$spid) {
    req(0, 'PUT', '/api/docs/slow?sleep=' . ($LEASE + 3),
        { 'If-Match' => $st }, '{"v":2}');
    POSIX::_exit(0);
}
sleep $LEASE + 1;
my $during = req(2, 'PUT', '/api/docs/slow', { 'If-Match' => $st },
                 '{"v":3}');
ok t_cmp($during->code, 409,
         'a write past its lease is still claimed (renewed): 409 elsewhere');
waitpid $spid, 0;
my $done = req(1, 'GET', '/api/docs/slow', { 'If-None-Match' => $st });
ok named($done->code == 200 && module_tag($done)
         && module_tag($done) ne $st,
         '... and when it is done the version has moved');

# Invalidation: a write to /api/docs/shared on one node bumps its parent
# /api/docs, seen on every node.
my $it = module_tag(req(0, 'GET', '/api/docs')) // '';
my $cur = module_tag(req(0, 'GET', '/api/docs/shared')) // '';
req(1, 'PUT', '/api/docs/shared', { 'If-Match' => $cur }, '{"v":5}');
ok named($it ne ''
         && req(2, 'GET', '/api/docs', { 'If-None-Match' => $it })->code
            == 200,
         'a write on node 2 invalidated the parent for node 3');

# ---------------------------------------------------------------- races

# Read-modify-write clients over random nodes, PostgreSQL restarted under
# them (-m fast, then -m immediate): no acknowledged update is lost.
sub stress_run {
    my ($seconds, $fault) = @_;
    my $nodes = join ',', map { "$_:$port" } @IPS;
    my @cmd = ($^X, "$top/tools/stress.pl", '--timeout', 30,
               '--url', "http://$IPS[0]:$port/api/", '--nodes', $nodes,
               '--clients', 12, '--keys', 4, '--hot', 2,
               '--seconds', $seconds, '--reads', 0.2, '--max-retries', 2000);
    t_debug("@cmd");
    my $kid = open my $fh, '-|', @cmd or die "stress.pl: $!";
    if ($fault) {
        sleep $seconds / 3;
        $fault->();
    }
    my $out = join '', <$fh>;
    close $fh;
    print "# stress.pl: $_\n" for split /\n/, $out;
    my %v = $out =~ /(\w+)=(\S+)/g;
    # ETags that named two revisions, apart from the backend's own
    # "backend" tag, which a read passed through while the store was down
    # still carries (the module's tags are what must never be stale)
    $v{stale_module_tags} = grep { !/^ETag "backend" came with/ }
                            grep { /came with/ } split /\n/, $out;
    return \%v;
}

my $s = stress_run(10, undef);
ok t_cmp($s->{verdict}, 'PASS', 'clients over three nodes: no lost update');

# After a fault, without a restart of httpd: every node tags again and
# takes a conditional write with the tag it gave.
sub service_back {
    for my $n (0 .. 2) {
        my $t = module_tag(tagged_get($n)) // return 0;
        my $w = req($n, 'PUT', '/api/docs/shared', { 'If-Match' => $t },
                    qq({"after":$n}));
        t_debug("node $n after the fault: " . $w->code);
        return 0 unless $w->code == 200;
    }
    return 1;
}

$s = stress_run(14, sub { pg_ctl('restart -m fast') });
ok t_cmp($s->{lost}, 0, 'pg_ctl restart -m fast mid-run: no lost update');
ok named($s->{errors} eq '0' && $s->{stale_module_tags} == 0
         && $s->{writes} > 0,
         '... no error, no stale tag of the module, writes went on');
ok named(service_back(), '... every node tags and writes again');

$s = stress_run(14, sub { pg_ctl('stop -m immediate'); sleep 1;
                         pg_ctl('start') });
ok t_cmp($s->{lost}, 0, 'stop -m immediate mid-run: no lost update');
ok named($s->{errors} eq '0' && $s->{stale_module_tags} == 0
         && $s->{writes} > 0,
         '... no error, no stale tag of the module, writes went on');
ok named(service_back(), '... every node tags and writes again');
ok named(!sh("grep -q 'prepared statement .* does not exist' $dir/pg.log"),
         'no statement was ever missing on a new session');

# ---------------------------------------------------------------- status

# mod_status on each node: the dbd store is shown usable, under the same
# identity as the tags every node hands out, and the node's own counters
# move with what it decided (node 2 answered the cross-node 304 above).
my ($ident) = (module_tag(req(0, 'GET', '/api/docs/shared')) // '')
              =~ /^"([0-9a-f]{16})-/;
my @pages = map { req($_, 'GET', '/server-status')->decoded_content // '' }
            0 .. 2;
ok named(defined $ident
         && 3 == grep({ /Store dbd for cluster\.test: identity \Q$ident\E/ }
                      @pages),
         'server-status on every node: the dbd store, with the tags\' identity');
my %auto = map { /^Conditional(\w+): (\d+)$/ ? ($1 => $2) : () }
           split /\n/, req(1, 'GET', '/server-status?auto')->decoded_content // '';
my $before304 = $auto{NotModified} // -1;
my $nm = req(1, 'GET', '/api/docs/shared',
             { 'If-None-Match' => module_tag(req(0, 'GET', '/api/docs/shared'))
                                  // '"none"' });
%auto = map { /^Conditional(\w+): (\d+)$/ ? ($1 => $2) : () }
        split /\n/, req(1, 'GET', '/server-status?auto')->decoded_content // '';
t_debug("NotModified $before304 -> " . ($auto{NotModified} // '-')
        . ', 304: ' . $nm->code);
ok named($nm->code == 304 && $before304 >= 0
         && ($auto{NotModified} // -1) == $before304 + 1,
         '... and ?auto counts a 304 given on the dbd store');

# ---------------------------------------------------------------- frozen

# The backend's own revision of a document (no module on /raw/).
sub raw_rev {
    my ($name) = @_;
    my ($rev) = (req(0, 'GET', "/raw/docs/$name")->decoded_content // '')
                =~ /"rev"\s*:\s*(\d+)/;
    return $rev // -1;
}

# A write refused because the store cannot be asked: 503 with Retry-After,
# and the backend never saw it.
sub refused_write {
    my ($res, $rev_before, $name) = @_;
    t_debug(sprintf '%d in %.1f s, Retry-After %s', $res->code, $res->{took},
            $res->header('Retry-After') // '-');
    return $res->code == 503
        && ($res->header('Retry-After') // '') =~ /^\d+$/
        && $res->{took} < 8 && raw_rev($name) == $rev_before;
}

my $ft = req(1, 'GET', '/api/docs/shared')->header('ETag') // '';
my $frev = raw_rev('shared');
my $pm = postmaster_pid();
sh("kill -STOP $pm; pkill -STOP -P $pm");
my $fw = req(0, 'PUT', '/api/docs/shared', { 'If-Match' => $ft }, '{"v":9}');
t_debug(sprintf 'frozen write: %d in %.1f s', $fw->code, $fw->{took});
ok named($fw->code == 503 && $fw->{took} < 8,
         'PostgreSQL frozen: a write gets 503 in bounded time');
ok named(refused_write($fw, $frev, 'shared'),
         '... with Retry-After, and the backend never saw it');
my $fr = req(2, 'GET', '/api/docs/shared');
t_debug(sprintf 'frozen read: %d in %.1f s', $fr->code, $fr->{took});
ok named($fr->code == 200 && !module_tag($fr) && $fr->{took} < 8,
         '... a read passes through untagged in bounded time');
sh("pkill -CONT -P $pm; kill -CONT $pm");
sleep 1;
ok named(module_tag(tagged_get(2)),
         'after SIGCONT: tagged again');

# ---------------------------------------------------------------- late

# A node whose children start while PostgreSQL is down learns the store's
# identity once it is back, without a restart.
stop_node(2);
my $dt = module_tag(req(0, 'GET', '/api/docs/shared')) // '';
my $drev = raw_rev('shared');
pg_ctl('stop -m fast');
ok named(refused_write(req(0, 'PUT', '/api/docs/shared', { 'If-Match' => $dt },
                           '{"v":10}'), $drev, 'shared'),
         'PostgreSQL down: a write on a node that knew the store gets 503 '
         . 'with Retry-After, and the backend never saw it');
ok named(node_start(2),
         'node 3 starts while PostgreSQL is down');
my $down = req(2, 'GET', '/api/docs/shared');
ok named($down->code == 200 && !module_tag($down),
         'its reads pass through untagged');
ok named(refused_write(req(2, 'PUT', '/api/docs/shared', { 'If-Match' => $dt },
                           '{"v":11}'), $drev, 'shared'),
         '... and its writes get 503 with Retry-After, never reaching the '
         . 'backend');
pg_ctl('start');
sleep 1.5;
my $late = tagged_get(2);
ok named(module_tag($late)
   && module_tag($late) eq (module_tag(req(0, 'GET', '/api/docs/shared'))
                            // ''),
         '... and it tags again, with the tag the other nodes give');

# ---------------------------------------------------------------- skew

# A node whose clock is five minutes ahead (libfaketime) must not take a
# live claim of another node for an expired one: leases are judged by the
# database's clock alone.
# Not under SANITIZE=1: httpd with both the ASan runtime and libfaketime
# preloaded hangs before it starts.
my $ft_lib = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';
if ($ENV{COND_ASAN_RUNTIME}) {
    skip('libfaketime and the ASan runtime do not start together', 0)
        for 1 .. 4;
}
else {
    clock_skew();
}

# ---------------------------------------------------------------- vhosts

# One more httpd (one child), two name-based virtual hosts that inherit
# ConditionalStore dbd (a) or name it (b), each with DBDParams of its own:
# each must get a store of its own, on its own database, never the main
# server's. Vhost a has DBDMax 1: a write there still goes through while a
# slow write of a's is in its backend, since no request keeps a connection
# (held, the second write would wait past the store's deadline: 503).
my $vport = free_port();
my $params = "host=$dir user=cond connect_timeout=2";
ok named(sh("$PG/createdb -h $dir -U cond conda")
         && sh("$PG/createdb -h $dir -U cond condb")
         && node_start(3, $IPS[0], $vport, <<"EOF"),
StartServers 1
ServerLimit 1
MinSpareThreads 1
MaxSpareThreads 10
MaxRequestWorkers 10
<VirtualHost $IPS[0]:$vport>
    ServerName a.test:$vport
    DBDParams "$params dbname=conda"
    DBDMin 0
    DBDKeep 1
    DBDMax 1
</VirtualHost>
<VirtualHost $IPS[0]:$vport>
    ServerName b.test:$vport
    DBDParams "$params dbname=condb"
    ConditionalStore dbd
</VirtualHost>
EOF
         'an httpd with two vhosts on two databases');

sub vreq {
    my ($host, $method, $path, $hdrs, $body) = @_;
    my $r = HTTP::Request->new($method, "http://$IPS[0]:$vport$path",
                               [ Host => "$host:$vport", %{ $hdrs || {} } ],
                               $body);
    my $t0 = time;
    my $res = $ua->request($r);
    $res->{took} = time - $t0;
    return $res;
}

sub store_id {
    my ($db) = @_;
    my $id = `$top/tools/conditionalctl -s 'dbd:$params dbname=$db' id 2>&1`;
    chomp $id;
    return $id;
}

req(0, 'PUT', '/raw/docs/va1', {}, '{"v":1}');
req(0, 'PUT', '/raw/docs/va2', {}, '{"v":1}');
my ($ida) = (module_tag(vreq('a.test', 'GET', '/api/docs/va1')) // '')
            =~ /^"([0-9a-f]{16})-/;
my ($idb) = (module_tag(vreq('b.test', 'GET', '/api/docs/va1')) // '')
            =~ /^"([0-9a-f]{16})-/;
t_debug('vhost identities: ' . ($ida // '-') . ' / ' . ($idb // '-')
        . '; stores conda, condb, cond: ' . join ' / ', map { store_id($_) }
        qw(conda condb cond));
ok named(defined $ida && defined $idb && $ida ne $idb
         && $ida eq store_id('conda') && $idb eq store_id('condb')
         && $ida ne store_id('cond'),
         "each vhost tags with its own database's store");

my $va1 = module_tag(vreq('a.test', 'GET', '/api/docs/va1')) // '';
my $va2 = module_tag(vreq('a.test', 'GET', '/api/docs/va2')) // '';
my $vpid = fork;
if (!$vpid) {
    vreq('a.test', 'PUT', '/api/docs/va1?sleep=5', { 'If-Match' => $va1 },
         '{"v":2}');
    POSIX::_exit(0);
}
sleep 1.5;
my $vw = vreq('a.test', 'PUT', '/api/docs/va2', { 'If-Match' => $va2 },
              '{"v":2}');
t_debug(sprintf 'second write: %d in %.1f s', $vw->code, $vw->{took});
ok t_cmp($vw->code, 200,
         'DBDMax 1: a write goes through while a slow write is in the '
         . 'backend');
waitpid $vpid, 0;
my $vdone = vreq('a.test', 'GET', '/api/docs/va1', { 'If-None-Match' => $va1 });
ok named($vdone->code == 200 && module_tag($vdone)
         && module_tag($vdone) ne $va1,
         '... and the slow write committed too');

sub clock_skew {
    stop_node(2);
    {
        local $ENV{LD_PRELOAD} = join ' ', grep { $_ } $ENV{LD_PRELOAD},
                                                  $ft_lib;
        local $ENV{FAKETIME} = '+5m';
        ok named(-e $ft_lib && node_start(2), 'node 3 restarted 5 min ahead');
    }
    my $skew = HTTP::Date::str2time(req(2, 'GET', '/api/docs/shared')
                                    ->header('Date') // '') // 0;
    ok named($skew - time > 240, sprintf('... its Date is %.0f s ahead',
                                         $skew - time));
    req(0, 'PUT', '/raw/docs/skew', {}, '{"v":1}');
    my $sk = req(0, 'GET', '/api/docs/skew')->header('ETag') // '';
    my $kpid = fork;
    if (!$kpid) {
        req(0, 'PUT', '/api/docs/skew?sleep=3', { 'If-Match' => $sk },
            '{"v":2}');
        POSIX::_exit(0);
    }
    sleep 1;
    my $ahead = req(2, 'PUT', '/api/docs/skew', { 'If-Match' => $sk },
                    '{"v":3}');
    ok t_cmp($ahead->code, 409,
             'a node ahead of the others waits for the live claim: 409');
    waitpid $kpid, 0;
    my $landed = module_tag(req(1, 'GET', '/api/docs/skew')) // '';
    ok named($landed ne '' && $landed ne $sk
             && $landed eq (module_tag(req(2, 'GET', '/api/docs/skew')) // ''),
             '... the slow write landed, and the node ahead tags as the '
             . 'others');
}

# GET /api/docs/shared on node $n until it comes back tagged (10 s at most).
sub tagged_get {
    my ($n) = @_;
    my $res;
    for (1 .. 20) {
        $res = req($n, 'GET', '/api/docs/shared');
        last if module_tag($res);
        sleep 0.5;
    }
    return $res;
}

sub stop_node {
    my ($n) = @_;
    my $pidfile = "$dir/node$n/httpd.pid";
    open my $fh, '<', $pidfile or return;
    my $pid = <$fh>;
    chomp $pid;
    kill 'TERM', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        sleep 0.1;
    }
    @started = grep { $_ ne $pidfile } @started;
}
