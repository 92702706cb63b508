# A power cut: everything the store wrote since its last sync is gone.
#
# The test server is killed outright (kill -9 of every process, as the
# power would), the store (powercut.db of one virtual host) is put back to
# a sync point taken earlier (a checkpoint fsyncs the WAL and the database;
# the files are copied right after it) and its -shm, which is memory, is
# removed. The server is started again as after a reboot (another
# CONDITIONAL_BOOT_ID). Then no tag handed out before may validate, no
# If-Match from before may let a write through, and no version number
# handed out before may come back.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use File::Copy qw(copy);
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 12;

my $V = 'conditional_powercut';
my $logs = logs_dir();
my $db = "$logs/powercut.db";

sub get { request(GET => $_[0], vhost => $V, @_[1 .. $#_]) }

sub put {
    my ($path, $tag, $data) = @_;
    return request(PUT => $path, vhost => $V, json => $data,
                   headers => [ 'If-Match' => $tag ]);
}

sub version_of {
    my ($v) = $_[0] =~ /-([0-9a-f]+)"$/;
    return defined $v ? hex $v : -1;
}

# Every process of the test server: the parent's process group.
sub server_pids {
    open my $fh, '<', "$logs/httpd.pid" or die "httpd.pid: $!";
    chomp(my $pid = <$fh>);
    return $pid;
}

my $name = uniq_name('cut');
my $path = "/api/docs/$name";
my $other = "/api/docs/" . uniq_name('cut-other');

# Before the sync point: a document at some version.
create_doc($path, { v => 'synced' }, vhost => $V);
create_doc($other, { v => 'synced' }, vhost => $V);
my $t1 = get($path)->header('ETag');
ok is_module_tag($t1), "a tag before the sync point: $t1";

# The sync point.
system("sqlite3 '$db' 'PRAGMA wal_checkpoint(FULL);' >/dev/null") == 0
    or die "sqlite3 checkpoint failed";
for my $f ('', '-wal') {
    copy("$db$f", "$db.snap$f") or die "copy $db$f: $!";
}

# After it: more writes, handed out and acknowledged, then lost.
my @seen = ($t1);
my $tag = $t1;
for my $i (1 .. 3) {
    my $res = put($path, $tag, { v => "lost $i" });
    $tag = $res->header('ETag');
    push @seen, $tag;
}
my $t2 = $tag;
ok is_module_tag($t2) && $t2 ne $t1, "tags after the sync point: ... $t2";
my $o2 = get($other)->header('ETag');
push @seen, $o2;
my $highest = (sort { $b <=> $a } map { version_of($_) } @seen)[0];

# The power is cut.
my $pid = server_pids();
open my $fh, '<', "/proc/$pid/cmdline" or die "cmdline: $!";
my @argv = split /\0/, do { local $/; <$fh> };
close $fh;
open $fh, '<', "/proc/$pid/environ" or die "environ: $!";
my %env = map { /^([^=]*)=(.*)$/s ? ($1, $2) : () } split /\0/,
    do { local $/; <$fh> };
close $fh;
ok kill('KILL', -getpgrp($pid)) || kill('KILL', -$pid) || kill('KILL', $pid),
    'every process of the server is killed';
my $t0 = time;
sleep 0.1 while kill(0, $pid) && time - $t0 < 10;
sleep 0.5;
for my $f ('', '-wal') {
    rename "$db.snap$f", "$db$f" or die "rename $db.snap$f: $!";
}
unlink "$db-shm";

# The machine boots again.
{
    local %ENV = (%env, CONDITIONAL_BOOT_ID => "after-the-cut-$$");
    system(@argv) == 0 or die "restarting httpd failed";
}
$t0 = time;
my $res;
while (time - $t0 < 30) {
    $res = eval { get($other) };
    last if $res && $res->code == 200;
    sleep 0.2;
}
is $res && $res->code, 200, 'the server runs again';

is get($path, headers => [ 'If-None-Match' => $t1 ])->code, 200,
    'the tag of the synced version does not validate';
is get($path, headers => [ 'If-None-Match' => $t2 ])->code, 200,
    'nor does a tag of a lost version';
is get($other, headers => [ 'If-None-Match' => $o2 ])->code, 200,
    'nor the tag of an untouched document';
is put($path, $t1, { v => 'blind 1' })->code, 412,
    'If-Match with the synced tag lets no write through';
is put($path, $t2, { v => 'blind 2' })->code, 412,
    '... nor with a lost one';
my $now = get($path);
my $t3 = $now->header('ETag');
ok is_module_tag($t3) && !grep({ $_ eq $t3 } @seen),
    "a new tag: $t3" or diag "@seen";
$res = put($path, $t3, { v => 'after' });
is $res->code, 200, 'a write with the new tag goes through';
cmp_ok version_of($res->header('ETag')), '>', $highest,
    'its version is above every version handed out before the cut';
