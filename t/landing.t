# The demo greets a browser: `make run` (build/demo.sh) is started on a free
# port in a directory of its own, and its / must be a page that says what
# the demo is, links the API and /server-status (which answers this machine
# only), and shows the curl walk-through with the seeded document's real
# ETag. Headless Chromium loads the page and takes a screenshot
# (t/logs/landing.png), so "loads in a browser" is checked by a browser.
#
# This test does not use the Apache::Test server: the demo is a server of
# its own (build/sandbox.sh).

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Path ();
use IO::Socket::INET ();
use LWP::UserAgent ();
use CondTest;

my $top  = "$FindBin::Bin/..";
my $logs = logs_dir();
my $dir  = "$logs/demo";
my ($chromium) = grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH};

plan tests => 16;

my $port = free_port();     # CondTest
my $base = "http://127.0.0.1:$port";
File::Path::rmtree($dir);
$ENV{PORT}     = $port;
$ENV{DEMO_DIR} = $dir;
$ENV{STORE}    = "$dir/store/conditional.db";
my $out = `sh "$top/build/demo.sh" start 2>&1`;
my $started = $? == 0;
# Stopped even when start failed: its httpd may be up with the seeding
# failed (a document that came back without an ETag).
END {
    local $?;
    system "sh '$top/build/demo.sh' stop >/dev/null 2>&1";
}
ok $started, 'make run (build/demo.sh start) starts the demo' or diag $out;
like $out, qr{^Logs:\s+\Q$dir\E/logs/\s+\(access\.log}m,
    '... and prints where the access log is';

my $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 0);
my $res = $ua->get("$base/");
is $res->code, 200, 'GET / answers 200';
like $res->header('Content-Type'), qr{^text/html\b}, '... with an HTML page';
my $page = $res->decoded_content // '';
like $page, qr{<title>mod_conditional demo</title>}, '... titled for the demo';
like $page, qr{legacy CGI document API}, '... that says what the demo is';

my %href = map { $_ => 1 } $page =~ /href="([^"]+)"/g;
ok $href{'/api/docs/hello'} && $href{'/server-status'},
    'it links the API and /server-status' or diag join ' ', sort keys %href;
my @dead = grep { $ua->get("$base$_")->code != 200 } sort keys %href;
is "@dead", '', '... and every link answers 200';

# As curl asks (Accept: */*): the page's walk-through is curl's, and each
# representation has its own tag.
my $tag = $ua->get("$base/api/docs/hello", Accept => '*/*')->header('ETag');
ok is_module_tag($tag), 'the API answers with a module ETag';
like $page, qr{curl -i -H 'If-None-Match: \Q$tag\E' http://localhost:$port/api/docs/hello},
    'the page shows the curl walk-through with that ETag';

# Served to this machine only: the server listens on 127.0.0.1, and a
# client coming from another loopback address (127.0.0.2) is refused.
my $far = LWP::UserAgent->new(timeout => 30, keep_alive => 0,
                              local_address => '127.0.0.2');
is $far->get("$base/server-status")->code, 403,
    '/server-status refuses a client other than 127.0.0.1';
like $ua->get("$base/server-status?auto")->decoded_content,
    qr/^Conditional\w+: \d+$/m, '... and shows the module\'s counters';

SKIP: {
    skip 'chromium is not installed (sh build/deps.sh installs it)', 4
        unless $chromium;
    my $png = "$logs/landing.png";
    my $profile = "$logs/chromium-profile";
    unlink $png;
    # --no-sandbox: Chromium's sandbox needs user namespaces, which
    # containers often lack; the page is our own, served from loopback.
    my @cmd = ('timeout', '180', $chromium, '--headless', '--no-sandbox',
               '--disable-gpu', '--hide-scrollbars', '--no-first-run',
               "--user-data-dir=$profile", '--window-size=1280,1400');
    my $q = join ' ', map { "'$_'" } @cmd;
    my $dom = `$q --dump-dom '$base/' 2>/dev/null`;
    like $dom, qr{<h1>mod_conditional demo</h1>},
        'headless Chromium loads the page' or diag substr $dom, 0, 500;
    like $dom, qr{If-None-Match: \Q$tag\E}, '... with the walk-through';
    system "$q --screenshot='$png' '$base/' >/dev/null 2>&1";
    my $magic = '';
    if (open my $fh, '<:raw', $png) { read $fh, $magic, 8 }
    is $magic, "\x89PNG\r\n\x1a\n", "Chromium took a screenshot ($png)";
    cmp_ok -s $png, '>', 20_000, '... of a page that is not blank';
    File::Path::rmtree($profile);
}
