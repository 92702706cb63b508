# The store's files deleted, replaced or cut short under a running server,
# under load and with writes in flight, then a graceful restart. Each case
# runs its own httpd (build/sandbox.sh, ConditionalLeaseTime 4) so that the
# damage stays there. In every case:
#  - no crash (no child dies of a signal; a -shm cut to nothing used to be a
#    SIGBUS in the module's own read of the WAL-index);
#  - writes get 503 and the error log says what happened to which file;
#  - reads pass through without a validator, and no tag handed out before
#    the fault gets a 304 for content that changed since, before or after
#    the restart - the documents whose writes were in flight when it
#    happened included (a store that lost nothing may still answer 304 for
#    a document nobody wrote);
#  - once the restart is done (and, for a store made anew, one lease later)
#    the store works again, and the read-modify-write clients that ran
#    through it all lost no update (no split store).

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use POSIX ();
use Time::HiRes qw(time sleep);
use CondTest;

my $LEASE = 4;
my $JSON = JSON::PP->new->canonical;

my @faults = (
    [ 'database deleted', sub { unlink $_[0] }, qr/conditional\.db is gone.*deleted or renamed/, 1 ],
    [ 'database replaced by a backup', sub {
          rename "$_[0].bak", $_[0] }, qr/replaced/, 1 ],
    [ '-wal deleted', sub { unlink "$_[0]-wal" }, qr/-wal is gone/, 1 ],
    # The store checkpoints often (RESTART): a -wal cut when it held no
    # commit loses nothing, and then nothing needs refusing.
    [ '-wal cut short', sub { truncate "$_[0]-wal", 100 }, qr/-wal was cut short/, 1, 1 ],
    [ '-shm deleted', sub { unlink "$_[0]-shm" }, qr/-shm is gone/, 0 ],
    [ '-shm cut to nothing', sub { truncate "$_[0]-shm", 0 }, qr/-shm was cut short/, 0 ],
);

plan tests => 14 * @faults;

my ($port, $dir);

# This case's own httpd (CondTest::sandbox).
sub server {
    my ($cmd) = @_;
    return sandbox($cmd, $dir, PORT => $port, LEASE => $LEASE, LOCKWAIT => 1,
                   MPM => 'event', ACCESSLOG => 0);
}

my $ua;
sub req {
    my ($method, $path, %opt) = @_;
    $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 0)
        if !$ua || $ua->{__pid} != $$;
    $ua->{__pid} = $$;
    my $r = HTTP::Request->new($method, "http://127.0.0.1:$port$path");
    my @h = @{ $opt{headers} || [] };
    while (my ($k, $v) = splice @h, 0, 2) {
        $r->header($k => $v) if defined $v;
    }
    if ($opt{json}) {
        $r->content($JSON->encode($opt{json}));
        $r->header('Content-Type' => 'application/json');
    }
    return $ua->request($r);
}

sub error_log {
    open my $fh, '<', "$dir/logs/error.log" or return '';
    local $/;
    return scalar <$fh>;
}

# Read-modify-write clients on one counter document until $stop exists;
# each reports how many increments it got a 2xx for.
sub rmw_clients {
    my ($n, $stop) = @_;
    my @kids;
    for my $i (1 .. $n) {
        pipe my $r, my $w or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            my $ok = 0;
            while (!-e $stop) {
                my $res = req(GET => '/api/docs/counter');
                my $tag = $res->header('ETag');
                my $doc = eval { $JSON->decode($res->content) };
                if (!$tag || !$doc) {
                    sleep 0.05;
                    next;
                }
                my $v = $doc->{data}{n} || 0;
                $res = req(PUT => '/api/docs/counter',
                           headers => [ 'If-Match' => $tag ],
                           json => { n => $v + 1 });
                $ok++ if $res->is_success;
                sleep 0.05 unless $res->is_success;
            }
            print $w "$ok\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [ $pid, $r ];
    }
    return sub {
        my $sum = 0;
        for (@kids) {
            my ($pid, $r) = @$_;
            my $line = <$r>;
            waitpid $pid, 0;
            $sum += $line // 0;
        }
        return $sum;
    };
}

for my $f (@faults) {
    my ($label, $do, $says, $new_identity, $maybe_nothing) = @$f;
    $port = free_port();
    $dir = logs_dir() . '/storefiles-' . $port;
    my $db = "$dir/store/conditional.db";
    ok server('start'), "$label: server started";

    # Four documents, tagged; a counter for the clients.
    my (%tag, %body);
    for my $d (qw(a b c d counter)) {
        req(PUT => "/raw/docs/$d", json => { n => 0 });
        my $r = req(GET => "/api/docs/$d");
        ($tag{$d}, $body{$d}) = ($r->header('ETag'), $r->content);
    }
    # A 304 for a tag whose document has changed since.
    my $stale_304s = sub {
        my $n = 0;
        for my $d (qw(a b c d)) {
            my $r = req(GET => "/api/docs/$d",
                        headers => [ 'If-None-Match' => $tag{$d} ]);
            $n++ if $r->code == 304
                    && req(GET => "/raw/docs/$d")->content ne $body{$d};
        }
        return $n;
    };
    system('sqlite3', $db, ".backup '$db.bak'") == 0 or die "backup";
    my $stop = "$dir/stop";
    my $clients = rmw_clients(2, $stop);
    sleep 1;

    # Writes in flight on a and b: claimed, their backend still busy.
    my @inflight = map {
        background_put("/api/docs/$_?sleep=2", $tag{$_}, { n => 'written' })
    } qw(a b);
    sleep 0.5;
    $do->($db);
    sleep 0.2;

    my $res = req(PUT => '/api/docs/c', headers => [ 'If-Match' => $tag{c} ],
                  json => { n => 1 });
    my $nothing_lost = $maybe_nothing && $res->is_success
                       && error_log() !~ $says;
    ok $res->code == 503 || $nothing_lost,
        "$label: a write gets 503" . ($nothing_lost ? ' (nothing was lost)' : '');
    is $stale_304s->(), 0, "$label: no stale 304 for the tags handed out before";
    ok $nothing_lost || error_log() =~ $says,
        "$label: the log says what happened";

    ok server('graceful'), "$label: graceful restart with writes in flight";
    $_->() for @inflight;
    sleep 1;
    my ($stale, $ok) = (0, 0);
    for my $i (1 .. 10) {
        $stale += $stale_304s->();
        last if ($ok = is_module_tag(req(GET => '/api/docs/d')->header('ETag')))
                && $i > $LEASE;
        sleep 1;
    }
    is $stale, 0, "$label: after the restart, still no 304 for them";
    ok $ok, "$label: the store tags again after the restart";
    $res = req(GET => '/api/docs/a');
    my $now = $res->header('ETag');
    like $res->content, qr/"written"/, "$label: the write in flight landed";
    is req(GET => '/api/docs/a', headers => [ 'If-None-Match' => $now ])->code,
        304, "$label: its new tag validates";
    $res = req(PUT => '/api/docs/a', headers => [ 'If-Match' => $now ],
               json => { n => 2 });
    is $res->code, 200, "$label: writes go through again";

    sleep 1;
    open my $s, '>', $stop;
    close $s;
    my $increments = $clients->();
    my $final = $JSON->decode(req(GET => '/raw/docs/counter')->content);
    is $final->{data}{n}, $increments,
        "$label: every acknowledged increment is there ($increments)";
    my $log = error_log();
    ok $log !~ /exit signal|Segmentation|Bus error|AddressSanitizer/,
        "$label: no child died"
        or diag join "\n", grep { /signal|Segm|Bus|Sanitizer/ } split /\n/, $log;
    if ($new_identity && !$nothing_lost) {
        like $log, qr/COND00026: store \S+ has a new identity/,
            "$label: the store came back with a new identity";
    }
    elsif (!$new_identity) {
        unlike $log, qr/COND00026/, "$label: the store kept its identity";
    }
    else {
        ok 1, "$label: nothing lost, so no new identity needed";
    }
    ok server('stop'), "$label: server stopped";
}

# A PUT in a child process; returns a sub that waits for it.
sub background_put {
    my ($path, $tag, $data) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        req(PUT => $path, headers => [ 'If-Match' => $tag ], json => $data);
        POSIX::_exit(0);
    }
    return sub { waitpid $pid, 0 };
}
