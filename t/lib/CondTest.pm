package CondTest;

# Shared helpers for the mod_conditional test suite: one way to send a
# request, names no other test (or earlier run) uses, and a look behind the
# server at what the legacy CGI (t/cgi-bin/docs.cgi) stored and how often it
# ran, so a test can tell "answered by the module" from "answered by the
# backend".

use strict;
use warnings;

use Exporter 'import';
use HTTP::Date ();
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use MIME::Base64 ();
use POSIX ();
use Time::HiRes ();

use Apache::Test ();
use Apache::TestRequest ();
use CondProc ();

our @EXPORT = qw(request uniq_name invocations global_invocations stored_doc
                 stored_data stored_v_when is_module_tag problem_of json_of
                 url_of data_dir logs_dir create_doc current_tag http_date
                 wait_next_second background claim_of wait_claim wait_invoked
                 AUTH is_representation each_representation
                 module_log_count sandbox free_port);

# Credentials for /secure/ (t/conf/htpasswd).
use constant AUTH => [ 'alice', 'wonderland' ];

my $JSON = JSON::PP->new->canonical->utf8->allow_nonref;
my $seq  = 0;
my $run  = sprintf '%x%x', time, $$;

# A fresh document name: unique within this test file and across runs,
# because the version store outlives a single test file.
sub uniq_name {
    my $prefix = shift || 'doc';
    return sprintf '%s-%s-%d', $prefix, $run, ++$seq;
}

sub data_dir { Apache::Test::vars('serverroot') . '/data' }
sub logs_dir { Apache::Test::vars('t_logs') }

# Base URL of the main server or of a named <VirtualHost> from extra.conf.in.
sub url_of {
    my ($path, $vhost) = @_;
    local $Apache::TestRequest::Module = $vhost || 'default';
    return 'http://' . Apache::TestRequest::hostport() . $path;
}

my $ua;
sub agent {
    # A new agent after fork(): children must not share a connection.
    if (!$ua || $ua->{__pid} != $$) {
        $ua = LWP::UserAgent->new(timeout => 60, keep_alive => 0);
        $ua->{__pid} = $$;
    }
    return $ua;
}

# request(METHOD => '/api/docs/x', headers => [..], json => $data,
#         body => $bytes, vhost => 'conditional_vhost', auth => [u, p])
sub request {
    my ($method, $path, %opt) = @_;
    my $req = HTTP::Request->new($method, url_of($path, $opt{vhost}));
    my @h = @{ $opt{headers} || [] };
    while (my ($k, $v) = splice @h, 0, 2) {
        $req->push_header($k => $v);
    }
    if (my $auth = $opt{auth}) {
        $req->header(Authorization => 'Basic '
            . MIME::Base64::encode_base64("$auth->[0]:$auth->[1]", ''));
    }
    my $body = exists $opt{json} ? $JSON->encode($opt{json}) : $opt{body};
    if (defined $body) {
        $req->content($body);
        $req->header('Content-Type' => 'application/json')
            unless $req->header('Content-Type');
        $req->header('Content-Length' => length $body);
    }
    return agent()->request($req);
}

# The CGI's per-document invocation counter (see docs.cgi).
sub invocations {
    my $name = shift;
    (my $file = $name) =~ s/([^A-Za-z0-9._-])/sprintf '%%%02X', ord $1/ge;
    $file =~ s/^\./%2E/;
    return read_count(data_dir() . "/counters/$file.count");
}

# Once the backend has run for NAME more than RAN times (or after 5 s):
# a background write's CGI has started.
sub wait_invoked {
    my ($name, $ran) = @_;
    my $t0 = Time::HiRes::time();
    Time::HiRes::sleep(0.05)
        while invocations($name) <= $ran && Time::HiRes::time() - $t0 < 5;
}

sub global_invocations {
    return read_count(data_dir() . '/counters/_global.count');
}

sub read_count {
    open my $fh, '<', shift or return 0;
    my $n = <$fh>;
    return $n ? $n + 0 : 0;
}

# The document exactly as the backend stored it, or undef.
sub stored_doc {
    my $name = shift;
    (my $file = $name) =~ s/([^A-Za-z0-9._-])/sprintf '%%%02X', ord $1/ge;
    $file =~ s/^\./%2E/;
    open my $fh, '<', data_dir() . "/docs/$file.json" or return undef;
    local $/;
    return $JSON->decode(scalar <$fh>);
}

# Its "data" member, or an empty hash when there is no document.
sub stored_data {
    my $doc = stored_doc(shift);
    return ref $doc eq 'HASH' && ref $doc->{data} eq 'HASH' ? $doc->{data} : {};
}

# Its data's v once that is WANT, or whatever it is after SECS seconds: a
# backend's late write is waited for, never timed.
sub stored_v_when {
    my ($name, $want, $secs) = @_;
    my $t0 = Time::HiRes::time();
    my $v = stored_data($name)->{v};
    while (($v // "") ne $want && Time::HiRes::time() - $t0 < $secs) {
        Time::HiRes::sleep(0.05);
        $v = stored_data($name)->{v};
    }
    return $v;
}

# A tag minted by mod_conditional: strong, "<16 hex store id>-<hex version>",
# and "-<16 hex>" for a representation chosen by the request headers its
# Vary names (docs/directives.md).
sub is_module_tag {
    my $tag = shift;
    return defined $tag && $tag =~ /^"[0-9a-f]{16}-[0-9a-f]+(?:-[0-9a-f]{16})?"$/;
}

sub json_of {
    my $res = shift;
    return eval { $JSON->decode($res->decoded_content // $res->content) };
}

# The problem+json body of a response, or undef if it is not one.
sub problem_of {
    my $res = shift;
    my $type = $res->header('Content-Type') || '';
    return undef unless $type =~ m{^application/problem\+json\b};
    my $p = json_of($res);
    return ref $p eq 'HASH' ? $p : undef;
}

# Create (or replace) a document through PATH with an unconditional PUT and
# return the response.
sub create_doc {
    my ($path, $data, %opt) = @_;
    return request(PUT => $path, json => $data || { v => 1 }, %opt);
}

# The tag a plain GET returns now.
sub current_tag {
    my ($path, %opt) = @_;
    return request(GET => $path, %opt)->header('ETag');
}

sub http_date {
    require HTTP::Date;
    return HTTP::Date::time2str(shift);
}

# Sleep into the next wall-clock second (and a little more), so that a
# write made before the call is "in an earlier second" than what follows.
sub wait_next_second {
    my $now = Time::HiRes::time();
    Time::HiRes::sleep(int($now) + 1.2 - $now);
}

# Send a request from a forked child; returns a sub that waits for it and
# gives back [status, ETag].
sub background {
    my ($method, $path, %opt) = @_;
    pipe my $r, my $w or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $r;
        my $res = request($method => $path, %opt);
        print $w join("\t", $res->code, $res->header('ETag') // ''), "\n";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return sub {
        my $line = <$r>;
        waitpid $pid, 0;
        chomp $line if defined $line;
        return [ split /\t/, $line // '' ];
    };
}

# Who holds the write claim on the key of PATH (default key: host:port and
# path), as the store CLI shows it: "host:pid:nonce:seq", or undef.
sub claim_of {
    my ($path, $vhost) = @_;
    (my $key = url_of($path, $vhost)) =~ s{^http://}{};
    my $ctl = Apache::Test::vars('serverroot') . '/../tools/conditionalctl';
    my $db = logs_dir() . '/conditional.db';
    my $out = `"$ctl" -s "$db" show "$key" 2>&1`;
    # Under SANITIZE=1 a UBSan report is on its stderr (build/run-tests.sh)
    die "conditionalctl show $key: $out"
        if $? >> 8 == 2 || $out =~ /runtime error:|Sanitizer/;
    return $out =~ /^claim\s+(\S+)/m && $1 ne '-' ? $1 : undef;
}

# The owner of the claim on PATH once one shows up, or undef after SECS
# (5): a test whose next step needs a background write to hold its claim
# waits for it, not for a fixed time a loaded machine may overrun.
sub wait_claim {
    my ($path, $vhost, $secs) = @_;
    my $t0 = Time::HiRes::time();
    while (Time::HiRes::time() - $t0 < ($secs // 5)) {
        my $owner = claim_of($path, $vhost);
        return $owner if $owner;
        Time::HiRes::sleep(0.05);
    }
    return undef;
}

# is_representation($res, 'xml-fr gzip', $text, $what): a 200 of the
# representation t/cgi-bin/nego.cgi makes for that Accept (json/xml),
# Accept-Language (en/fr) and coding (gzip or none), with text $text (any
# when undef). A Test::More check; says what it got when it fails.
sub is_representation {
    my ($res, $who, $text, $what) = @_;
    my ($type, $lang, $gz) = $who =~ /^(\w+)-(\w+)( gzip)?$/;
    my $body = $res->decoded_content // '';
    my $word = $lang eq 'fr' ? 'bonjour' : 'hello';
    my $t = defined $text ? quotemeta $text : '';
    my $ok = $res->code == 200
        && ($res->header('Content-Type') // '') =~ m{^application/$type\b}
        && ($res->header('Content-Language') // '') eq $lang
        && ($res->header('Content-Encoding') // '') eq ($gz ? 'gzip' : '')
        && $body =~ ($type eq 'json' ? qr/^\{"lang":"$lang","text":"$word $t/
                                     : qr/^<doc lang="$lang"><text>$word $t/);
    Test::More::ok($ok, $what) or Test::More::diag(sprintf
        '%s %s %s %s (%s): %.50s', $res->code,
        scalar $res->header('Content-Type') // '-',
        scalar $res->header('Content-Language') // '-',
        scalar $res->header('Content-Encoding') // 'identity',
        scalar $res->header('X-Cache') // '', $body);
    return $ok;
}

# The request headers that ask nego.cgi for 'xml-fr gzip' and the like.
sub asking {
    my ($type, $lang, $gz) = shift =~ /^(\w+)-(\w+)( gzip)?$/;
    return (Accept => "application/$type", 'Accept-Language' => $lang,
            $gz ? ('Accept-Encoding' => 'gzip') : ());
}

# each_representation($ua, $url, $round, $text, 'json-en', 'xml-fr gzip',
# ...): each client asks $url through $ua and must get its own
# representation with text $text.
sub each_representation {
    my ($ua, $url, $round, $text, @clients) = @_;
    for my $who (@clients) {
        is_representation($ua->get($url, asking($who)), $who, $text,
                          "$round: $who gets its own representation");
    }
}

# How many times the module's log (t/conf/extra.conf.in) shows a GET of
# PATH answered STATUS.
sub module_log_count {
    my ($path, $status) = @_;
    open my $log, '<', logs_dir() . '/conditional_log' or return 0;
    return scalar grep { m{^GET \Q$path\E $status } } <$log>;
}

# A port nothing listens on now: CondProc's, so that a test using both
# modules imports one and the same sub.
*free_port = \&CondProc::free_port;

# sandbox($cmd, $dir, %env): build/sandbox.sh, an httpd of a test's own
# (start, stop, graceful, restart), with its settings (PORT, MPM, ...).
sub sandbox {
    my ($cmd, $dir, %env) = @_;
    my $tree = Apache::Test::vars('serverroot') . '/..';
    local @ENV{keys %env} = values %env;
    return system('sh', "$tree/build/sandbox.sh", $cmd, $dir) == 0;
}

1;
