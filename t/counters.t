# mod_status shows what the module decided, counted across all children
# since the start: /server-status?auto has one "ConditionalX: N" line per
# counter, and the HTML page a section of its own.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 9;

sub counters {
    my $res = request(GET => '/server-status?auto');
    return { $res->content =~ /^Conditional(\w+): (\d+)$/mg };
}

my $before = counters();
ok exists $before->{NotModified} && exists $before->{Committed},
    'server-status?auto lists the counters' or diag explain $before;

my $name = uniq_name('count');
my $path = "/api/docs/$name";
create_doc($path);                                     # commit
my $tag = current_tag($path);                          # tag
# Many requests, so that they land on more than one child: the counts must
# still add up exactly.
request(GET => $path, headers => [ 'If-None-Match' => $tag ]) for 1 .. 20;
request(PUT => $path, headers => [ 'If-Match' => '"stale"' ],
        json => { v => 2 }) for 1 .. 3;
request(PUT => "$path?status=409", headers => [ 'If-Match' => $tag ],
        json => { v => 3 });
request(PUT => "/req/docs/$name", json => { v => 4 });  # 428

my $after = counters();
my %delta = map { $_ => $after->{$_} - $before->{$_} } keys %$after;
is $delta{NotModified}, 20, '20 revalidations counted as 304s';
is $delta{Failed}, 3, '3 stale writes counted as 412s';
is $delta{Committed}, 1, 'the create counted as a commit';
is $delta{Tagged}, 1, 'the tagged GET counted';
is $delta{Refused}, 1, "the backend's 409 counted as refused";
is $delta{Required}, 1, 'the 428 counted';

my $html = request(GET => '/server-status')->content;
like $html, qr{<h2>mod_conditional</h2>}, 'the HTML page has a section';
like $html, qr{Store sqlite:\S+conditional\.db: identity [0-9a-f]{16}},
    '... naming the store and its identity';
