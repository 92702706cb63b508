# Writes on one key are serialised across httpd processes. A write that
# finds another in flight waits up to ConditionalLockWait, then is judged
# against the outcome; if the key is still busy it gets 409 + Retry-After.
# The slow writer is a forked child whose PUT sleeps in the backend.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use POSIX ();
use Time::HiRes qw(time sleep);
use Apache::TestRequest ();
use IO::Socket::INET ();
use CondTest;

plan tests => 27;

my ($res, $n, $t0, $took);

# 1. Still busy after LockWait (1 s on /lock/): 409 + Retry-After.
my $name = uniq_name('lock');
my $path = "/lock/docs/$name";
create_doc($path, { by => 'setup' });
my $tag = current_tag($path);

$n = invocations($name);
my $slow = background(PUT => "$path?sleep=3",
                      headers => [ 'If-Match' => $tag ],
                      json => { by => 'slow' });
wait_claim($path);
wait_invoked($name, $n++);
$t0 = time;
$res = request(PUT => $path, headers => [ 'If-Match' => $tag ],
               json => { by => 'impatient' });
$took = time - $t0;
is $res->code, 409, 'a write while another holds the key past LockWait: 409';
ok defined $res->header('Retry-After')
   && $res->header('Retry-After') =~ /^\d+$/, '... with Retry-After'
    or diag $res->as_string;
my $p = problem_of($res);
ok $p && $p->{status} == 409, '... and a problem+json body'
    or diag $res->as_string;
is invocations($name), $n, '... the backend did not run';
cmp_ok $took, '>=', 0.8, '... after waiting about LockWait';
cmp_ok $took, '<', 2.5, '... but not for the whole slow write';

$n = invocations($name);
$res = request(GET => $path);
is $res->code, 200, 'a GET during the slow write is served';
is invocations($name), $n + 1, '... by the backend';
ok !defined $res->header('ETag'), '... untagged, as the version is in flux'
    or diag 'ETag: ' . $res->header('ETag');

# Claims are per key: another document's write does not queue behind it.
my $other = uniq_name('lock-other');
create_doc("/lock/docs/$other", { by => 'setup' });
my $other_tag = current_tag("/lock/docs/$other");
$t0 = time;
$res = request(PUT => "/lock/docs/$other",
               headers => [ 'If-Match' => $other_tag ],
               json => { by => 'meanwhile' });
$took = time - $t0;
is $res->code, 200, 'a write to another key during the slow write';
cmp_ok $took, '<', 0.9, '... does not wait for it';

my $done = $slow->();
is $done->[0], 200, 'the slow write succeeds';
ok is_module_tag($done->[1]) && $done->[1] ne $tag, '... with a new tag';
is stored_data($name)->{by}, 'slow', '... and its data is stored';

# 2. Waiting, then judged against the outcome (LockWait 3 on /api/).
$name = uniq_name('wait');
$path = "/api/docs/$name";
create_doc($path, { by => 'setup' });
$tag = current_tag($path);
$n = invocations($name);
$slow = background(PUT => "$path?sleep=1", headers => [ 'If-Match' => $tag ],
                   json => { by => 'first' });
wait_claim($path);
wait_invoked($name, $n++);
$t0 = time;
$res = request(PUT => $path, headers => [ 'If-Match' => $tag ],
               json => { by => 'second' });
$took = time - $t0;
is $res->code, 412, 'same If-Match while the first write is in flight: '
    . 'waits, then 412';
cmp_ok $took, '>=', 0.4, '... after waiting for the first write';
is invocations($name), $n, '... the backend did not run';
$done = $slow->();
is $done->[0], 200, 'the first write succeeded';
is $res->header('ETag'), $done->[1], "... and the 412 names the first's tag";
is stored_data($name)->{by}, 'first', '... whose data is kept';

# 3. Without a precondition the waiting write goes after the first one:
# serialised, so the backend's read-modify-write of "rev" loses nothing.
$name = uniq_name('serial');
$path = "/api/docs/$name";
create_doc($path, { by => 'setup' });
$slow = background(PUT => "$path?sleep=1", json => { by => 'first' });
wait_claim($path);
$res = request(PUT => "$path?sleep=0.1", json => { by => 'second' });
is $res->code, 200, 'an unconditional write waits for the one in flight';
$done = $slow->();
is $done->[0], 200, '... which succeeded';
my $doc = stored_doc($name);
is $doc->{data}{by}, 'second', '... the waiting write landed last';
is $doc->{rev}, 3, '... and no revision was lost';

# 4. A client that gives up mid-write does not leave the key claimed.
$name = uniq_name('abort');
$path = "/api/docs/$name";
create_doc($path, { by => 'setup' });
my $hostport = Apache::TestRequest::hostport();
my $body = '{"by":"aborted"}';
my $sock = IO::Socket::INET->new(PeerAddr => $hostport, Timeout => 10)
    or die "connect: $!";
print $sock "PUT $path?sleep=1.5 HTTP/1.1\r\nHost: $hostport\r\n"
    . "Content-Type: application/json\r\nContent-Length: "
    . length($body) . "\r\n\r\n$body";
sleep 0.3;
close $sock;
$t0 = time;
$res = request(PUT => $path, json => { by => 'next' });
$took = time - $t0;
is $res->code, 200, 'a write after a client gave up mid-write goes through';
cmp_ok $took, '<', 2.9, '... within the lock wait';
$res = request(PUT => $path, headers => [ 'If-Match' => current_tag($path) ],
               json => { by => 'last' });
is $res->code, 200, '... and so does the one after it';
