# Per-directory merging: /inherit/ switches the module on, /inherit/child/
# only adds ConditionalRequire (and must inherit Conditional On),
# /inherit/off/ switches it off again.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 16;

my ($res, $n);

# Parent: on, writes need no precondition.
my $a = uniq_name('inh');
$res = create_doc("/inherit/docs/$a");
is $res->code, 201, '/inherit/: unconditional PUT is allowed';
my $tag = current_tag("/inherit/docs/$a");
ok is_module_tag($tag), '/inherit/: GET is tagged';
$n = invocations($a);
$res = request(GET => "/inherit/docs/$a",
               headers => [ 'If-None-Match' => $tag ]);
is $res->code, 304, '/inherit/: If-None-Match current: 304';
is invocations($a), $n, '... without the backend';

# Child: inherits On, adds Require.
my $b = uniq_name('inh');
create_doc("/raw/docs/$b");
$tag = current_tag("/inherit/child/docs/$b");
ok is_module_tag($tag), '/inherit/child/: GET is tagged (inherited On)';
$n = invocations($b);
$res = request(PUT => "/inherit/child/docs/$b", json => { v => 2 });
is $res->code, 428, '/inherit/child/: unconditional PUT gets 428';
is invocations($b), $n, '... without the backend';
$res = request(PUT => "/inherit/child/docs/$b",
               headers => [ 'If-Match' => '"stale"' ], json => { v => 2 });
is $res->code, 412, '/inherit/child/: stale If-Match gets 412';
$res = request(PUT => "/inherit/child/docs/$b",
               headers => [ 'If-Match' => $tag ], json => { v => 2 });
is $res->code, 200, '/inherit/child/: If-Match current goes through';
ok is_module_tag($res->header('ETag')) && $res->header('ETag') ne $tag,
    '... with a new tag';

# Off: the backend sees everything, its own ETag goes out untouched.
my $c = uniq_name('inh');
create_doc("/raw/docs/$c");
$res = request(GET => "/inherit/off/docs/$c");
is $res->code, 200, '/inherit/off/: GET works';
is $res->header('ETag'), '"backend"', "... with the backend's own ETag";
$n = invocations($c);
$res = request(GET => "/inherit/off/docs/$c",
               headers => [ 'If-None-Match' => '"backend"' ]);
is $res->code, 200, '/inherit/off/: no 304 from the module';
is invocations($c), $n + 1, '... the backend ran';
$n = invocations($c);
$res = request(PUT => "/inherit/off/docs/$c",
               headers => [ 'If-Match' => '"stale"' ], json => { v => 2 });
is $res->code, 200, '/inherit/off/: a stale If-Match is not judged';
is invocations($c), $n + 1, '... the backend ran';
