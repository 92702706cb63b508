# ConditionalRequire On (/req/): a write without a precondition gets 428
# Precondition Required (RFC 6585) and never reaches the backend; writes
# with one, and reads, are unaffected.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

my @unconditional = qw(PUT PATCH POST DELETE);

plan tests => 4 * @unconditional + 11;

my $name = uniq_name('req');
my $path = "/req/docs/$name";

for my $method (@unconditional) {
    my $n = invocations($name);
    my $res = request($method => $path, json => { v => 1 });
    is $res->code, 428, "$method without a precondition: 428";
    is invocations($name), $n, "... the backend did not run";
    my $p = problem_of($res);
    ok $p && $p->{status} == 428 && ($p->{type} // '') =~ /^urn:conditional:/,
        '... with a problem+json body' or diag $res->as_string;
    ok !defined stored_doc($name), '... nothing was stored';
}

my $res = request(PUT => $path, headers => [ 'If-None-Match' => '*' ],
                  json => { v => 1 });
is $res->code, 201, 'PUT If-None-Match: * is a precondition: created';
my $tag = $res->header('ETag');
ok is_module_tag($tag), '... with a module tag';

$res = request(GET => $path);
is $res->code, 200, 'GET needs no precondition';
is $res->header('ETag'), $tag, '... and is tagged';

$res = request(PUT => $path, headers => [ 'If-Match' => $tag ],
               json => { v => 2 });
is $res->code, 200, 'PUT If-Match current goes through';
$tag = $res->header('ETag');

$res = request(PATCH => $path, headers => [ 'If-Match' => '"stale"' ],
               json => { v => 3 });
is $res->code, 412, 'a stale If-Match is a 412, not a 428';

# Two writes within one second: the second moved mtime one second ahead
# (every write moves it forward), so its Last-Modified shows once that
# second has passed too.
wait_next_second();
wait_next_second();
$res = request(GET => $path);
my $lm = $res->header('Last-Modified');
ok defined $lm, 'a write two seconds old has a Last-Modified';
$res = request(PATCH => $path,
               headers => [ 'If-Unmodified-Since' => $lm // http_date(time) ],
               json => { v => 4 });
is $res->code, 200, 'If-Unmodified-Since alone is a precondition too';
$tag = $res->header('ETag');

$res = request(DELETE => $path, headers => [ 'If-Match' => $tag ]);
is $res->code, 204, 'DELETE If-Match current goes through';

# The same API without ConditionalRequire takes unconditional writes.
my $free = uniq_name('free');
$res = request(PUT => "/api/docs/$free", json => { v => 1 });
is $res->code, 201, '/api/ (ConditionalRequire Off): unconditional PUT works';
ok is_module_tag($res->header('ETag')), '... and is tagged';
