# Keys a write invalidates besides its own: the parent path
# (ConditionalInvalidateParent, On by default) and whatever the backend names
# in a Conditional-Invalidate response header, which never reaches the client.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 27;

my ($res, $n);

sub still_matches {
    my ($path, $tag) = @_;
    return request(GET => $path, headers => [ 'If-None-Match' => $tag ])->code;
}

# Parent invalidation: a document and its nested children.
my $p = uniq_name('parent');
create_doc("/api/docs/$p");
my $tp = current_tag("/api/docs/$p");
ok is_module_tag($tp), 'parent document is tagged';
is still_matches("/api/docs/$p", $tp), 304, '... and revalidates';

$res = request(PUT => "/api/docs/$p/child?status=409", json => { v => 1 });
is $res->code, 409, 'a refused write to a child';
is still_matches("/api/docs/$p", $tp), 304, '... leaves the parent alone';

$res = request(PUT => "/api/docs/$p/child", json => { v => 1 });
is $res->code, 201, 'a write to /api/docs/P/child';
$res = request(GET => "/api/docs/$p", headers => [ 'If-None-Match' => $tp ]);
is $res->code, 200, '... invalidates /api/docs/P';
my $tp2 = $res->header('ETag');
ok is_module_tag($tp2) && $tp2 ne $tp, '... which has a new tag';

my $tc = current_tag("/api/docs/$p/child");
$res = request(DELETE => "/api/docs/$p/child",
               headers => [ 'If-Match' => $tc ]);
is $res->code, 204, 'deleting the child';
is still_matches("/api/docs/$p", $tp2), 200, '... invalidates the parent too';

# The collection is the parent of every document.
my $tcoll = current_tag('/api/docs');
ok is_module_tag($tcoll), 'the collection /api/docs is tagged';
is still_matches('/api/docs', $tcoll), 304, '... and revalidates';
create_doc('/api/docs/' . uniq_name('member'));
$res = request(GET => '/api/docs', headers => [ 'If-None-Match' => $tcoll ]);
is $res->code, 200, 'creating a document invalidates the collection';

# ConditionalInvalidateParent Off.
my $q = uniq_name('noparent');
create_doc("/noparent/docs/$q");
my $tq = current_tag("/noparent/docs/$q");
$res = request(PUT => "/noparent/docs/$q/child", json => { v => 1 });
is $res->code, 201, 'ConditionalInvalidateParent Off: a write to a child';
is still_matches("/noparent/docs/$q", $tq), 304, '... leaves the parent';

# Conditional-Invalidate from the backend.
my ($x, $y, $z, $w) = map { uniq_name('inv') } 1 .. 4;
my %tag;
for my $d ($x, $y, $z) {
    create_doc("/api/docs/$d");
    $tag{$d} = current_tag("/api/docs/$d");
}
$res = request(GET => "/raw/docs/$x?invalidate=/api/docs/$y");
is $res->header('Conditional-Invalidate'), "/api/docs/$y",
    'the backend sends Conditional-Invalidate (seen on /raw/)';

$res = request(PUT => "/api/docs/$w?invalidate=/api/docs/$x,/api/docs/$y",
               json => { v => 1 });
is $res->code, 201, 'a write whose response names two other keys';
ok !defined $res->header('Conditional-Invalidate'),
    '... the header does not reach the client';
is still_matches("/api/docs/$x", $tag{$x}), 200, '... first key invalidated';
is still_matches("/api/docs/$y", $tag{$y}), 200, '... second key invalidated';
is still_matches("/api/docs/$z", $tag{$z}), 304, '... other keys are not';

$tag{$_} = current_tag("/api/docs/$_") for $x, $y;
$res = request(PUT => "/api/docs/$w?status=409&invalidate=/api/docs/$x",
               json => { v => 2 });
is $res->code, 409, 'a refused write naming a key';
ok !defined $res->header('Conditional-Invalidate'), '... header stripped';
is still_matches("/api/docs/$x", $tag{$x}), 304, '... nothing invalidated';

$res = request(GET => "/api/docs/$z?invalidate=/api/docs/$y");
is $res->code, 200, 'a GET whose response names a key';
ok !defined $res->header('Conditional-Invalidate'), '... header stripped';

# Through mod_proxy the header arrives in another table.
my ($pa, $pb) = map { uniq_name('pinv') } 1 .. 2;
create_doc("/papi/docs/$pa");
my $tpa = current_tag("/papi/docs/$pa");
$res = request(PUT => "/papi/docs/$pb?invalidate=/papi/docs/$pa",
               json => { v => 1 });
ok !defined $res->header('Conditional-Invalidate'),
    '/papi/: the header does not reach the client';
is still_matches("/papi/docs/$pa", $tpa), 200, '/papi/: key invalidated';
