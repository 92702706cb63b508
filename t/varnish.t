# Varnish in front (issue 11): a real varnishd (Debian's varnish), started
# here on a free port, caching representations of one negotiated,
# compressed, proxied resource (/dnego/: JSON/XML by Accept, en/fr by
# Accept-Language, gzip by mod_deflate). They go stale every 2 s (the
# backend's max-age, on the second of two Cache-Control lines) and Varnish
# revalidates them with the tags it holds: every client must always get the
# body, type, language and coding it asked for - JSON in English and JSON in
# French differ by Accept-Language alone, the second Vary line, so a 304
# that kept only the first would have Varnish serve English to the French
# client - the revalidations must be answered by the module's 304s, and a
# write must show within the TTL the 200s named - not the 120 s of
# Varnish's default TTL, which is what a 304 carrying only the first
# Cache-Control line would give.

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

my $varnishd = find_program('/usr/sbin/varnishd', 'varnishd');
# Skipped where it is missing, but not in CI (CI=true), where build/deps.sh
# installs it: there the test goes on and fails.
plan skip_all => 'varnishd not found (Debian package "varnish")'
    unless $varnishd || $ENV{CI};
plan tests => 1 + 4 * 5 + 1 + 3 + 1;

my $dir = work_dir('varnish');
my $port = free_port();
my ($backend) = Apache::TestRequest::hostport() =~ /:(\d+)$/;
my $pid = start_process("$dir/varnishd.log", $varnishd, '-F', '-j', 'none',
    '-n', "$dir/n", '-a', "127.0.0.1:$port", '-b', "127.0.0.1:$backend",
    '-s', 'malloc,32m', '-p', 'default_ttl=120', '-p', 'default_grace=0',
    '-p', 'default_keep=300');
ok wait_port($port, 90, $pid), "varnishd listens on $port"
    or BAIL_OUT('varnishd did not start: ' . `tail -n 20 $dir/varnishd.log`);

my $ua = LWP::UserAgent->new(timeout => 60, keep_alive => 0);
my $name = uniq_name('varnish');
my $path = "/dnego/docs/$name";
request(PUT => $path, body => 'one');

sub round {
    my ($round, $text) = @_;
    each_representation($ua, "http://127.0.0.1:$port$path", $round, $text,
                        'json-en', 'json-en gzip', 'json-fr', 'xml-fr', 'xml-fr gzip');
}

sub module_304s { module_log_count($path, 304) }

round('first', 'one');
# A client holding the JSON asks for the XML with the JSON's tag: Varnish
# compares it with the tag of the XML it holds and answers itself - with a
# 304, were the tag shared, and the client would show its JSON as the XML.
my $url = "http://127.0.0.1:$port$path";
my $jtag = $ua->get($url, CondTest::asking('json-en gzip'))->header('ETag');
is_representation($ua->get($url, CondTest::asking('xml-fr gzip'),
                           'If-None-Match' => $jtag),
                  'xml-fr gzip', 'one', 'XML asked with the JSON tag: the XML');
sleep 3;
round('stale, revalidated', 'one');
my $after_first = module_304s();
ok $after_first >= 2, "Varnish revalidated with the module's 304s ($after_first)";
sleep 3;
round('stale again', 'one');
ok module_304s() > $after_first, '... and again once the 304s aged out';

# A write: within the backend's TTL every client sees it.
my $tag = request(GET => $path)->header('ETag');
my $res = request(PUT => $path, body => 'two', headers => [ 'If-Match' => $tag ]);
ok $res->is_success, 'a write through the module' or diag $res->code;
sleep 3;
round('after a write', 'two');

stop_process($pid);
ok !kill(0, $pid), 'varnishd stopped';
