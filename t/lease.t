# A claim lives exactly as long as its write (ConditionalLeaseTime 2 on
# this virtual host; the child renews the claims of its live requests):
#
#  1. a slow upload that outlives the lease, with a second writer in
#     between: never both acknowledged with one of them lost
#  2. a slow backend past the lease, in a live child: keeps its claim
#  3. a backend that sends its headers first and writes after the lease:
#     its claim is renewed while the response streams, and no tag ever
#     names two different bodies
#  4. a held claim broken while its child was stopped (SIGSTOP) past the
#     lease: the late write moves the version and is logged (COND00016)
#  5. a write whose CGI crashed (500) is settled before the response
#     leaves: a GET sent as soon as the 500 arrives is tagged
#  6. so is a write answered by an error page from httpd itself
#  7. Last-Modified is never later than Date, also after a burst of writes
#     moved mtime ahead of the clock

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use HTTP::Date ();
use IO::Socket::INET ();
use Socket ();
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 38;

my $V = 'conditional_lease';
my $LEASE = 2;

sub get { request(GET => $_[0], vhost => $V, @_[1 .. $#_]) }

sub put {
    my ($path, $tag, $data) = @_;
    return request(PUT => $path, vhost => $V, json => $data,
                   headers => [ 'If-Match' => $tag ]);
}

sub sleep_until { my $t = shift() - time; sleep $t if $t > 0 }

# A connection to the virtual host; a small receive buffer when asked, so
# the server soon has to wait for the client to read.
sub connect_vhost {
    my $rcvbuf = shift;
    local $Apache::TestRequest::Module = $V;
    my ($host, $port) = split /:/, Apache::TestRequest::hostport();
    my $sock = IO::Socket::INET->new(Proto => 'tcp', Timeout => 30)
        or die "socket: $!";
    $sock->sockopt(Socket::SO_RCVBUF(), $rcvbuf) if $rcvbuf;
    $sock->connect(Socket::pack_sockaddr_in($port, Socket::inet_aton(
        $host eq 'localhost' ? '127.0.0.1' : $host))) or die "connect: $!";
    return $sock;
}

# Read whole responses off a socket: [status, ETag, body] for each.
sub read_responses {
    my ($sock, $n) = @_;
    my @out;
    local $/ = "\r\n";
    while ($n-- > 0) {
        my $status = <$sock> // last;
        my ($code) = $status =~ m{^HTTP/1\.\d (\d{3})};
        my %h;
        while (defined(my $line = <$sock>)) {
            last if $line eq "\r\n";
            $line =~ s/\r\n$//;
            my ($k, $v) = split /:\s*/, $line, 2;
            $h{lc $k} = $v;
        }
        my $body = '';
        if (my $len = $h{'content-length'}) {
            read $sock, $body, $len;
        }
        elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            while (defined(my $size = <$sock>)) {
                $size = hex(($size =~ /^([0-9a-fA-F]+)/)[0] // 0);
                my $chunk = '';
                read $sock, $chunk, $size + 2 if $size;
                $body .= substr $chunk, 0, $size;
                if (!$size) { <$sock>; last }
            }
        }
        push @out, [ $code, $h{etag}, $body ];
    }
    return @out;
}

# 1. A slow upload: the body takes three leases to arrive.
{
    my $name = uniq_name('upload');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    my $body = '{"v":"slow upload"}';
    my $sock = connect_vhost();
    print $sock "PUT $path HTTP/1.1\r\nHost: localhost\r\n"
        . "If-Match: $e1\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n";
    my $t0 = time;
    my @bytes = split //, $body;
    my $step = 3 * $LEASE / @bytes;
    my ($second, $seen);
    for my $i (0 .. $#bytes) {
        print $sock $bytes[$i];
        sleep $step;
        if (!$second && time - $t0 > 1.5 * $LEASE) {
            # Another client reads and writes in between.
            my $res = get($path);
            $seen = $res->header('ETag');
            $second = put($path, $seen // $e1, { v => 'second' })->code;
        }
    }
    my ($slow) = read_responses($sock, 1);
    close $sock;
    ok time - $t0 > 3 * $LEASE, 'upload: the body took three leases';
    ok !defined $seen, 'upload: a read meanwhile is not tagged'
        or diag "ETag $seen";
    ok !($slow->[0] =~ /^2/ && $second =~ /^2/),
        'upload: the two writers are not both acknowledged'
        or diag "slow $slow->[0], second $second, stored "
                . stored_data($name)->{v};
    is $slow->[0], 200, 'upload: the slow one wins, it came first';
    is stored_data($name)->{v}, 'slow upload', '... and its data is stored';
    my $res = get($path);
    ok is_module_tag($res->header('ETag')) && $res->header('ETag') ne $e1,
        'upload: a GET afterwards has a new tag';
    is $res->header('ETag'), $slow->[1], '... the one the write was given';
}

# 2. A slow backend past the lease, in a live child: the claim stays. Run
# with a lease of 2 s, whose renewal is due before the renewing thread
# would wake on its own (a new claim wakes it), and of 3 s, whose renewal
# is left to the thread's next wake.
sub slow_backend {
    my ($vhost, $lease) = @_;
    my $name = uniq_name('slowcgi');
    my $path = "/api/docs/$name";
    my $what = "slow backend, lease $lease s";
    create_doc($path, { v => 0 }, vhost => $vhost);
    my $e1 = request(GET => $path, vhost => $vhost)->header('ETag');
    my $t0 = time;
    my $slow = background(PUT => "$path?sleep=" . (2 * $lease),
                          vhost => $vhost, headers => [ 'If-Match' => $e1 ],
                          json => { v => 'slow' });
    my $owner = wait_claim($path, $vhost);
    sleep_until($t0 + 1.5 * $lease);
    is claim_of($path, $vhost), $owner,
        "$what: past the lease, the same claim is held" or diag $owner;
    my $res = request(GET => $path, vhost => $vhost);
    ok !defined $res->header('ETag'), "$what: a GET is untagged";
    like request(PUT => $path, vhost => $vhost, json => { v => 'second' },
                 headers => [ 'If-Match' => $e1 ])->code, qr/^(409|412)$/,
        "$what: a write with the old tag waits, then 409 (or 412 when the "
        . 'slow one ended meanwhile)';
    my $r = $slow->();
    is $r->[0], 200, "$what: the write succeeds";
    $res = request(GET => $path, vhost => $vhost);
    is $res->header('ETag'), $r->[1], '... its tag is the current one';
    is json_of($res)->{data}{v}, 'slow', '... naming its data';
}
slow_backend($V, $LEASE);
slow_backend('conditional_lease3', 3);

# 3. Headers first, the write after the lease: no tag names two bodies.
{
    my $name = uniq_name('early');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my %body_of = (get($path)->header('ETag') => 0);
    my $t0 = time;
    my $w = background(PUT => "$path?early=1&sleep=" . (2 * $LEASE),
                       vhost => $V,
                       headers => [ 'If-Match' => (keys %body_of)[0] ],
                       json => { v => 'late' });
    # Past the lease, while the response is still streaming (its headers
    # sent, the CGI asleep before it writes): the claim is renewed.
    my $owner = wait_claim($path, $V);
    sleep_until($t0 + 1.5 * $LEASE);
    my $mid = get($path);
    ok !defined $mid->header('ETag'),
        'early: past the lease, while the response streams, a GET is '
        . 'untagged' or diag 'ETag ' . $mid->header('ETag');
    is claim_of($path, $V), $owner, '... and the same claim is held'
        or diag $owner;
    while (time - $t0 < 2 * $LEASE + 1) {
        my $res = get($path);
        my $tag = $res->header('ETag');
        $body_of{$tag} //= json_of($res)->{data}{v} if defined $tag;
        sleep 0.3;
    }
    my $r = $w->();
    is $r->[0], 200, 'early: the write succeeds';
    my $now = get($path);
    $body_of{ $now->header('ETag') } //= json_of($now)->{data}{v};
    my @two = grep {
        get($path, headers => [ 'If-None-Match' => $_ ])->code == 304
            && $body_of{$_} ne json_of($now)->{data}{v}
    } keys %body_of;
    ok !@two, 'early: no tag handed out names two bodies'
        or diag "304 for @two, which named $body_of{$two[0]}";
    is json_of($now)->{data}{v}, 'late',
        '... and the late data is what a GET sees';
}

# 4. A held claim broken behind its holder's back: stop the child that
# holds it (its renewals stop with it) past the lease.
{
    my $name = uniq_name('stopped');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    my $w = background(PUT => "$path?early=1&sleep=" . (3 * $LEASE),
                       vhost => $V, headers => [ 'If-Match' => $e1 ],
                       json => { v => 'late' });
    my $owner = wait_claim($path, $V);
    my ($pid) = $owner =~ /^[^:]*:(\d+):/;
    sleep 0.5;                  # its headers are in: committed, held
    ok $pid && kill('STOP', $pid), "stopped: SIGSTOP to child $pid";
    # It may have renewed the claim just before it stopped.
    sleep $LEASE + 0.5;
    my $res = get($path);
    my $mid = $res->header('ETag');
    ok is_module_tag($mid), 'stopped: after the lease the claim is broken';
    stored_v_when($name, 'late', 3 * $LEASE);   # the CGI has written
    kill 'CONT', $pid;
    my $r = $w->();
    is get($path, headers => [ 'If-None-Match' => $mid ])->code, 200,
        'stopped: the tag given in between does not hide the late write';
    is json_of(get($path))->{data}{v}, 'late', '... which is what is stored';
    open my $log, '<', logs_dir() . '/error_log' or die "error_log: $!";
    ok scalar(grep { /COND00016: .*\Q$name\E/ } <$log>),
        'stopped: the broken held claim is logged as COND00016';
}

# 5. A crashed CGI (500, whose ErrorDocument is big and slow to read):
# settled before the error page is generated, so a GET sent as soon as
# the 500's status line arrives is tagged.
{
    my $name = uniq_name('crash');
    my $path = "/crashdoc/docs/$name";
    my $page = Apache::Test::vars('documentroot') . '/errorpage.html';
    open my $fh, '>', $page or die "$page: $!";
    print $fh '<p>', 'x' x (4 << 20), "</p>\n";
    close $fh;
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    my $body = '{"v":"crashed"}';
    my $sock = connect_vhost(1024);
    print $sock "PUT $path?crash=1 HTTP/1.1\r\nHost: localhost\r\n"
        . "If-Match: $e1\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $status = <$sock>;
    my $res = get($path);
    close $sock;
    like $status, qr{^HTTP/1\.1 500}, 'crash: the CGI died, 500';
    ok is_module_tag($res->header('ETag')) && $res->header('ETag') ne $e1,
        'crash: a GET right after it is tagged, with a new tag'
        or diag 'ETag ' . $res->header('ETag');
    is json_of($res)->{data}{v}, 'crashed', '... for what it wrote';
}

# 5b. The same without an ErrorDocument: httpd's own 500 page, sent at
# 1 KiB/s (mod_ratelimit), so the request is logged well after its status
# line has left. A GET waiting on a second connection is sent the moment
# the 500's status line arrives.
{
    my $name = uniq_name('crash2');
    my $path = "/slowerr/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $e1 = get($path)->header('ETag');
    my $body = '{"v":"crashed"}';
    my ($sock, $next) = (connect_vhost(), connect_vhost());
    print $sock "PUT $path?crash=1 HTTP/1.1\r\nHost: localhost\r\n"
        . "If-Match: $e1\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $status;
    sysread $sock, $status, 12;
    syswrite $next, "GET $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\n\r\n";
    my ($get) = read_responses($next, 1);
    close $_ for $sock, $next;
    like $status, qr{^HTTP/1\.1 500}, 'crash, no ErrorDocument: 500';
    ok is_module_tag($get->[1]) && $get->[1] ne $e1,
        '... a GET sent the moment it arrives is tagged'
        or diag "GET $get->[0] ETag $get->[1]";
}

# 6. An error page sent by httpd itself (mod_cgid: no such script, 404,
# sent at 1 KiB/s) is settled before it is generated: a write sent on a
# second connection the moment the 404's status line arrives finds the
# key settled.
{
    my $path = '/slowgone/' . uniq_name('gone');
    my ($sock, $next) = (connect_vhost(), connect_vhost());
    my $put = "PUT $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\nContent-Length: 2\r\n"
        . "Connection: close\r\n\r\n{}";
    print $sock $put;
    my $status;
    sysread $sock, $status, 12;
    syswrite $next, $put;
    my ($second) = read_responses($next, 1);
    close $_ for $sock, $next;
    like $status, qr{^HTTP/1\.1 404}, 'error page: 404 from httpd';
    is $second->[0], 404, '... and the next write is not kept waiting (409)';
}

# 7. Last-Modified never later than Date.
{
    my $name = uniq_name('lm');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    wait_next_second();
    my $res = get($path);
    my $lm = HTTP::Date::str2time($res->header('Last-Modified'));
    my $date = HTTP::Date::str2time($res->header('Date'));
    ok defined $lm && $lm <= $date, 'Last-Modified is not later than Date'
        or diag $res->as_string;
}

# 7b. Writes in quick succession move mtime a second forward each, past
# the clock: a GET then still carries no Last-Modified later than its Date.
{
    my $name = uniq_name('lmburst');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 }, vhost => $V);
    my $tag = get($path)->header('ETag');
    my $written = 0;
    for my $i (1 .. 4) {
        my $res = put($path, $tag, { v => $i });
        $written++ if $res->code == 200;
        $tag = $res->header('ETag');
    }
    my @late = $written == 4 ? () : ("only $written of 4 writes went through");
    for (1 .. 2) {
        my $res = get($path);
        my $lm = $res->header('Last-Modified');
        my $date = HTTP::Date::str2time($res->header('Date'));
        push @late, "$lm (Date " . $res->header('Date') . ')'
            if defined $lm && HTTP::Date::str2time($lm) > $date;
        wait_next_second();
    }
    ok !@late, '... nor after writes that moved mtime ahead of the clock'
        or diag "@late";
}
