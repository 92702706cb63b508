# The store's file system full: writes get 503 and the error log says so in
# SQLite's words ("database or disk is full"), not as a bare status; once
# there is room again, writes go through. build/run-tests.sh mounts a 2 MiB
# tmpfs on t/full when it runs as root; elsewhere this test is skipped.
# The store lives there, in an httpd of its own (build/sandbox.sh).

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use HTTP::Request ();
use IO::Socket::INET ();
use LWP::UserAgent ();
use CondTest;

my $full = Apache::Test::vars('serverroot') . '/full';

sub mounted {
    my $dir = shift;
    open my $fh, '<', '/proc/mounts' or return 0;
    return scalar grep { (split ' ')[1] eq $dir } <$fh>;
}

plan skip_all => "no small file system to fill at $full (mounted by "
    . 'build/run-tests.sh when it runs as root)'
    unless -d $full && -w $full && mounted($full);
plan tests => 6;

my $port = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                 LocalPort => 0)->sockport;
my $dir = logs_dir() . "/diskfull-$port";
my %env = (PORT => $port, STORE => "$full/store/conditional.db",
           ACCESSLOG => 0);
sub server { sandbox(shift, $dir, %env) }
my $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 0);
sub req {
    my ($method, $path, $body) = @_;
    my $r = HTTP::Request->new($method, "http://127.0.0.1:$port$path");
    if (defined $body) {
        $r->content($body);
        $r->header('Content-Type' => 'application/json');
    }
    return $ua->request($r);
}

ok server('start'), 'server started with its store on a 2 MiB file system';
is req(PUT => '/api/docs/first', '{"v":1}')->code, 201,
    'a write while there is room';

# Fill every block that is left.
my $filler = "$full/filler";
open my $fh, '>', $filler or die "$filler: $!";
my $chunk = 'x' x 4096;
1 while syswrite $fh, $chunk;
close $fh;

my %codes;
for my $i (1 .. 40) {
    $codes{ req(PUT => "/api/docs/full-$i", '{"v":"' . ('y' x 2000) . '"}')
            ->code }++;
}
ok $codes{503}, 'with the disk full, writes get 503'
    or diag join ' ', %codes;
open my $log, '<', "$dir/logs/error.log";
my @lines = grep { /COND000/ } <$log>;
ok grep({ /database or disk is full/ } @lines),
    '... and the log says "database or disk is full"'
    or diag @lines[0 .. ($#lines < 5 ? $#lines : 5)];
unlink $filler;
my $ok = 0;
for (1 .. 10) {
    last if ($ok = req(PUT => "/api/docs/after", '{"v":2}')->is_success);
    sleep 1;
}
ok $ok, 'with room again, writes go through';
ok server('stop'), 'server stopped';
