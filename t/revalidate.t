# What a browser or caching proxy sees: a 200 with validators and cache
# headers, then revalidation answered by a 304 that repeats the 200's ETag,
# Last-Modified, Cache-Control, Vary and Content-Location (RFC 9110 15.4.5),
# all without running the backend.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use HTTP::Date ();
use CondTest;

my @repeat = qw(ETag Last-Modified Cache-Control Vary Content-Location);

plan tests => 9 + 2 * (4 + @repeat) + 3 + 6 + 3;

my $name = uniq_name('browser');
my $path = "/api/docs/$name?cl=1";

# Last-Modified only once the last write is in an earlier second.
my $res = create_doc($path);
my $tag = $res->header('ETag');
$res = request(GET => $path);
my $lm   = $res->header('Last-Modified');
my $date = $res->header('Date');
ok !defined $lm
   || HTTP::Date::str2time($lm) < HTTP::Date::str2time($date),
   'right after a write, no Last-Modified in the same second'
    or diag "Last-Modified: $lm, Date: $date";

wait_next_second();
my $ok = request(GET => $path);
is $ok->code, 200, 'GET a second after the write';
ok is_module_tag($ok->header('ETag')), '... tagged';
ok defined $ok->header('Last-Modified'), '... with Last-Modified';
ok HTTP::Date::str2time($ok->header('Last-Modified') // '')
   <= HTTP::Date::str2time($ok->header('Date')), '... not after Date';
is request(GET => "$path&lm=86400")->header('Last-Modified'),
    $ok->header('Last-Modified'),
    "... the module's, whatever Last-Modified the backend claims";
is $ok->header('Cache-Control'), 'max-age=60', "... backend's Cache-Control";
is $ok->header('Vary'), 'Accept', "... backend's Vary";
like $ok->header('Content-Location') // '', qr{/docs/\Q$name\E$},
    "... backend's Content-Location";

for my $how ([ 'If-None-Match' => $ok->header('ETag') ],
             [ 'If-Modified-Since' => $ok->header('Last-Modified') ]) {
    my $n = invocations($name);
    my $nm = request(GET => $path, headers => $how);
    is $nm->code, 304, "revalidation with $how->[0]: 304";
    is invocations($name), $n, '... without the backend';
    for my $h (@repeat) {
        is $nm->header($h), $ok->header($h), "... repeats $h";
    }
    ok defined $nm->header('Date'), '... has a Date';
    is length($nm->content), 0, '... and no body';
}

# Expires is repeated as the last 200 had it.
my $ex = uniq_name('expires');
create_doc("/api/docs/$ex");
my $ok2 = request(GET => "/api/docs/$ex?expires=3600");
ok defined $ok2->header('Expires'), 'a 200 with Expires';
$res = request(GET => "/api/docs/$ex?expires=3600",
               headers => [ 'If-None-Match' => $ok2->header('ETag') ]);
is $res->code, 304, '... revalidated';
is $res->header('Expires'), $ok2->header('Expires'), '... repeats Expires';

# The headers of the latest 200 of a representation, at the same version:
# a 200 that adds a Content-Location, then one without it again, and each
# time the 304 that follows repeats what that 200 had (a 200 whose headers
# did not change writes nothing to the store; one whose did, does).
my $cl = uniq_name('latest');
create_doc("/api/docs/$cl");
my $plain = request(GET => "/api/docs/$cl");
my $cltag = $plain->header('ETag');
ok !defined $plain->header('Content-Location'),
    'a 200 without Content-Location';
is request(GET => "/api/docs/$cl?cl=1")->header('ETag'), $cltag,
    '... then one with it, the same tag';
$res = request(GET => "/api/docs/$cl",
               headers => [ 'If-None-Match' => $cltag ]);
is $res->code, 304, '... revalidated';
like $res->header('Content-Location') // '', qr{/docs/\Q$cl\E$},
    '... repeats the Content-Location the latest 200 had';
request(GET => "/api/docs/$cl");
$res = request(GET => "/api/docs/$cl?cl=1",
               headers => [ 'If-None-Match' => $cltag ]);
is $res->code, 304, 'after a 200 without it again, revalidated';
ok !defined $res->header('Content-Location'),
    '... without the Content-Location the latest 200 no longer had';

# A browser sends both validators; after a write it gets the new version.
$res = request(PUT => $path, headers => [ 'If-Match' => $ok->header('ETag') ],
               json => { v => 2 });
is $res->code, 200, 'the resource changes';
$res = request(GET => $path,
               headers => [ 'If-None-Match' => $ok->header('ETag'),
                            'If-Modified-Since' =>
                                $ok->header('Last-Modified') ]);
is $res->code, 200, 'revalidation with both validators: 200';
like $res->content, qr/"v":2/, '... with the new content';
