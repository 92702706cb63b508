# If-Range (issue 11, items 6 and 7): the module evaluates If-Range itself
# (RFC 9110 13.1.5) - a strong comparison with the tag of the
# representation the request would get, or the exact Last-Modified - and a
# stale, weak or unparsable validator means the whole 200: the backend gets
# neither Range nor If-Range. Checked against a backend that serves ranges
# itself without knowing If-Range (nego.cgi, as CGI and behind mod_proxy)
# and against httpd's own byterange filter (a static file, served here or
# by a proxied httpd). Every 2xx of a GET carries the module's tag, never
# the backend's own.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

my @backends = (
    # base, how a document is made and changed, what a full body starts with
    [ '/nego',  'nego' ],
    [ '/pnego', 'nego' ],
);
plan tests => @backends * 14 + 2 * 8;

my $json = [ Accept => 'application/json' ];

sub put_doc {
    my ($kind, $path, $text, @h) = @_;
    return $kind eq 'nego'
        ? request(PUT => $path, body => $text, headers => [ @h ])
        : request(PUT => $path, json => { text => $text x 20 }, headers => [ @h ]);
}

sub range_get {
    my ($path, @h) = @_;
    return request(GET => $path, headers => [ @$json, Range => 'bytes=0-9', @h ]);
}

for my $b (@backends) {
    my ($base, $kind) = @$b;
    my $name = uniq_name('rng');
    my $path = "$base/docs/$name";

    put_doc($kind, $path, 'first version ');
    wait_next_second();
    my $res = request(GET => $path, headers => $json);
    my $old = $res->header('ETag');
    my $lm = $res->header('Last-Modified');
    my $full = $res->content;

    # Item 7: a 206 goes out with the module's tag.
    $res = range_get($path, 'If-Range' => $old);
    is $res->code, 206, "$base: current tag: 206";
    is $res->content, substr($full, 0, 10), '... the first ten bytes';
    is $res->header('ETag'), $old, "... under the module's tag";
    ok !$res->header('Last-Modified') || $res->header('Last-Modified') eq $lm,
        "... and no Last-Modified of the backend's";
    $res = range_get($path, 'If-Range' => $lm);
    is $res->code, 206, "$base: the exact Last-Modified: 206";

    # Item 6: every If-Range that does not hold gives the whole 200.
    put_doc($kind, $path, 'second version ', 'If-Match' => $old);
    my $cur = request(GET => $path, headers => $json);
    my $new = $cur->content;
    my @cases = (
        [ 'stale tag',       $old ],
        [ 'weak current tag', 'W/' . $cur->header('ETag') ],
        [ 'unparsable',      'not a validator' ],
        [ 'a list',          $cur->header('ETag') . ', ' . $old ],
        [ 'an earlier date', 'Sun, 06 Nov 1994 08:49:37 GMT' ],
    );
    for my $c (@cases) {
        $res = range_get($path, 'If-Range' => $c->[1]);
        ok $res->code == 200 && $res->content eq $new,
            "$base: If-Range $c->[0]: the whole new representation"
            or diag $res->code . ' ' . substr($res->content, 0, 40);
    }
    is $res->header('ETag'), $cur->header('ETag'), '... under its tag';
    $res = range_get($path, 'If-Range' => $cur->header('ETag'));
    is $res->code, 206, "$base: the new tag: 206";
    is $res->content, substr($new, 0, 10), '... of the new bytes';
    # no If-Range: a plain range request is the backend's (or httpd's) to cut
    $res = range_get($path);
    is $res->code, 206, "$base: Range alone: 206";
}

# httpd's byterange filter on a static file, here and behind mod_proxy.
for my $path ('/ranges/big.txt', '/pranges/big.txt') {
    my $res = request(GET => $path);
    my $tag = $res->header('ETag');
    ok is_module_tag($tag), "$path: the module tags it" or diag $tag;
    $res = request(GET => $path, headers => [ Range => 'bytes=5-9', 'If-Range' => $tag ]);
    is $res->code, 206, "$path: current tag: 206";
    is $res->content, '0001 ', '... the bytes asked for';
    is $res->header('ETag'), $tag, '... under the module tag';
    $res = request(GET => $path, headers => [ Range => 'bytes=5-9', 'If-Range' => "W/$tag" ]);
    is $res->code, 200, "$path: weak tag: 200";
    (my $stale = $tag) =~ s/-([0-9a-f]+)"$/'-' . sprintf('%x', hex($1) + 1000) . '"'/e;
    $res = request(GET => $path, headers => [ Range => 'bytes=5-9', 'If-Range' => $stale ]);
    is $res->code, 200, "$path: another tag: 200";
    is length($res->content), -s Apache::Test::vars('documentroot') . '/ranges/big.txt',
        '... the whole file';
    $res = request(GET => $path, headers => [ Range => 'bytes=5-9', 'If-Range' => '"junk' ]);
    is $res->code, 200, "$path: unparsable: 200";
}
