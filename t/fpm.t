# PHP through php-fpm and mod_proxy_fcgi, the backend most legacy APIs run
# on: t/php/docs.php (the document API of docs.cgi, without validators of
# its own) run by Debian's php-fpm on a Unix socket this test starts
# (t/lib/CondFPM.pm).
#   /fpm/      ProxyPass to the socket, Conditional On
#   /fpmraw/   the same without the module (control)
#   /fpmh/     Debian's way: a proxy handler for *.php files, Conditional On
# The module tags PHP's answers, answers 304 and 412 without running PHP -
# also while php-fpm is stopped altogether - commits writes, and loses no
# update under concurrent read-modify-write (t/lib/CondRace.pm, the cases
# t/concurrency.t runs for the CGI).

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondFPM;
use CondRace;
use CondTest;

my $fpm = CondFPM->start(children => 20);
plan skip_all => CondFPM::why() unless $fpm;
plan tests => 30 + CondRace::TESTS;

my $name = uniq_name('fpm');
my $path = "/fpm/docs/$name";
my ($res, $n);

# The backend alone: PHP answers, with no validators of its own.
$res = request(PUT => "/fpmraw/docs/$name", json => { title => 'raw' });
is $res->code, 201, 'php-fpm answers through mod_proxy_fcgi (201 on create)';
$res = request(GET => "/fpmraw/docs/$name");
is $res->code, 200, '... and a GET without the module is a 200';
ok !defined $res->header('ETag') && !defined $res->header('Last-Modified'),
    '... with no ETag or Last-Modified from PHP'
    or diag $res->headers->as_string;
is invocations($name), 2, '... and PHP counted both requests';

# Tagging, 304, commit, 412 through the module.
$res = request(GET => $path);
is $res->code, 200, 'GET through the module: 200';
my $t1 = $res->header('ETag');
ok is_module_tag($t1), '... with a module ETag' or diag "ETag: $t1";
is json_of($res)->{data}{title}, 'raw', "... and PHP's body";

$n = invocations($name);
$res = request(GET => $path, headers => [ 'If-None-Match' => $t1 ]);
is $res->code, 304, 'If-None-Match with that tag: 304';
is $res->header('ETag'), $t1, '... naming the tag';
is invocations($name), $n, '... without running PHP';

$res = request(PUT => $path, headers => [ 'If-Match' => $t1 ],
               json => { title => 'second' });
is $res->code, 200, 'PUT If-Match current: PHP writes (200)';
my $t2 = $res->header('ETag');
ok is_module_tag($t2) && $t2 ne $t1, '... the write is committed: a new tag';
is stored_data($name)->{title}, 'second', '... and PHP stored it';
is current_tag($path), $t2, '... a GET returns the new tag';

$n = invocations($name);
$res = request(PUT => $path, headers => [ 'If-Match' => $t1 ],
               json => { title => 'lost?' });
is $res->code, 412, 'PUT If-Match with the old tag: 412';
is invocations($name), $n, '... without running PHP';
is stored_data($name)->{title}, 'second', '... and the write stays';
is $res->header('ETag'), $t2, '... the 412 names the current tag';

$res = request(PATCH => $path, headers => [ 'If-Match' => $t2 ],
               json => { extra => 1 });
is $res->code, 200, 'PATCH If-Match current: 200';
my $t3 = $res->header('ETag');
ok is_module_tag($t3) && $t3 ne $t2, '... and a new tag';
# Last-Modified comes once the second of the last write is over; the store
# moves it at least a second forward per write, so it may be a later second.
for (1 .. 5) {
    wait_next_second();
    $res = request(GET => $path);
    last if $res->header('Last-Modified');
}
ok $res->header('ETag') eq $t3 && $res->header('Last-Modified'),
    'a GET seconds later: the tag and a Last-Modified from the module'
    or diag $res->headers->as_string;

# php-fpm stopped: the module still answers what it can answer alone.
$fpm->stop;
is request(GET => $path)->code, 503,
    'php-fpm stopped: a plain GET gets 503 from mod_proxy_fcgi';
is request(GET => $path, headers => [ 'If-None-Match' => $t3 ])->code, 304,
    '... while a revalidation still gets 304';
is request(PUT => $path, headers => [ 'If-Match' => $t2 ],
           json => { title => 'stale' })->code, 412,
    '... and a stale write 412';
$fpm = CondFPM->start(children => 20);
ok $fpm, 'php-fpm started again' or diag CondFPM::why();

# Debian's php8.2-fpm.conf way: a proxy handler for *.php files.
my $hname = uniq_name('fpmh');
my $hpath = "/fpmh/docs.php/docs/$hname";
$res = request(PUT => $hpath, headers => [ 'If-None-Match' => '*' ],
               json => { title => 'handler' });
is $res->code, 201, '/fpmh/: create-only PUT through SetHandler proxy:unix';
my $h1 = $res->header('ETag');
ok is_module_tag($h1), '... with a module ETag';
# A representation is revalidated once the module has seen its 200
# (docs/directives.md, one tag per representation).
$h1 = request(GET => $hpath)->header('ETag');
$n = invocations($hname);
is request(GET => $hpath, headers => [ 'If-None-Match' => $h1 ])->code, 304,
    '... If-None-Match: 304';
is request(PUT => $hpath, headers => [ 'If-Match' => '"stale-1"' ],
           json => { title => 'x' })->code, 412,
    '... a stale If-Match: 412';
is invocations($hname), $n, '... neither ran PHP';

# Many clients at once, through the module and without it.
lost_update_cases('/fpm', '/fpmraw');
