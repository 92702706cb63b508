# A store that cannot be used (the conditional_badstore virtual host points
# ConditionalStore at a path under /dev/null): reads pass through untagged,
# writes get 503 + Retry-After and never reach the backend, since a write is
# never made without its claim. An If-Range cannot be held against any
# version then: the whole 200, never a range cut from what may be a newer
# version (issue 11, item 6).

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

my @writes = (
    [ PUT    => [] ],
    [ PUT    => [ 'If-Match' => '*' ] ],
    [ PATCH  => [ 'If-Match' => '"0123456789abcdef-1"' ] ],
    [ POST   => [] ],
    [ DELETE => [] ],
);

plan tests => 4 + 4 * @writes + 1 + 4 + 3;

my %bad = (vhost => 'conditional_badstore');
my $name = uniq_name('nostore');
my $path = "/api/docs/$name";
create_doc("/raw/docs/$name", { v => 1 });

my $n = invocations($name);
my $res = request(GET => $path, %bad);
is $res->code, 200, 'GET with the store unusable: 200 from the backend';
ok !is_module_tag($res->header('ETag')), '... not tagged by the module';
$res = request(GET => $path, %bad, headers => [ 'If-None-Match' => '*' ]);
is $res->code, 200, '... If-None-Match: * gets no 304';
is invocations($name), $n + 2, '... the backend answered both';

for my $w (@writes) {
    my ($method, $headers) = @$w;
    my $label = join ' ', $method, @$headers;
    $n = invocations($name);
    $res = request($method => $path, %bad, headers => $headers,
                   json => { v => 2 });
    is $res->code, 503, "$label with the store unusable: 503";
    like $res->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After';
    my $p = problem_of($res);
    ok $p && $p->{status} == 503, '... and a problem+json body'
        or diag $res->as_string;
    is invocations($name), $n, '... the backend did not run';
}
is stored_data($name)->{v}, 1, 'the document was never written';

# The pass-through carries no validators at all: not the module's, not the
# backend's own (docs.cgi sends ETag "backend" and a Last-Modified), and the
# backend never sees the client's (it lists those it got in X-Backend-Saw).
$res = request(GET => $path, %bad,
               headers => [ 'If-None-Match' => '"backend"',
                            'If-Modified-Since' => http_date(time + 60) ]);
is $res->code, 200, 'a revalidation with the store unusable: 200';
is $res->header('ETag'), undef, "... without the backend's ETag";
is $res->header('Last-Modified'), undef, '... or its Last-Modified';
is $res->header('X-Backend-Saw'), undef,
    "... and the backend never saw the client's validators";

# If-Range with the store unusable: the module cannot tell which version the
# client's tag names, so the backend (nego.cgi cuts ranges and ignores
# If-Range) gets neither Range nor If-Range and sends the whole document.
{
    my $doc = uniq_name('norange');
    request(PUT => "/nraw/docs/$doc", body => 'the only version');
    my $full = request(GET => "/nraw/docs/$doc")->content;
    $res = request(GET => "/nego/docs/$doc", %bad,
                   headers => [ Range => 'bytes=0-9',
                                'If-Range' => '"0123456789abcdef-1"' ]);
    is $res->code, 200, 'If-Range with the store unusable: 200'
        or diag $res->code . ' ' . $res->content;
    is $res->content, $full, '... the whole document';
    is $res->header('ETag'), undef, '... untagged';
}
