# No two sites share a version, and no two resources share a key:
#  - two virtual hosts on one port with the same ServerName, told apart
#    only by ServerAlias (each with documents of its own);
#  - the hosts of one mass virtual host (VirtualDocumentRoot);
#  - the two URLs the query-string key of old let collide,
#    /docs/eN%3F?doc=b (document "eN?") and /docs/eN??doc=b (document "eN"):
#    %{CONDITIONAL_QUERY_KEY} tells them apart, the naive
#    "%{REQUEST_URI}?%{QUERY_STRING}" (/qapi-naive/) does not;
#  - the aliases a backend has that the module cannot see (a trailing
#    slash, a second route) folded into one key with ConditionalKey, as
#    docs/directives.md shows (/fold/).

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use CondTest;

plan tests => 23;

sub port_of {
    local $Apache::TestRequest::Module = shift;
    (my $hp = Apache::TestRequest::hostport()) =~ s/^.*://;
    return $hp;
}

sub get {
    my ($path, $vhost, $host, @h) = @_;
    my $port = port_of($vhost);
    return request(GET => $path, vhost => $vhost,
                   headers => [ Host => "$host:$port", @h ]);
}

# Two sites, one path: each serves its own content with a tag of its own,
# and the first one's tag gets no 304 on the second. Returns both tags.
sub two_sites {
    my ($path, $vhost, $mark1, $host1, $mark2, $host2) = @_;
    my $r1 = get($path, $vhost, $host1);
    my $r2 = get($path, $vhost, $host2);
    like $r1->content, qr/\Q$mark1\E/, "$host1 serves its own content";
    like $r2->content, qr/\Q$mark2\E/, "$host2 serves its own content";
    my ($t1, $t2) = map { $_->header('ETag') } $r1, $r2;
    ok is_module_tag($t1) && is_module_tag($t2), '... both tagged';
    isnt $t1, $t2, '... with different tags';
    my $res = get($path, $vhost, $host2, 'If-None-Match' => $t1);
    is $res->code, 200, "$host1\'s tag gets no 304 on $host2";
    like $res->content, qr/\Q$mark2\E/, "... $host2\'s content is sent";
    return ($t1, $t2);
}

# 1. ServerAlias-only virtual hosts: one document name, two documents.
{
    my $name = uniq_name('alias');
    my $port = port_of('conditional_alias');
    for my $site (qw(site1 site2)) {
        my $res = request(PUT => "/api/docs/$name", vhost => 'conditional_alias',
                          headers => [ Host => "$site.test:$port" ],
                          json => { site => $site });
        ok $res->is_success, "$site: document created";
    }
    my ($t1, $t2) = two_sites("/api/docs/$name", 'conditional_alias',
                              site1 => 'site1.test', site2 => 'site2.test');
    my $res = request(PUT => "/api/docs/$name", vhost => 'conditional_alias',
                   headers => [ Host => "site1.test:$port", 'If-Match' => $t1 ],
                   json => { site => 'site1', v => 2 });
    is $res->code, 200, 'a write on site1';
    is get("/api/docs/$name", 'conditional_alias', 'site2.test',
           'If-None-Match' => $t2)->code, 304,
        "... leaves site2's version alone";
}

# 2. Mass virtual hosting: a.mass.test and b.mass.test, one path each.
{
    my ($ta) = two_sites('/doc.json', 'conditional_mass',
                         '"a"' => 'a.mass.test', '"b"' => 'b.mass.test');
    is get('/doc.json', 'conditional_mass', 'A.Mass.Test',
           'If-None-Match' => $ta)->code, 304,
        "... while a host name in other case is the same site";
}

# 3. The two URLs the naive query key let collide.
{
    my $n = uniq_name('eN');
    create_doc("/raw/docs/$n%3F", { which => 'question' });
    create_doc("/raw/docs/$n", { which => 'plain' });
    my $q = current_tag("/qapi/docs/$n%3F?doc=b");
    my $res = request(GET => "/qapi/docs/$n??doc=b",
                      headers => [ 'If-None-Match' => $q ]);
    is $res->code, 200, 'query key: one URL\'s tag gets no 304 on the other';
    like $res->content, qr/"plain"/, '... which gets its own document';
    # the naive form (kept as the counter-example) does collide
    $q = current_tag("/qapi-naive/docs/$n%3F?doc=b");
    is request(GET => "/qapi-naive/docs/$n??doc=b",
               headers => [ 'If-None-Match' => $q ])->code, 304,
        'the naive "%{REQUEST_URI}?%{QUERY_STRING}" collides';
}

# 4. Aliases folded into one key with ConditionalKey.
{
    my $n = uniq_name('fold');
    create_doc("/raw/docs/$n");
    my $t = current_tag("/fold/docs/$n");
    is request(GET => "/fold/v1/docs/$n/",
               headers => [ 'If-None-Match' => $t ])->code, 304,
        'fold: the second route with a trailing slash is the same key';
    my $res = request(PUT => "/fold/v1/docs/$n", headers => [ 'If-Match' => $t ],
                      json => { v => 2 });
    is $res->code, 200, 'fold: a write through the second route';
    $res = request(PUT => "/fold/docs/$n/", headers => [ 'If-Match' => $t ],
                   json => { v => 3 });
    is $res->code, 412, '... makes the first route\'s old tag stale: no lost update';
}
