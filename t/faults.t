# Faults: a write whose outcome the module cannot see keeps its key claimed
# until its lease runs out (ConditionalLeaseTime 5 on this virtual host),
# and then the key gets a new version. Meanwhile nothing is tagged and no
# old tag matches, so a backend that writes late never leaves a tag naming
# the wrong document, and no later writer's update is overwritten unseen.
#
#  1. kill -9 of the httpd child that holds the claim: the CGI outlives it
#     and writes late
#  2. mod_proxy gives up (502/504) while its backend still writes
#  3. mod_cgid gives up on a silent script (504)
#  4. a client that disconnects in the middle of its request body
#  5. a child stalled past the lease while its backend runs: its claim is
#     broken, another client writes, and the late write is detected at
#     commit (COND00011)

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use IO::Socket::INET ();
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 56;

my $V = 'conditional_faults';
my $LEASE = 5;

sub get { request(GET => $_[0], vhost => $V, @_[1 .. $#_]) }

sub put {
    my ($path, $tag, $data) = @_;
    return request(PUT => $path, vhost => $V, json => $data,
                   headers => [ 'If-Match' => $tag ]);
}

# While the claim is held: reads go to the backend untagged, the old tag
# neither revalidates nor passes If-Match (a write waits, then 409).
sub while_claimed {
    my ($what, $path, $old) = @_;
    my $res = get($path);
    is $res->code, 200, "$what: a GET is answered by the backend";
    ok !defined $res->header('ETag'), "$what: ... untagged"
        or diag 'ETag: ' . $res->header('ETag');
    $res = get($path, headers => [ 'If-None-Match' => $old ]);
    is $res->code, 200, "$what: the old tag gets no 304";
    $res = put($path, $old, { v => 'impatient' });
    is $res->code, 409, "$what: a write with it waits, then gets 409";
}

# After the lease: a new version, the late write (if any) is what the new
# tag names, the old tag is refused, the key is writable and unclaimed.
sub after_lease {
    my ($what, $path, $name, $old, $want) = @_;
    my $res = get($path);
    my $tag = $res->header('ETag');
    ok is_module_tag($tag) && $tag ne $old,
        "$what: after the lease a GET has a new tag" or diag "$old -> $tag";
    is json_of($res)->{data}{v}, $want, "$what: ... naming the stored data";
    is put($path, $old, { v => 'stale' })->code, 412,
        "$what: If-Match with the old tag is refused";
    $res = put($path, $tag, { v => 'next' });
    is $res->code, 200, "$what: If-Match with the new one writes";
    is stored_data($name)->{v}, 'next', "$what: ... and the data is stored";
    ok !claim_of($path, $V), "$what: nothing is left claimed";
}

sub sleep_until { my $t = shift() - time; sleep $t if $t > 0 }

# Leases are counted from the moment their holder stops renewing (killed,
# stopped, or its request ended), never from when the request was sent: on
# a loaded machine the claim can be taken, and renewed, late.

# 1. kill -9 of the child that holds the claim.
{
    my $name = uniq_name('kill');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    my $ran = invocations($name);
    my $slow = background(PUT => "$path?sleep=1.5", vhost => $V,
                          headers => [ 'If-Match' => $e1 ],
                          json => { v => 'late' });
    my $owner = wait_claim($path, $V);
    ok $owner, 'kill: the slow write holds the claim' or diag 'no claim';
    # Kill once the CGI has started and read its body, before it writes.
    wait_invoked($name, $ran);
    sleep 0.3;
    my ($pid) = $owner =~ /^[^:]*:(\d+):/;
    ok $pid && kill('KILL', $pid), "kill: kill -9 of child $pid";
    my $killed = time;
    my $r = $slow->();
    isnt $r->[0], 200, 'kill: the writer gets no answer of success';
    while_claimed('kill', $path, $e1);
    is stored_v_when($name, 'late', 5), 'late',
        'kill: the orphaned CGI wrote late';
    while_claimed('kill, after the late write', $path, $e1);
    sleep_until($killed + $LEASE + 0.3);
    after_lease('kill', $path, $name, $e1, 'late');
}

# 2. mod_proxy times out (1 s) while the backend completes its write.
{
    my $name = uniq_name('proxy');
    my $path = "/proxy1/docs/$name";
    create_doc("/raw/docs/$name", { v => 0 });
    my $e1 = get($path)->header('ETag');
    my $res = put("$path?sleep=2", $e1, { v => 'late' });
    my $ended = time;
    like $res->code, qr/^50[24]$/, 'proxy: mod_proxy gives up with 502/504';
    while_claimed('proxy', $path, $e1);
    is stored_v_when($name, 'late', 5), 'late',
        'proxy: the backend wrote late';
    while_claimed('proxy, after the late write', $path, $e1);
    sleep_until($ended + $LEASE + 0.3);
    after_lease('proxy', $path, $name, $e1, 'late');
}

# 3. The CGI is silent past CGIScriptTimeout: 504, outcome unknown.
{
    my $name = uniq_name('slow');
    my $path = "/slow/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    my $res = put("$path?sleep=3", $e1, { v => 'late' });
    my $ended = time;
    is $res->code, 504, 'timeout: the script is given up on with 504';
    my $res2 = get($path, headers => [ 'If-None-Match' => $e1 ]);
    is $res2->code, 200, 'timeout: the old tag gets no 304';
    is put($path, $e1, { v => 'impatient' })->code, 409,
        'timeout: the key stays claimed (a write waits, then 409)';
    sleep_until($ended + $LEASE + 0.3);
    my $want = stored_data($name)->{v};
    after_lease('timeout', $path, $name, $e1, $want);
}

# 4. A client that sends half its body and goes away: the backend refuses
# or fails, the claim is resolved at once, nothing is stored.
{
    my $name = uniq_name('abort');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    local $Apache::TestRequest::Module = $V;
    my $sock = IO::Socket::INET->new(PeerAddr => Apache::TestRequest::hostport(),
                                     Timeout => 10)
        or die "connect: $!";
    print $sock "PUT $path HTTP/1.1\r\nHost: localhost\r\n"
        . "If-Match: $e1\r\nContent-Type: application/json\r\n"
        . "Content-Length: 1000\r\n\r\n{\"v\":\"half";
    sleep 0.3;
    close $sock;
    my $t0 = time;
    my $claimed = 1;
    while ($claimed && time - $t0 < 3) {
        sleep 0.1;
        $claimed = claim_of($path, $V);
    }
    ok !$claimed, 'abort: the claim is resolved as soon as the request ends';
    is stored_data($name)->{v}, 0, 'abort: the document is untouched';
    my $tag = get($path)->header('ETag');
    $t0 = time;
    my $res = put($path, $tag, { v => 'whole' });
    is $res->code, 200, 'abort: the next write goes through';
    cmp_ok time - $t0, '<', 1, '... without waiting';
}

# 5. The child holding the claim stalls (SIGSTOP) while its backend still
# runs: its renewals stop with it, the lease runs out, the claim is broken,
# another client writes, then the child resumes and the slow write ends. It
# must not commit over the other one, and since its backend did write, no
# earlier tag may match. (A live child renews the claim: t/lease.t.)
# The CGI sleeps long enough past the lease for the other client to write
# first, however late the claim was taken and renewed.
{
    my $name = uniq_name('overrun');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    my $slow = background(PUT => "$path?sleep=" . ($LEASE + 4), vhost => $V,
                          headers => [ 'If-Match' => $e1 ],
                          json => { v => 'slow' });
    my $owner = wait_claim($path, $V);
    my ($pid) = $owner =~ /^[^:]*:(\d+):/;
    ok $pid && kill('STOP', $pid), "overrun: SIGSTOP to child $pid";
    my $stopped = time;
    sleep_until($stopped + $LEASE + 0.5);
    my $res = get($path);
    my $e2 = $res->header('ETag');
    ok is_module_tag($e2) && $e2 ne $e1,
        'overrun: after the lease the claim is broken, a new tag'
        or diag "$e1 -> $e2";
    $res = put($path, $e2, { v => 'winner' });
    is $res->code, 200, 'overrun: another client writes meanwhile';
    my $e3 = $res->header('ETag');
    # Resume the child once its CGI has written over the winner's data.
    stored_v_when($name, 'slow', 10);
    kill 'CONT', $pid;
    my $r = $slow->();
    is $r->[0], 200, 'overrun: the slow write ends, its backend wrote';
    ok !length $r->[1], '... and it gets no ETag' or diag $r->[1];
    is stored_data($name)->{v}, 'slow', 'overrun: the late data is stored';
    is get($path, headers => [ 'If-None-Match' => $e3 ])->code, 200,
        "overrun: the other client's tag no longer matches";
    is put($path, $e3, { v => 'blind' })->code, 412,
        '... nor passes If-Match: it re-reads what is stored';
    open my $log, '<', logs_dir() . '/error_log' or die "error_log: $!";
    ok scalar(grep { /COND00011: .*\Q$name\E/ } <$log>),
        'overrun: the lost claim is logged as COND00011 with the key';
}
