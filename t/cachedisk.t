# httpd's own cache in front (issue 11): a second httpd, started here on a
# free port, with mod_cache + mod_cache_disk and mod_proxy to this test
# server, caching several representations of one negotiated, compressed
# resource (/dnego/). They go stale every 2 s and mod_cache revalidates
# them with the tags it stored: every client must always get the body,
# type, language and coding it asked for, the revalidations must be the
# module's 304s, mod_cache must find no contradiction in them (it throws
# the entry away when a 304's Content-Location differs from its 200's), and
# a write must show once the entries are stale.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use LWP::UserAgent ();
use CondTest;
use CondProc;

# The front loads nothing of this module, so under SANITIZE=1 it runs as the
# real httpd rather than build/asan-httpd.sh: a report from it would be
# httpd's or APR's, not ours, and would fail the run all the same.
my $httpd = $ENV{COND_REAL_HTTPD} || Apache::Test::vars('httpd');
my $apxs = $ENV{APXS} || find_program('apxs', 'apxs2');
chomp(my $libexec = $apxs ? `$apxs -q LIBEXECDIR 2>/dev/null` : '');
# prefork: under -X, event's stop closes its workers' sockets from the main
# thread while the listener frees their pools (httpd's own race: a SEGV in
# apr_os_sock_get, an ASan report under the preload, else a core file in
# the tree that Apache::Test blames on "server dumped core"). Prefork -X
# has no threads; the requests here come one at a time.
my @mods = qw(mpm_prefork authz_core proxy proxy_http cache cache_disk);
my @missing = grep { !-e "$libexec/mod_$_.so" } @mods;
# Skipped where they are missing, but not in CI (CI=true), where Debian's
# apache2 has them: there the test goes on and fails.
plan skip_all => "httpd modules missing: @missing" if @missing && !$ENV{CI};
plan tests => 1 + 3 * 4 + 3 + 1;

my $dir = work_dir('cachedisk');
my $port = free_port();
my ($backend) = Apache::TestRequest::hostport() =~ /:(\d+)$/;
mkdir "$dir/cache";
open my $conf, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!";
print $conf join '', map { "LoadModule ${_}_module $libexec/mod_$_.so\n" } @mods;
print $conf <<"EOF";
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
LogLevel warn cache:debug
CacheRoot "$dir/cache"
CacheEnable disk /
CacheHeader On
CacheDirLevels 1
CacheDirLength 1
ProxyPass / http://127.0.0.1:$backend/
EOF
close $conf;
my $pid = start_process("$dir/stdout", $httpd, '-X', '-f', "$dir/httpd.conf");
ok wait_port($port, 60, $pid), "caching httpd listens on $port"
    or BAIL_OUT('caching httpd did not start: ' . `tail -n 20 $dir/error_log $dir/stdout`);

my $ua = LWP::UserAgent->new(timeout => 60, keep_alive => 0);
my $name = uniq_name('cache');
my $path = "/dnego/docs/$name";
request(PUT => $path, body => 'one');

sub round {
    my ($round, $text) = @_;
    each_representation($ua, "http://127.0.0.1:$port$path", $round, $text,
                        'json-en', 'json-fr', 'json-fr gzip', 'xml-en gzip');
}

sub module_304s { module_log_count($path, 304) }

round('first', 'one');
sleep 3;
round('stale, revalidated', 'one');
my $n = module_304s();
ok $n >= 4, "mod_cache revalidated every representation with a 304 ($n)";
my $tag = request(GET => $path)->header('ETag');
my $res = request(PUT => $path, body => 'two', headers => [ 'If-Match' => $tag ]);
ok $res->is_success, 'a write through the module' or diag $res->code;
sleep 3;
round('after a write', 'two');
my @contradictions = do {
    open my $log, '<', "$dir/error_log";
    grep { /contradict|modified/i } <$log>;
};
ok !@contradictions, 'mod_cache saw no 304 contradict its 200'
    or diag @contradictions[0 .. ($#contradictions > 4 ? 4 : $#contradictions)];

stop_process($pid);
ok !kill(0, $pid), 'caching httpd stopped';
