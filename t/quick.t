# ConditionalQuickHandler On (the conditional_quick virtual host): a
# matching If-None-Match is answered in httpd's quick handler, before URL
# mapping and access control, with the very bytes of the normal path's 304;
# everything else goes the normal way. A representation last served to a
# request with credentials, one under a ConditionalKey of its own, and one
# whose location was put behind authentication by a graceful restart are
# never answered early, nor one under a directory that allows .htaccess
# files. Which path answered is told by mod_status's counters:
# QuickNotModified counts the early 304s only.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use IO::Socket::INET ();
use MIME::Base64 ();
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 37;

my %q = (vhost => 'conditional_quick');
my $basic = 'Basic ' . MIME::Base64::encode_base64(join(':', @{+AUTH}), '');

sub counters {
    my $res = request(GET => '/server-status?auto');
    return { $res->content =~ /^Conditional(\w+): (\d+)$/mg };
}

# Send one request and count: [response, early 304s, all 304s] it made.
sub counted {
    my @req = @_;
    my $c0 = counters();
    my $res = request(@req);
    my $c1 = counters();
    return ($res, $c1->{QuickNotModified} - $c0->{QuickNotModified},
            $c1->{NotModified} - $c0->{NotModified});
}

# The response's bytes up to the end of its header, Date left out: what
# the client gets, line by line, in the order httpd wrote it.
sub raw_head {
    my ($vhost, $method, $path, @headers) = @_;
    local $Apache::TestRequest::Module = $vhost || 'default';
    my $hostport = Apache::TestRequest::hostport();
    my $sock = IO::Socket::INET->new(PeerAddr => $hostport, Timeout => 30)
        or die "connect $hostport: $!";
    my $req = "$method $path HTTP/1.1\r\nHost: $hostport\r\n"
            . "Connection: close\r\n";
    while (my ($k, $v) = splice @headers, 0, 2) {
        $req .= "$k: $v\r\n";
    }
    print $sock "$req\r\n";
    local $/;
    my $all = <$sock> // '';
    my ($head) = $all =~ /\A(.*?\r\n)\r\n/s;
    $head //= $all;
    $head =~ s/^Date: [^\r\n]*\r\n//mi;
    return $head;
}

# One revalidation by both paths, byte for byte: first with credentials
# (the quick handler leaves those to the normal path), then without.
sub same_304 {
    my ($path, $what, @headers) = @_;
    my $c0 = counters();
    my $normal = raw_head($q{vhost}, GET => $path, @headers,
                          Authorization => $basic);
    my $c1 = counters();
    my $quick = raw_head($q{vhost}, GET => $path, @headers);
    my $c2 = counters();
    like $normal, qr{^HTTP/1\.1 304 }, "$what: the normal path's 304";
    is $c1->{QuickNotModified} - $c0->{QuickNotModified}, 0,
        '... not answered early';
    is $c2->{QuickNotModified} - $c1->{QuickNotModified}, 1,
        '... without credentials: answered early';
    is $quick, $normal, '... with the same bytes' or diag "$normal---\n$quick";
}

# A graceful restart, and the new generation answering.
sub graceful_restart {
    my $logs = logs_dir();
    open my $fh, '<', "$logs/httpd.pid" or die "httpd.pid: $!";
    chomp(my $pid = <$fh>);
    my $generation = sub {
        open my $log, '<', "$logs/error_log" or return 0;
        return scalar grep { /resuming normal operations/ } <$log>;
    };
    my $before = $generation->();
    kill 'USR1', $pid or die "kill USR1 $pid: $!";
    my $t0 = time;
    sleep 0.2 while $generation->() <= $before && time - $t0 < 20;
    sleep 1;
    return $generation->() > $before;
}

# ---------------------------------------------------------------------
# The plain API: the same 304 by both paths, HEAD too; a tag that does
# not match, and the directive Off, go the normal way.
my $name = uniq_name('quick');
my $path = "/api/docs/$name";
create_doc($path, { v => 1 }, %q);
wait_next_second();     # so that the 304s carry Last-Modified
my $tag = current_tag($path, %q);
ok is_module_tag($tag), 'a GET is tagged' or diag $tag;
same_304($path, 'GET', 'If-None-Match' => $tag);
like raw_head($q{vhost}, GET => $path, 'If-None-Match' => $tag),
    qr{^Last-Modified: .* GMT\r$}m, '... it carries Last-Modified';

# The key the quick handler builds is the one httpd's r->uri gives: dot
# segments, doubled slashes and %-escaped unreserved bytes normalised.
for my $spelling ("/api/./docs//$name",
                  '/api/docs/' . join '', map { sprintf '%%%02X', ord }
                                          split //, $name) {
    my $c0 = counters();
    my $head = raw_head($q{vhost}, GET => $spelling, 'If-None-Match' => $tag);
    my $c1 = counters();
    ok $head =~ m{^HTTP/1\.1 304 }
        && $c1->{QuickNotModified} - $c0->{QuickNotModified} == 1,
        "$spelling: the same key, answered early" or diag $head;
}

my $n = invocations($name);
my ($res, $early) = counted(HEAD => $path, %q,
                            headers => [ 'If-None-Match' => $tag ]);
is $res->code, 304, 'HEAD: 304';
is $early, 1, '... answered early';
is invocations($name), $n, '... the backend did not run';

my $all;
($res, $early, $all) = counted(GET => $path, %q,
                               headers => [ 'If-None-Match' => '"stale"' ]);
is $res->code, 200, 'a tag that does not match: 200';
is $early, 0, '... not answered early';
is invocations($name), $n + 1, '... by the backend';

my $main_tag = current_tag($path);
($res, $early, $all) = counted(GET => $path,
                               headers => [ 'If-None-Match' => $main_tag ]);
is $res->code, 304, 'ConditionalQuickHandler Off (main server): 304';
is_deeply [ $early, $all ], [ 0, 1 ], '... by the normal path';

# ---------------------------------------------------------------------
# Representations: each its own 304, every line of it the same; another
# representation's tag is no match for this one.
my %ask = (
    'json-en' => [ Accept => 'application/json', 'Accept-Language' => 'en' ],
    'xml-fr'  => [ Accept => 'application/xml',  'Accept-Language' => 'fr' ],
);
my $nego = '/nego/docs/' . uniq_name('quickvar');
request(PUT => $nego, %q, body => 'one',
        headers => [ 'Content-Type' => 'text/plain' ]);
my %vtag = map { $_ => request(GET => $nego, %q, headers => $ask{$_})
                       ->header('ETag') } keys %ask;
ok $vtag{'json-en'} ne $vtag{'xml-fr'} && is_module_tag($vtag{'xml-fr'}),
    'two representations, two tags' or diag explain \%vtag;
same_304($nego, 'json-en', @{ $ask{'json-en'} },
         'If-None-Match' => $vtag{'json-en'});
($res, $early) = counted(GET => $nego, %q, headers => [
    @{ $ask{'xml-fr'} }, 'If-None-Match' => $vtag{'json-en'} ]);
is_deeply [ $res->code, $early ], [ 200, 0 ],
    "xml-fr with json-en's tag: 200, not answered early";
($res, $early) = counted(GET => $nego, %q, headers => [
    @{ $ask{'xml-fr'} }, 'If-None-Match' => $vtag{'xml-fr'} ]);
is_deeply [ $res->code, $early, $res->header('ETag') ],
    [ 304, 1, $vtag{'xml-fr'} ], "xml-fr with its own tag: answered early";

# ---------------------------------------------------------------------
# Behind authentication: the 200 needed credentials, so a request without
# them reaches authentication and gets 401, never an early 304.
my $sname = uniq_name('quicksec');
my $spath = "/secure/docs/$sname";
create_doc($spath, { secret => 1 }, %q, auth => AUTH);
my $stag = current_tag($spath, %q, auth => AUTH);
ok is_module_tag($stag), 'behind authentication: tagged with credentials';
$n = invocations($sname);
($res, $early) = counted(GET => $spath, %q,
                         headers => [ 'If-None-Match' => $stag ]);
is_deeply [ $res->code, $early ], [ 401, 0 ],
    '... its tag without credentials: 401, not answered early';
ok !defined $res->header('ETag'), '... and no ETag';
($res, $early) = counted(GET => $spath, %q, auth => AUTH,
                         headers => [ 'If-None-Match' => $stag ]);
is_deeply [ $res->code, $early ], [ 304, 0 ],
    '... with credentials: 304 by the normal path';
is invocations($sname), $n, '... the backend never ran';

# A ConditionalKey of its own (the same key, as an expression): the quick
# handler cannot evaluate it, so it never answers early.
my $qpath = '/qapi/docs/' . uniq_name('quickkey');
create_doc($qpath, { v => 1 }, %q);
my $qtag = current_tag($qpath, %q);
($res, $early) = counted(GET => $qpath, %q,
                         headers => [ 'If-None-Match' => $qtag ]);
is_deeply [ $res->code, $early ], [ 304, 0 ],
    'ConditionalKey: 304 by the normal path';

# Switched on by an .htaccess (t/htdocs/hta): one can add authentication
# without a restart, so a directory that allows one is never public.
my $htag = current_tag('/hta/doc.json', %q);
ok is_module_tag($htag), '.htaccess "Conditional On": tagged';
($res, $early) = counted(GET => '/hta/doc.json', %q,
                         headers => [ 'If-None-Match' => $htag ]);
is_deeply [ $res->code, $early ], [ 304, 0 ],
    '... 304 by the normal path';

# ---------------------------------------------------------------------
# Authentication added to a public location, and a graceful restart: the
# record made under the old configuration never answers early again.
my $conf = logs_dir() . '/quick-reload.conf';
END { unlink $conf if defined $conf && -e $conf }
my $aname = uniq_name('quickadd');
my $apath = "/addauth/docs/$aname";
create_doc($apath, { v => 1 }, %q);
my $atag = current_tag($apath, %q);
($res, $early) = counted(GET => $apath, %q,
                         headers => [ 'If-None-Match' => $atag ]);
is_deeply [ $res->code, $early ], [ 304, 1 ],
    'a public location: answered early';

open my $fh, '>', $conf or die "$conf: $!";
my $root = Apache::Test::vars('serverroot');
print $fh <<"CONF";
<Location /addauth/>
    AuthType Basic
    AuthName "docs"
    AuthBasicProvider file
    AuthUserFile "$root/conf/htpasswd"
    Require valid-user
</Location>
CONF
close $fh or die "$conf: $!";
ok graceful_restart(), 'authentication added, restarted gracefully';
$n = invocations($aname);
($res, $early) = counted(GET => $apath, %q,
                         headers => [ 'If-None-Match' => $atag ]);
is_deeply [ $res->code, $early ], [ 401, 0 ],
    '... the same tag without credentials: 401, not answered early';
($res, $early) = counted(GET => $apath, %q, auth => AUTH,
                         headers => [ 'If-None-Match' => $atag ]);
is_deeply [ $res->code, $early ], [ 304, 0 ],
    '... with credentials: 304 by the normal path';
is invocations($aname), $n, '... the backend never ran';

unlink $conf or die "$conf: $!";
ok graceful_restart(), 'authentication removed again, restarted gracefully';
