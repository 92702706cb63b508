# A store that is there but cannot be written: locked by another process
# past the busy timeout, or read-only. Reads go on (a locked WAL store can
# still be read, so 304s still work); writes get 503 + Retry-After without
# running the backend; and once the store is writable again nothing is left
# claimed or lost. A store call that fails where the request goes on all
# the same (the release after a refused write, keeping a tag's version or
# metadata) is logged with the store's own words.

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

plan tests => 26;

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

# Another process takes the write lock of the main store (sqlite3 in a
# transaction) and holds it until the returned sub is called.
sub lock_store {
    my $db = logs_dir() . '/conditional.db';
    open my $sq, '|-', 'sqlite3', $db or die "sqlite3: $!";
    $sq->autoflush(1);
    print $sq "BEGIN IMMEDIATE;\nUPDATE sequence SET last = last;\n";
    sleep 0.5;
    return sub {
        print $sq "ROLLBACK;\n";
        close $sq;
    };
}

# The error log's lines with TAG that name NAME.
sub logged {
    my ($tag, $name) = @_;
    open my $log, '<', logs_dir() . '/error_log' or die "error_log: $!";
    return grep { /\Q$tag\E: .*\Q$name\E/ } <$log>;
}

# 1. Another process holds the write lock (sqlite3 in a transaction).
{
    my $name = uniq_name('locked');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 1 });
    my $tag = current_tag($path);
    my $unlock = lock_store();

    my $res = request(GET => $path, headers => [ 'If-None-Match' => $tag ]);
    is $res->code, 304, 'locked: a revalidation still gets 304';
    $res = request(GET => $path);
    is $res->code, 200, 'locked: a GET is served';
    my $t0 = time;
    write_is_503('locked', $path, $name, $tag);
    cmp_ok time - $t0, '<', 6, '... after the busy timeout, not forever';

    $unlock->();
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

# 3. The backend refuses a write (4xx) while the store is locked: the
# release of the claim fails, which is logged with the store's words; the
# claim, no longer renewed, runs out with its lease (5 s on this virtual
# host) and the key then gets a new version.
{
    my %fv = (vhost => 'conditional_faults');
    my $name = uniq_name('refused');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 1 }, %fv);
    my $tag = current_tag($path, %fv);
    my $put = background(PUT => "$path?sleep=1&status=422", %fv,
                         headers => [ 'If-Match' => $tag ],
                         json => { v => 'refused' });
    wait_claim($path, $fv{vhost});
    my $unlock = lock_store();
    my $r = $put->();
    $unlock->();
    is $r->[0], 422, 'refused while locked: the backend\'s 422 goes out';
    my @lines = logged('COND00028', $name);
    ok @lines && $lines[0] =~ /database is locked/,
        '... the failed release is logged, with the store\'s words'
        or diag 'COND00028 lines: ' . scalar @lines;
    my $t0 = time;
    my $now;
    while (time - $t0 < 10) {
        $now = current_tag($path, %fv);
        last if is_module_tag($now);
        sleep 0.5;
    }
    ok is_module_tag($now) && $now ne $tag,
        '... until its lease runs out: then the key has a new version'
        or diag "$tag -> $now";
    is stored_data($name)->{v}, 1, '... and the refused write changed nothing';
}

# 4. Tagging a 200 needs the store to write: a key seen for the first time
# is registered, a representation's metadata kept. While the store is
# locked both fail after the busy timeout; the 200 still goes out
# (untagged when the key could not be registered), and the log says why.
{
    my $name = uniq_name('tagwrite');
    my $path = "/api/docs/$name";
    create_doc("/raw/docs/$name", { v => 1 });
    my $unlock = lock_store();
    my $res = request(GET => $path);
    is $res->code, 200, 'locked: a new key\'s GET is served';
    ok !defined $res->header('ETag'), '... untagged: it could not be registered';
    my @lines = logged('COND00113', $name);
    ok @lines && $lines[0] =~ /database is locked/,
        '... and the log says so, with the store\'s words';
    $unlock->();

    # Registered now; a write gives it a version with no metadata kept.
    $res = request(PUT => $path, json => { v => 2 },
                   headers => [ 'If-Match' => current_tag($path) ]);
    $unlock = lock_store();
    $res = request(GET => $path);
    ok $res->code == 200 && is_module_tag($res->header('ETag')),
        'locked: a known key\'s GET is tagged';
    @lines = logged('COND00110', $name);
    ok @lines && $lines[0] =~ /database is locked/,
        '... its metadata could not be kept, and the log says why';
    $unlock->();
}
