# What a write costs the store (issue "A write costs one trip to the
# store"): a write whose response is complete when its headers are known
# is a claim and one transaction that commits it, releases the claim and
# bumps its parent. Counted as committed transactions in the SQLite WAL.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 8;

# (generation salts, committed transactions) of the WAL as it is now
sub wal_state {
    open my $fh, '<:raw', logs_dir() . '/conditional.db-wal' or return;
    my $hdr;
    return ('', 0) unless read($fh, $hdr, 32) == 32;
    my $page = unpack 'N', substr $hdr, 8, 4;
    my $salts = substr $hdr, 16, 8;
    my ($n, $fh24) = (0);
    while (read($fh, $fh24, 24) == 24) {
        last if substr($fh24, 8, 8) ne $salts;
        $n++ if unpack('N', substr $fh24, 4, 4);
        seek $fh, $page, 1 or last;
    }
    return ($salts, $n);
}

# Transactions committed while $code runs, given what $before returned
# (run first, outside the count); tried again, $before included, when a
# checkpoint started the WAL over in between. $before gives each try
# what it needs afresh: a write that went through must not be sent again
# as it was (a create is no create the second time, a tag it made stale
# is a 412). Returns the count, $code's result and $before's values.
sub transactions_of {
    my ($code, $before) = @_;
    for (1 .. 3) {
        my @arg = $before ? $before->() : ();
        my ($s0, $n0) = wal_state();
        my $res = $code->(@arg);
        my ($s1, $n1) = wal_state();
        return ($n1 - $n0, $res, @arg) if $s0 eq $s1;
    }
    return (-1);
}

my $p = uniq_name('cost');
create_doc("/api/docs/$p");
my $tp = current_tag("/api/docs/$p");
ok is_module_tag($tp), 'a parent document, known to the store';

my ($n, $res, $child) = transactions_of(
    sub { request(PUT => $_[0], json => { v => 1 }) },
    sub { "/api/docs/$p/" . uniq_name('child') });
is $res && $res->code, 201, 'creating a child';
is $n, 2, '... costs a claim and one commit, parent bump included';
my $tc = $res->header('ETag');
ok is_module_tag($tc), '... and the new version is tagged';
is request(GET => "/api/docs/$p", headers => [ 'If-None-Match' => $tp ])->code,
    200, '... and the parent moved';

my $tag = $tc;
($n, $res) = transactions_of(
    sub { request(PUT => $child, json => { v => 2 },
                  headers => [ 'If-Match' => $_[0] ]) },
    sub { my $t = $tag // current_tag($child); undef $tag; $t });
is $res && $res->code, 200, 'replacing it with If-Match';
is $n, 2, '... costs the same two';

($n, $res) = transactions_of(sub {
    request(PUT => "/api/docs/$p/other?status=409", json => { v => 1 })
});
is $n, 2, 'a refused first write: a claim and a release that drops it';
