# A browser in front (issue 11): headless Chromium (Debian's chromium)
# loads a page that fetch()es two representations of one URL (JSON and XML
# by Accept, gzip by mod_deflate) and revalidates them through its own
# HTTP cache. Chromium keeps one entry per URL and revalidates it with the
# stored tag even when the request's Accept differs from the entry's
# (a Vary mismatch): the XML request must then get XML, not a 304 that
# makes it show the cached JSON. Checked from the page's content and from
# the module's access log.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;
use CondProc;

my $chromium = find_program('chromium', 'chromium-browser');
# Skipped where it is missing, but not in CI (CI=true), where build/deps.sh
# installs it: there the test goes on and fails.
plan skip_all => 'chromium not found (Debian package "chromium")'
    unless $chromium || $ENV{CI};
plan tests => 6;

my $dir = work_dir('chromium');
my $name = uniq_name('browser');
my $path = "/dnego/docs/$name";
request(PUT => $path, body => 'one');

my $log = "$dir/chromium.log";
my $pid = start_process("$dir/dom.html", 'timeout', '120', $chromium,
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-dev-shm-usage', '--disable-extensions',
    "--user-data-dir=$dir/profile", "--crash-dumps-dir=$dir",
    '--virtual-time-budget=20000', '--dump-dom',
    url_of("/browser/variants.html?doc=$name"));
waitpid $pid, 0;
CondProc::stop_process($pid);
my $dom = do { local $/; open my $fh, '<', "$dir/dom.html"; <$fh> } // '';
my ($result) = $dom =~ m{<pre id="out">result\n(.*?)</pre>}s;
my @lines = split /\n/, $result // '';
ok @lines == 4, 'the page made its four fetches'
    or diag substr($dom, 0, 2000);
like $lines[0], qr{^200 application/json \{"lang":"en"}, 'JSON: JSON';
like $lines[1], qr{^200 application/xml &lt;doc lang="en"},
    'XML after JSON (Chromium revalidates with the JSON tag): XML';
like $lines[2], qr{^200 application/json \{"lang":"en"},
    'JSON after XML, revalidated: JSON';
like $lines[3], qr{^200 application/json \{"lang":"en"},
    'JSON revalidated again: JSON';

open my $fh, '<', logs_dir() . '/conditional_log' or die "conditional_log: $!";
my @seen = map { m{^GET \Q$path\E (\d+) } ? $1 : () } <$fh>;
is "@seen", '200 200 200 304',
    "the module's log: the XML and the first no-cache JSON went to the "
    . 'backend, the last revalidation was a 304';
