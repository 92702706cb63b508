# A child killed by a restart in the middle of a write exits quietly.
#
# prefork's children die in their signal handler, which destroys the
# child's pool there and then - with the request's store connection still
# borrowed when the signal came during a store call. The connection list's
# own cleanup then failed an assertion and the child aborted ("exit signal
# Abort (6)" in the error log, a core where cores are kept). Here a
# prefork httpd of the test's own takes read-modify-write clients through
# the module while it is restarted over and over; no child may die of a
# signal or hang until the parent kills it (a child torn down inside a
# store call once settled the interrupted write from the signal handler
# and waited forever on SQLite's mutex), and the server still takes
# writes afterwards.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use LWP::UserAgent ();
use POSIX ();
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 5;

my $CLIENTS = 16;     # over 4 documents: their writes wait for each other
my $RESTARTS = 25;
my $port = free_port();
my $dir = logs_dir() . "/childexit-$port";
my %env = (PORT => $port, MPM => 'prefork', ACCESSLOG => 0);
my $base = "http://127.0.0.1:$port";

ok sandbox(start => $dir, %env), 'prefork server started';

my $ua = LWP::UserAgent->new(timeout => 10);
sub put {
    my ($path, $tag) = @_;
    return $ua->put("$base$path", 'Content-Type' => 'application/json',
                    ($tag ? ('If-Match' => $tag) : ()), Content => '{"n":1}');
}
put("/luaraw/docs/x$_") for 1 .. 4;

# wrk's read-modify-write chains (build/bench/putchain.lua: GET, then PUT
# on the tag each answer gives), connections kept alive, the children busy
# all the time and waiting for each other's locks, so that the restarts
# find requests inside the store.
my $tree = Apache::Test::vars('serverroot') . '/..';
my $secs = int($RESTARTS * 0.8) + 3;
my $wrk = fork // die "fork: $!";
if (!$wrk) {
    $ENV{PUTPATH} = '/lua/docs/x';
    $ENV{MODE} = 'cond';
    open STDOUT, '>', "$dir/wrk.out";
    { exec 'wrk', '-t4', "-c$CLIENTS", "-d${secs}s", '-s',
          "$tree/build/bench/putchain.lua", $base }
    POSIX::_exit(127);
}
my @kids = ($wrk);
sleep 1;
my $restarted = 0;
for (1 .. $RESTARTS) {
    $restarted++ if sandbox(restart => $dir, %env);
    sleep 0.7;
}
waitpid $_, 0 for @kids;
is $restarted, $RESTARTS, "restarted $RESTARTS times with writes in flight";

open my $fh, '<', "$dir/logs/error.log" or die "error.log: $!";
my @log = <$fh>;
my @died = grep { /exit signal|Assertion/ } @log;
is scalar(@died), 0, 'no child died of a signal' or diag join '', @died;
# httpd's own words when a child outlives the restart's SIGTERM by seconds
my @hung = grep { /sending a SIGKILL|could not make child process/ } @log;
is scalar(@hung), 0, 'no child had to be killed' or diag join '', @hung;

# (A claim of a killed child holds its document for the lease: a fresh one.)
put('/luaraw/docs/after');
my $tag = $ua->get("$base/lua/docs/after")->header('ETag');
is put('/lua/docs/after', $tag)->code, 200, 'the server still takes writes';

sandbox(stop => $dir, %env);
