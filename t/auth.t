# Access control runs before the preconditions: a client without valid
# credentials gets 401 whatever validators it sends, never a 304 or a 412
# (which would tell it the resource's version), and the backend never runs.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

my $name = uniq_name('secure');
my $path = "/secure/docs/$name";
my $bad  = [ 'alice', 'wrong' ];

# [ label, method, credentials, headers (given the current tag) ]
my @denied = (
    [ 'GET, no credentials',                 GET  => undef, sub { () } ],
    [ 'GET If-None-Match current, no credentials', GET => undef,
      sub { ('If-None-Match' => $_[0]) } ],
    [ 'GET If-None-Match *, wrong password', GET  => $bad,
      sub { ('If-None-Match' => '*') } ],
    [ 'HEAD If-None-Match current, no credentials', HEAD => undef,
      sub { ('If-None-Match' => $_[0]) } ],
    [ 'PUT If-Match stale, no credentials',  PUT  => undef,
      sub { ('If-Match' => '"stale"') } ],
    [ 'PUT If-None-Match *, no credentials', PUT  => undef,
      sub { ('If-None-Match' => '*') } ],
    [ 'DELETE If-Match current, wrong password', DELETE => $bad,
      sub { ('If-Match' => $_[0]) } ],
);

plan tests => 3 * @denied + 6;

my $res = request(PUT => $path, auth => AUTH, json => { secret => 1 });
is $res->code, 201, 'created with credentials';
my $tag = current_tag($path, auth => AUTH);
ok is_module_tag($tag), 'GET with credentials is tagged';

for my $d (@denied) {
    my ($label, $method, $cred, $headers) = @$d;
    my $n = invocations($name);
    $res = request($method => $path, headers => [ $headers->($tag) ],
                   ($cred ? (auth => $cred) : ()), json => { v => 2 });
    is $res->code, 401, "$label: 401";
    ok !defined $res->header('ETag'), '... without an ETag';
    is invocations($name), $n, '... the backend did not run';
}

$res = request(GET => $path, auth => AUTH,
               headers => [ 'If-None-Match' => $tag ]);
is $res->code, 304, 'with credentials, If-None-Match current: 304';
$res = request(PUT => $path, auth => AUTH,
               headers => [ 'If-Match' => '"stale"' ], json => { v => 3 });
is $res->code, 412, 'with credentials, stale If-Match: 412';
$res = request(PUT => $path, auth => AUTH,
               headers => [ 'If-Match' => $tag ], json => { v => 3 });
is $res->code, 200, 'with credentials, If-Match current: 200';
is stored_data($name)->{v}, 3, '... only that write reached the backend';
