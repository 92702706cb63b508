# A store that is there but cannot be written: locked by another process
# past the busy timeout, or read-only. Reads go on (a locked WAL store can
# still be read, so 304s still work); writes get 503 + Retry-After without
# running the backend; and once the store is writable again nothing is left
# claimed or lost.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use IO::Handle ();
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 17;

sub write_is_503 {
    my ($what, $path, $name, $tag, %opt) = @_;
    my $n = invocations($name);
    my $res = request(PUT => $path, %opt,
                      headers => [ $tag ? ('If-Match' => $tag) : () ],
                      json => { v => 'blocked' });
    is $res->code, 503, "$what: a write gets 503";
    like $res->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After';
    is invocations($name), $n, '... and the backend did not run';
}

# 1. Another process holds the write lock (sqlite3 in a transaction).
{
    my $name = uniq_name('locked');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 1 });
    my $tag = current_tag($path);
    my $db = logs_dir() . '/conditional.db';
    open my $sq, '|-', 'sqlite3', $db or die "sqlite3: $!";
    $sq->autoflush(1);
    print $sq "BEGIN IMMEDIATE;\nUPDATE sequence SET last = last;\n";
    sleep 0.5;

    my $res = request(GET => $path, headers => [ 'If-None-Match' => $tag ]);
    is $res->code, 304, 'locked: a revalidation still gets 304';
    $res = request(GET => $path);
    is $res->code, 200, 'locked: a GET is served';
    my $t0 = time;
    write_is_503('locked', $path, $name, $tag);
    cmp_ok time - $t0, '<', 6, '... after the busy timeout, not forever';

    print $sq "ROLLBACK;\n";
    close $sq;
    $res = request(PUT => $path, headers => [ 'If-Match' => $tag ],
                   json => { v => 2 });
    is $res->code, 200, 'unlocked: the same write now goes through';
    is stored_data($name)->{v}, 2, '... and is stored';
}

# 2. A read-only store (its own virtual host, made read-only before any
# child opened it).
{
    my %ro = (vhost => 'conditional_rostore');
    my @files = grep { -e } map { logs_dir() . "/ro.db$_" } '', '-wal', '-shm';
    ok @files >= 1, 'the read-only store exists';
    chmod 0444, @files;
    my $name = uniq_name('ro');
    my $path = "/api/docs/$name";
    create_doc("/raw/docs/$name", { v => 1 });
    my $res = request(GET => $path, %ro);
    is $res->code, 200, 'read-only: a GET is served';
    write_is_503('read-only', $path, $name, undef, %ro);
    is stored_data($name)->{v}, 1, '... nothing was written';

    chmod 0644, @files;
    $res = request(GET => $path, %ro);
    my $tag = $res->header('ETag');
    ok is_module_tag($tag), 'writable again: the GET is tagged'
        or diag 'ETag: ' . ($tag // 'none');
    # Several, so that they meet the connections every child opened while
    # the file was read-only.
    my @codes;
    for my $v (2 .. 5) {
        $res = request(PUT => $path, %ro, headers => [ 'If-Match' => $tag ],
                       json => { v => $v });
        push @codes, $res->code;
        $tag = $res->header('ETag');
    }
    is "@codes", '200 200 200 200', '... and writes go through';
    is stored_data($name)->{v}, 5, '... and are stored';
}
