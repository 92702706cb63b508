# Which resource a request names. The default key is the virtual host plus
# the decoded, normalised path (query excluded); ConditionalKey can add the
# query for an API that names resources by query string (/qapi/); two
# virtual hosts never share a version.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 24;

my ($res, $n);

sub revalidate {
    my ($path, $tag, %opt) = @_;
    return request(GET => $path, headers => [ 'If-None-Match' => $tag ], %opt);
}

# Default key: the query string does not matter, spelling of the path does
# not matter.
my $name = uniq_name('key');
create_doc("/api/docs/$name");
my $tag = current_tag("/api/docs/$name?view=full");
ok is_module_tag($tag), 'default key: tagged';
is revalidate("/api/docs/$name?view=short", $tag)->code, 304,
    '... another query string names the same resource';
(my $encoded = $name) =~ s/^(.)/sprintf '%%%02X', ord $1/e;
is revalidate("/api/docs/$encoded", $tag)->code, 304,
    '... so does a percent-encoded path';
is revalidate("/api/./docs/$name", $tag)->code, 304,
    '... and a path with a dot segment';
is revalidate("/api//docs/$name", $tag)->code, 304,
    '... and a path with a doubled slash';

# ConditionalKey "%{REQUEST_URI}?%{QUERY_STRING}": the query names it.
my ($qa, $qb) = map { uniq_name('q') } 1 .. 2;
create_doc("/raw/docs/$_") for $qa, $qb;
my $ta = current_tag("/qapi/?doc=$qa");
my $tb = current_tag("/qapi/?doc=$qb");
ok is_module_tag($ta) && is_module_tag($tb), '/qapi/: both tagged';
isnt $ta, $tb, '/qapi/: different queries, different tags';
$n = invocations($qb);
$res = revalidate("/qapi/?doc=$qb", $ta);
is $res->code, 200, "/qapi/: one document's tag is no good for another";
is invocations($qb), $n + 1, '... the backend answered';
is revalidate("/qapi/?doc=$qa", $ta)->code, 304, '/qapi/: its own tag: 304';
$res = request(PUT => "/qapi/?doc=$qa", headers => [ 'If-Match' => $ta ],
               json => { v => 2 });
is $res->code, 200, '/qapi/: a write with If-Match';
is revalidate("/qapi/?doc=$qa", $ta)->code, 200, '... changes its version';
is revalidate("/qapi/?doc=$qb", $tb)->code, 304, '... and not the other';

# Two virtual hosts, one backend document: separate versions.
my $v = uniq_name('vhost');
create_doc("/raw/docs/$v");
my $main  = current_tag("/api/docs/$v");
my $other = current_tag("/api/docs/$v", vhost => 'conditional_vhost');
ok is_module_tag($main) && is_module_tag($other), 'both virtual hosts tag';
isnt $main, $other, '... with different tags';
$n = invocations($v);
$res = revalidate("/api/docs/$v", $main, vhost => 'conditional_vhost');
is $res->code, 200, "the main host's tag gets no 304 on the other host";
is invocations($v), $n + 1, '... the backend answered';
is revalidate("/api/docs/$v", $other, vhost => 'conditional_vhost')->code,
    304, "the other host's own tag: 304";
$res = request(PUT => "/api/docs/$v", vhost => 'conditional_vhost',
               headers => [ 'If-Match' => $main ], json => { v => 2 });
is $res->code, 412, "the main host's tag does not satisfy If-Match there";
$res = request(PUT => "/api/docs/$v", headers => [ 'If-Match' => $main ],
               json => { v => 2 });
is $res->code, 200, 'a write on the main host';
is revalidate("/api/docs/$v", $other, vhost => 'conditional_vhost')->code,
    304, "... does not change the other host's version";

# A virtual host that names no directive of the module, and so gets no
# configuration of its own from httpd (it inherits the main server's
# <Location /api/>): keys of its own all the same, and the main server
# keeps its own.
my $b = uniq_name('bare');
create_doc("/raw/docs/$b");
my $bmain = current_tag("/api/docs/$b");
my $bare  = current_tag("/api/docs/$b", vhost => 'conditional_bare');
ok is_module_tag($bmain) && is_module_tag($bare) && $bmain ne $bare,
    'a virtual host without directives of the module: a tag of its own'
    or diag "$bmain / $bare";
is revalidate("/api/docs/$b", $bare)->code, 200,
    "... which gets no 304 on the main host";
(my $bkey = url_of("/api/docs/$b")) =~ s{^http://}{};
my $ctl = Apache::Test::vars('serverroot') . '/../tools/conditionalctl';
my $db = logs_dir() . '/conditional.db';
my $shown = `"$ctl" -s "$db" show "$bkey" 2>&1`;
is $? >> 8, 0, "... and the main host's key is its own host and port"
    or diag "$bkey: $shown";
