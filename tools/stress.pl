#!/usr/bin/perl
# stress.pl - lost-update stress harness for mod_conditional.
#
# Forks --clients clients against the document API (t/cgi-bin/docs.cgi:
# GET URL/docs/NAME answers {"name":..,"rev":N,"data":{...}}, PUT replaces
# data with the request body and adds one to rev). Every client runs
# read-modify-write cycles: GET the document (remembering the
# ETag and the body's rev), add one to its own counter data.c<ID>, PUT it
# back with If-Match, and on 412/409/503 read again and retry. At the end
# the documents are read directly (the module-less /raw/ location) and
# every client's counter must equal the number of its PUTs that succeeded:
#
#   lost         increments that were acknowledged (2xx) but are missing
#   stale_tags   ETags seen with two different body revs (a mis-tag: the
#                same validator named two representations)
#   stuck_claims claims still held in the store after the run, after the
#                lease time (--settle) and one probing write per claimed key
#   errors       unexpected answers: any status but 2xx, 304, 409, 412
#                and 503, a body that is not JSON, a request that never
#                got an answer
#
# Writers that outlive the lease (ConditionalLeaseTime): the first
# --slow-uploaders clients send every PUT body in pieces spread over
# --upload-seconds; the next --early-writers clients PUT with ?early=1, so
# the CGI answers 200 with its headers first and writes --early-sleep
# seconds later. Their claims must be renewed for as long as they run.
#
# --mode blind is the control: unconditional PUTs, which must lose updates
# when clients race on hot keys; with --expect-loss the verdict is inverted
# (FAIL unless lost > 0), proving the harness can fail.
#
# One verdict line on stdout; exit status 0 for PASS, 1 for FAIL, 2 for
# bad usage or an unusable server.
use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);
use File::Temp qw(tempdir);

my %o = (
    url          => 'http://127.0.0.1:8090/api/',
    raw          => undef,
    clients      => 32,
    keys         => 16,
    hot          => 4,
    'hot-ratio'  => 0.8,
    cycles       => 0,
    seconds      => 0,
    mode         => 'conditional',
    sleep        => 0,
    'sleep-ratio' => 1,
    reads        => 0.2,
    revalidate   => 0.5,
    optimistic   => 0.3,
    verify       => 1,
    'expect-loss' => 0,
    store        => undef,
    settle       => 0,
    prefix       => undef,
    'max-retries' => 200,
    'slow-uploaders' => 0,
    'upload-seconds' => 10,
    'early-writers' => 0,
    'early-sleep' => 6,
    timeout      => 60,
    nodes        => undef,
    verbose      => 0,
);
GetOptions(\%o, 'url=s', 'raw=s', 'clients=i', 'keys=i', 'hot=i',
           'hot-ratio=f', 'cycles=i', 'seconds=f', 'mode=s', 'sleep=f',
           'sleep-ratio=f', 'reads=f', 'revalidate=f', 'optimistic=f',
           'verify!', 'expect-loss!', 'store=s', 'settle=f', 'prefix=s',
           'max-retries=i', 'slow-uploaders=i', 'upload-seconds=f',
           'early-writers=i', 'early-sleep=f', 'timeout=f', 'nodes=s',
           'verbose|v+', 'help|h')
    or usage();
usage() if $o{help};
usage("--mode is conditional or blind")
    unless $o{mode} =~ /^(conditional|blind)$/;
usage("--clients, --keys must be >= 1") if $o{clients} < 1 || $o{keys} < 1;
$o{hot} = $o{keys} if $o{hot} > $o{keys};
$o{cycles} = 200 if !$o{cycles} && !$o{seconds};
$o{url} .= '/' unless $o{url} =~ m{/$};
if (!defined $o{raw}) {
    # The locations of build/sandbox.sh and t/conf/extra.conf.in.
    ($o{raw} = $o{url}) =~ s{/(api|papi|proxy)/$}{/raw/};
    $o{raw} =~ s{/lua/$}{/luaraw/};
}
$o{raw} .= '/' unless $o{raw} =~ m{/$};
$o{prefix} //= sprintf 's%x%x', $$, time() % 65536;

# The server cannot be used at all: no verdict, exit status 2.
sub fatal {
    my ($msg) = @_;
    print STDERR "stress.pl: $msg\n";
    exit 2;
}

sub usage {
    my ($msg) = @_;
    print STDERR "stress.pl: $msg\n" if $msg;
    print STDERR <<'EOF';
usage: stress.pl [options]
  --url URL          API base with the module (http://127.0.0.1:8090/api/)
  --raw URL          the same API without the module, for seeding and the
                     final check (default: --url with /api/, /papi/ or
                     /proxy/ -> /raw/, /lua/ -> /luaraw/)
  --clients N        concurrent clients (32)
  --keys N           documents (16)      --hot N      hot documents (4)
  --hot-ratio F      share of cycles on the hot documents (0.8)
  --cycles N         write cycles per client (200), or --seconds S
  --mode M           conditional (If-Match, default) or blind (no precondition)
  --sleep S          backend sleep on PUT (?sleep=S) to widen the race
  --sleep-ratio F    share of PUTs that carry the sleep (1)
  --reads F          share of read-only cycles (0.2)
  --revalidate F     share of reads sent with If-None-Match when cached (0.5)
  --optimistic F     share of write cycles that PUT straight from the copy
                     (and ETag) kept from the previous PUT, without a GET,
                     re-reading only on 412 (0.3)
  --store PATH       SQLite store: count claims left over after the run
  --settle S         wait S seconds (the lease time) before the claim check
  --expect-loss      invert the verdict: FAIL unless updates were lost
  --no-verify        skip the final read-back
  --prefix STR       document name prefix (unique per run by default)
  --slow-uploaders N the first N clients send each PUT body in pieces over
                     --upload-seconds S (10)
  --early-writers N  the next N clients PUT with ?early=1&sleep=S: headers
                     (200) first, the write --early-sleep S (6) later
  --timeout S        per-request timeout (60)
  --nodes H:P,H:P    several httpd nodes on one shared store: each client
                     request goes to one of them at random (the path is
                     --url's)
EOF
    exit 2;
}

# ------------------------------------------------------------------ HTTP

sub split_url {
    my ($url) = @_;
    $url =~ m{^http://([^/:]+)(?::(\d+))?(/.*)$}
        or usage("only http://host[:port]/path URLs: $url");
    return ($1, $2 // 80, $3);
}

my ($HOST, $PORT, $API) = split_url($o{url});
my ($RHOST, $RPORT, $RAW) = split_url($o{raw});
# [host, port] of each node, for clients behind a "load balancer"
my @NODES = map { [ split /:/ ] } split /,/, $o{nodes} // '';

sub conn_new {
    my ($host, $port) = @_;
    return { host => $host, port => $port, sock => undef, buf => '' };
}

sub conn_close {
    my ($c) = @_;
    close $c->{sock} if $c->{sock};
    $c->{sock} = undef;
    $c->{buf} = '';
}

# Read until $c->{buf} holds at least $n bytes (or a CRLFCRLF when $n is
# undef). Returns false on EOF, error or timeout.
sub conn_fill {
    my ($c, $n, $deadline) = @_;
    my $sel = IO::Select->new($c->{sock});
    for (;;) {
        if (defined $n) {
            return 1 if length($c->{buf}) >= $n;
        }
        else {
            return 1 if index($c->{buf}, "\r\n\r\n") >= 0;
        }
        my $left = $deadline - time();
        return 0 if $left <= 0 || !$sel->can_read($left);
        my $got = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
        return 0 unless $got;
    }
}

sub conn_line {
    my ($c, $deadline) = @_;
    for (;;) {
        my $i = index($c->{buf}, "\r\n");
        return substr($c->{buf}, 0, $i + 2, '') =~ s/\r\n$//r if $i >= 0;
        return undef unless conn_fill($c, length($c->{buf}) + 1, $deadline);
    }
}

# Write all of $data to the connection; false when it failed.
sub conn_write {
    my ($c, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $w = syswrite($c->{sock}, $data, length($data) - $off, $off);
        return 0 unless $w;
        $off += $w;
    }
    return 1;
}

# One request on a keep-alive connection. Returns a hash with status,
# headers (lower-case names) and body, or undef when the connection failed
# (the caller decides whether the request may have been processed). With
# $dribble, the body is sent in pieces spread over that many seconds.
sub http {
    my ($c, $method, $path, $hdrs, $body, $dribble) = @_;
    my $deadline = time() + $o{timeout};
    my $fresh = 0;
    if ($c->{roam} && @NODES) {
        my $n = $NODES[int rand @NODES];
        if ($n->[0] ne $c->{host} || $n->[1] != $c->{port}) {
            conn_close($c);
            ($c->{host}, $c->{port}) = @$n;
        }
    }
    if (!$c->{sock}) {
        $c->{sock} = IO::Socket::INET->new(PeerAddr => $c->{host},
                                           PeerPort => $c->{port},
                                           Proto => 'tcp', Timeout => 10)
            or return undef;
        $c->{sock}->setsockopt(Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
        $c->{buf} = '';
        $fresh = 1;
    }
    my $req = "$method $path HTTP/1.1\r\nHost: $c->{host}:$c->{port}\r\n";
    $req .= "$_: $hdrs->{$_}\r\n" for sort keys %{ $hdrs || {} };
    my @pieces;
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
              . 'Content-Length: ' . length($body) . "\r\n\r\n";
        my $n = $dribble ? 10 : 1;
        my $len = int((length($body) + $n - 1) / $n) || 1;
        @pieces = unpack "(a$len)*", $body;
    }
    else {
        $req .= "\r\n";
    }
    local $SIG{PIPE} = 'IGNORE';
    if (!conn_write($c, $req)) {
        conn_close($c);
        return undef;
    }
    for my $piece (@pieces) {
        sleep $dribble / @pieces if $dribble;
        if (!conn_write($c, $piece)) {
            conn_close($c);
            return undef;
        }
    }
    my %r = (fresh => $fresh);
    if (!conn_fill($c, undef, $deadline)) {
        conn_close($c);
        return undef;
    }
    my $end = index($c->{buf}, "\r\n\r\n");
    my $head = substr($c->{buf}, 0, $end + 4, '');
    my @lines = split /\r\n/, $head;
    my $sl = shift @lines;
    if (!defined $sl || $sl !~ m{^HTTP/1\.[01] (\d{3})}) {
        conn_close($c);
        return undef;
    }
    $r{status} = $1;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $r{headers}{lc $k} = $v;
    }
    my $h = $r{headers} || {};
    $r{body} = '';
    my $nobody = $method eq 'HEAD' || $r{status} == 304 || $r{status} == 204
        || $r{status} < 200;
    if ($nobody) {
        # nothing
    }
    elsif (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
        for (;;) {
            my $sz = conn_line($c, $deadline);
            if (!defined $sz) { conn_close($c); return undef; }
            $sz = hex(($sz =~ /^([0-9a-fA-F]+)/)[0] // 0);
            if ($sz == 0) {
                # trailers up to the blank line
                for (;;) {
                    my $t = conn_line($c, $deadline);
                    if (!defined $t) { conn_close($c); return undef; }
                    last if $t eq '';
                }
                last;
            }
            if (!conn_fill($c, $sz + 2, $deadline)) {
                conn_close($c);
                return undef;
            }
            $r{body} .= substr($c->{buf}, 0, $sz);
            substr($c->{buf}, 0, $sz + 2, '');
        }
    }
    elsif (defined $h->{'content-length'}) {
        my $n = $h->{'content-length'};
        if (!conn_fill($c, $n, $deadline)) {
            conn_close($c);
            return undef;
        }
        $r{body} = substr($c->{buf}, 0, $n, '');
    }
    else {
        # read to EOF
        my $sel = IO::Select->new($c->{sock});
        while ($sel->can_read($deadline - time())) {
            my $got = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
            last unless $got;
        }
        $r{body} = $c->{buf};
        conn_close($c);
    }
    if (($h->{connection} // '') =~ /close/i) {
        conn_close($c);
    }
    return \%r;
}

# A GET that survives restarts: retried on connection failure (bounded).
sub http_get_retry {
    my ($c, $path, $hdrs, $st) = @_;
    for my $try (1 .. 50) {
        my $r = http($c, 'GET', $path, $hdrs);
        return $r if $r;
        $st->{dropped}++ if $st;
        sleep(0.1 * $try > 1 ? 1 : 0.1 * $try);
    }
    return undef;
}

my $JSON = JSON::PP->new->canonical(1);

sub decode_doc {
    my ($body) = @_;
    my $d = eval { $JSON->decode($body) };
    return ref $d eq 'HASH' ? $d : undef;
}

# ------------------------------------------------------------------ setup

my @KEYS = map { sprintf '%s-%04d', $o{prefix}, $_ } 0 .. $o{keys} - 1;
my @HOT = @KEYS[0 .. $o{hot} - 1];

# Seed every document through the module-less location (no precondition
# needed there) and remember each one's counters as the baseline.
my %base;
{
    my $c = conn_new($RHOST, $RPORT);
    for my $k (@KEYS) {
        my $r = http_get_retry($c, "${RAW}docs/$k");
        fatal("cannot reach $o{raw}") unless $r;
        my $doc;
        if ($r->{status} == 200) {
            $doc = decode_doc($r->{body})
                or fatal("GET ${RAW}docs/$k: not JSON");
        }
        elsif ($r->{status} == 404) {
            $doc = { name => $k, rev => 0, data => {} };
            my $p = http($c, 'PUT', "${RAW}docs/$k", {}, '{}');
            fatal("seeding $k failed: "
                  . ($p ? "$p->{status} $p->{body}" : 'no answer'))
                unless $p && $p->{status} =~ /^2/;
        }
        else {
            fatal("GET ${RAW}docs/$k answered $r->{status}");
        }
        $base{$k} = { %{ $doc->{data} || {} } };
    }
    conn_close($c);
}

# ------------------------------------------------------------------ client

# Statistics a client reports to the parent.
sub stats_new {
    return { reads => 0, writes => 0, s304 => 0, s412 => 0, s409 => 0,
             s503 => 0, errors => 0, dropped => 0, unknown => 0,
             untagged => 0, gaveup => 0, ops => 0, cycles => 0,
             ok => {}, maybe => {}, tags => {}, errlog => [] };
}

sub note_error {
    my ($st, $what) = @_;
    $st->{errors}++;
    push @{ $st->{errlog} }, $what if @{ $st->{errlog} } < 10;
}

# Remember which rev an ETag came with; a second rev for it is a mis-tag.
sub note_tag {
    my ($st, $key, $etag, $rev) = @_;
    return unless defined $etag && defined $rev && $o{mode} ne 'blind';
    $st->{tags}{$etag}{"$key rev $rev"} = 1;
}

sub pick_key {
    return $HOT[int rand @HOT] if @HOT && rand() < $o{'hot-ratio'};
    return $KEYS[int rand @KEYS];
}

# Read a document for a cycle. Returns ('ok', etag, doc), ('retry') after
# a 409/503 or an untagged answer, or ('abandon') after an error.
sub read_doc {
    my ($c, $path, $key, $try, $readonly, $cache, $st) = @_;
    my %h;
    my $cached = $cache->{$key};
    if ($cached && $o{mode} eq 'conditional'
        && ($readonly || $try == 1) && rand() < $o{revalidate}) {
        $h{'If-None-Match'} = $cached->[0];
    }
    my $r = http_get_retry($c, $path, \%h, $st);
    if (!$r) {
        note_error($st, "GET $key: no answer");
        return ('abandon');
    }
    $st->{reads}++;
    $st->{ops}++;
    my ($etag, $doc);
    if ($r->{status} == 304) {
        $st->{s304}++;
        if (!$h{'If-None-Match'}) {
            note_error($st, "GET $key: 304 without a validator");
            return ('abandon');
        }
        $etag = $r->{headers}{etag} // $cached->[0];
        $doc = $cached->[1];
        note_tag($st, $key, $etag, $doc->{rev});
    }
    elsif ($r->{status} == 200) {
        $doc = decode_doc($r->{body});
        if (!$doc) {
            note_error($st, "GET $key: body is not JSON");
            return ('abandon');
        }
        $etag = $r->{headers}{etag};
        if (defined $etag) {
            note_tag($st, $key, $etag, $doc->{rev});
            $cache->{$key} = [$etag, $doc];
        }
        else {
            delete $cache->{$key};
        }
    }
    elsif ($r->{status} == 503 || $r->{status} == 409) {
        $st->{"s$r->{status}"}++;
        sleep(0.01 * $try > 0.5 ? 0.5 : 0.01 * $try);
        return ('retry');
    }
    else {
        note_error($st, "GET $key: $r->{status}");
        return ('abandon');
    }
    if (!$readonly && $o{mode} eq 'conditional' && !defined $etag) {
        # A write was in flight while the backend answered; the module
        # sent no tag rather than a possibly wrong one.
        $st->{untagged}++;
        sleep(0.005 * $try > 0.2 ? 0.2 : 0.005 * $try);
        return ('retry');
    }
    return ('ok', $etag, $doc);
}

# PUT the document with this client's counter incremented. Returns 'done'
# (committed, or outcome unknown) or 'retry' (412/409/503), or 'abandon'.
sub write_doc {
    my ($c, $path, $key, $try, $etag, $doc, $field, $cache, $st, $id) = @_;
    my %data = %{ ref $doc->{data} eq 'HASH' ? $doc->{data} : {} };
    $data{$field} = ($data{$field} // 0) + 1;
    my %ph;
    $ph{'If-Match'} = $etag if $o{mode} eq 'conditional';
    my $q = '';
    $q = "?sleep=$o{sleep}" if $o{sleep} > 0 && rand() < $o{'sleep-ratio'};
    my $slow = $id <= $o{'slow-uploaders'};
    if (!$slow && $id <= $o{'slow-uploaders'} + $o{'early-writers'}) {
        $q = "?early=1&sleep=$o{'early-sleep'}";
    }

    my $p = http($c, 'PUT', "$path$q", \%ph, $JSON->encode(\%data),
                 $slow ? $o{'upload-seconds'} : 0);
    delete $cache->{$key};
    if (!$p) {
        # The request may or may not have reached the backend.
        $st->{dropped}++;
        $st->{unknown}++;
        $st->{maybe}{$key}++;
        return 'done';
    }
    $st->{writes}++;
    $st->{ops}++;
    if ($p->{status} =~ /^2/) {
        $st->{ok}{$key}++;
        # The answer is the new document under its new tag: keep it for
        # the next cycle, as a client would.
        my $nd = decode_doc($p->{body});
        my $nt = $p->{headers}{etag};
        if (defined $nt && $nd && defined $nd->{rev}) {
            note_tag($st, $key, $nt, $nd->{rev});
            $cache->{$key} = [$nt, $nd];
        }
        return 'done';
    }
    if ($p->{status} == 412) {
        $st->{s412}++;
        return 'retry';
    }
    if ($p->{status} == 409 || $p->{status} == 503) {
        $st->{"s$p->{status}"}++;
        sleep(0.01 * $try > 0.5 ? 0.5 : 0.01 * $try);
        return 'retry';
    }
    note_error($st, "PUT $key: $p->{status}");
    return 'abandon';
}

sub client {
    my ($id, $out) = @_;
    srand($$ ^ int(time() * 1000));
    my $st = stats_new();
    my $c = conn_new($HOST, $PORT);
    $c->{roam} = 1;
    my %cache;    # key -> [etag, doc]
    my $field = "c$id";
    my $stop_at = $o{seconds} ? time() + $o{seconds} : 0;

    CYCLE:
    for (my $n = 0; ; $n++) {
        last if $stop_at ? time() >= $stop_at : $n >= $o{cycles};
        my $key = pick_key();
        my $path = "${API}docs/$key";
        my $readonly = rand() < $o{reads};
        $st->{cycles}++;
        for my $try (1 .. $o{'max-retries'}) {
            # A cycle still retrying when the time is up is abandoned.
            last CYCLE if $stop_at && $try > 1 && time() >= $stop_at;

            my ($what, $etag, $doc);
            my $cached = $cache{$key};
            if ($cached && !$readonly && $try == 1
                && $o{mode} eq 'conditional' && rand() < $o{optimistic}) {
                # Write straight from the copy the last PUT returned.
                ($what, $etag, $doc) = ('ok', @$cached);
            }
            else {
                ($what, $etag, $doc) = read_doc($c, $path, $key, $try,
                                                $readonly, \%cache, $st);
            }
            next CYCLE if $what eq 'abandon';
            next if $what eq 'retry';
            next CYCLE if $readonly;
            $what = write_doc($c, $path, $key, $try, $etag, $doc, $field,
                              \%cache, $st, $id);
            next CYCLE if $what ne 'retry';
        }
        $st->{gaveup}++;
    }
    conn_close($c);
    store_stats($st, $out);
}

sub store_stats {
    my ($st, $file) = @_;
    open my $fh, '>', $file or die "stress.pl: $file: $!\n";
    for my $k (qw(reads writes s304 s412 s409 s503 errors dropped unknown
                  untagged gaveup ops cycles)) {
        print $fh "N $k $st->{$k}\n";
    }
    print $fh "O $_ $st->{ok}{$_}\n" for keys %{ $st->{ok} };
    print $fh "M $_ $st->{maybe}{$_}\n" for keys %{ $st->{maybe} };
    for my $e (keys %{ $st->{tags} }) {
        print $fh "T $e $_\n" for keys %{ $st->{tags}{$e} };
    }
    print $fh "L $_\n" for @{ $st->{errlog} };
    close $fh or die "stress.pl: $file: $!\n";
}

# ------------------------------------------------------------------ run

my $tmp = tempdir('stress-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my %kids;
my $t0 = time();
for my $id (1 .. $o{clients}) {
    my $pid = fork();
    die "stress.pl: fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        my $ok = eval { client($id, "$tmp/c$id"); 1 };
        print STDERR "stress.pl: client $id: $@" unless $ok;
        _exit($ok ? 0 : 1);
    }
    $kids{$pid} = $id;
}
# Wait for the clients, bounded: a client that outlives its run by far is
# wedged on a server that no longer answers.
my $limit = $o{seconds} ? $o{seconds} + 2 * $o{timeout} + 60
                        : 3600 + 2 * $o{timeout};
while (%kids) {
    my $pid = waitpid(-1, WNOHANG);
    if ($pid > 0) {
        delete $kids{$pid};
        next;
    }
    if (time() - $t0 > $limit) {
        print STDERR "stress.pl: clients still running after ${limit}s; "
            . "killing them\n";
        kill 'KILL', keys %kids;
        waitpid($_, 0) for keys %kids;
        last;
    }
    sleep 0.05;
}
my $elapsed = time() - $t0;

# Merge the clients' reports.
my %tot = map { $_ => 0 } qw(reads writes s304 s412 s409 s503 errors dropped
                             unknown untagged gaveup ops cycles);
my (%ok, %maybe, %tags, @errlog, $missing);
for my $id (1 .. $o{clients}) {
    open my $fh, '<', "$tmp/c$id" or do { $missing++; next };
    while (<$fh>) {
        chomp;
        my ($t, $a, $b) = split / /, $_, 3;
        if ($t eq 'N') { $tot{$a} += $b }
        elsif ($t eq 'O') { $ok{$a}{$id} += $b }
        elsif ($t eq 'M') { $maybe{$a}{$id} += $b }
        elsif ($t eq 'T') { $tags{$a}{$b} = 1 }
        elsif ($t eq 'L') { push @errlog, "client $id: $a $b" }
    }
    close $fh;
}
if ($missing) {
    $tot{errors} += $missing;
    push @errlog, "$missing client(s) reported nothing";
}
my $stale = grep { keys %{ $tags{$_} } > 1 } keys %tags;
if ($stale) {
    my @s = grep { keys %{ $tags{$_} } > 1 } sort keys %tags;
    for my $e (@s[0 .. ($#s < 4 ? $#s : 4)]) {
        print STDERR "stress.pl: ETag $e came with: "
            . join(', ', sort keys %{ $tags{$e} }) . "\n";
    }
}

# Leftover claims: wait out the lease, write once to every key that still
# has a claim (the write must break a dead claim), then count again.
sub store_claims {
    return undef unless defined $o{store};
    my $pfx = $o{prefix} =~ s/'/''/gr;
    my $sql = "SELECT key FROM resources WHERE claim_owner IS NOT NULL "
            . "AND instr(key, '/docs/$pfx-') > 0";
    my @out;
    if (open my $fh, '-|', 'sqlite3', '-readonly', '-cmd', '.timeout 5000',
             $o{store}, $sql) {
        @out = <$fh>;
        close $fh;
    }
    if (!@out && $?) {
        print STDERR "stress.pl: cannot query $o{store} with sqlite3\n";
        return undef;
    }
    chomp @out;
    return \@out;
}

sub path_of_store_key {
    my ($skey) = @_;
    my ($k) = $skey =~ m{/docs/([^/?]+)$};
    return $k;
}

my $stuck = 'NA';
if (defined $o{store} && $o{mode} eq 'conditional') {
    sleep $o{settle} if $o{settle} > 0;
    my $claimed = store_claims();
    if ($claimed) {
        my $c = conn_new($HOST, $PORT);
        my %seen;
        for my $skey (@$claimed) {
            my $k = path_of_store_key($skey);
            next unless defined $k && !$seen{$k}++;
            # A write that changes nothing (the same data back) with the
            # current tag: it has to get the claim.
            my $r = http_get_retry($c, "${API}docs/$k");
            next unless $r && $r->{status} == 200 && $r->{headers}{etag};
            my $doc = decode_doc($r->{body}) or next;
            my $p = http($c, 'PUT', "${API}docs/$k",
                         { 'If-Match' => $r->{headers}{etag} },
                         $JSON->encode($doc->{data} || {}));
            printf STDERR "stress.pl: probe write to %s after the run: %s\n",
                $k, $p ? $p->{status} : 'no answer' if $o{verbose};
        }
        conn_close($c);
        my $left = store_claims();
        $stuck = $left ? scalar @$left : 'NA';
        if ($left && @$left) {
            my @l = @$left[0 .. ($#$left < 4 ? $#$left : 4)];
            print STDERR "stress.pl: claims still held: @l\n";
        }
    }
}

# Read every document back without the module and compare counters.
my ($lost, $extra, $lost_shown) = (0, 0, 0);
if ($o{verify}) {
    my $c = conn_new($RHOST, $RPORT);
    for my $k (@KEYS) {
        my $r = http_get_retry($c, "${RAW}docs/$k");
        my $doc = $r && $r->{status} == 200 ? decode_doc($r->{body}) : undef;
        if (!$doc) {
            $tot{errors}++;
            push @errlog, "final read of $k failed";
            next;
        }
        my $data = $doc->{data} || {};
        for my $id (1 .. $o{clients}) {
            my $f = "c$id";
            my $got = ($data->{$f} // 0) - ($base{$k}{$f} // 0);
            my $want = $ok{$k}{$id} // 0;
            my $may = $maybe{$k}{$id} // 0;
            if ($got < $want) {
                $lost += $want - $got;
                print STDERR "stress.pl: lost: $k c$id: $want acknowledged, "
                    . "$got stored (rev $doc->{rev})\n"
                    if !$o{'expect-loss'} && $lost_shown++ < 5;
            }
            elsif ($got > $want + $may) {
                $extra += $got - $want - $may;
            }
        }
    }
    conn_close($c);
}
if ($extra) {
    $tot{errors}++;
    push @errlog, "$extra increments stored that no client sent";
}
if (@errlog) {
    my $n = @errlog;
    print STDERR "stress.pl: $_\n" for @errlog[0 .. ($n < 10 ? $n - 1 : 9)];
}

my $fail = $tot{errors} || $stale || ($stuck ne 'NA' && $stuck);
if ($o{'expect-loss'}) {
    $fail = !$o{verify} || !$lost || $tot{errors};
}
else {
    $fail ||= $lost;
}
printf "lost=%s stale_tags=%d stuck_claims=%s errors=%d writes=%d reads=%d "
    . "412=%d 409=%d 503=%d ops=%d ops/s=%.0f 304=%d untagged=%d "
    . "unknown=%d dropped=%d gaveup=%d mode=%s clients=%d secs=%.1f "
    . "verdict=%s\n",
    $o{verify} ? $lost : 'NA', $stale, $stuck, $tot{errors}, $tot{writes},
    $tot{reads}, $tot{s412}, $tot{s409}, $tot{s503}, $tot{ops},
    $elapsed > 0 ? $tot{ops} / $elapsed : 0, $tot{s304}, $tot{untagged},
    $tot{unknown}, $tot{dropped}, $tot{gaveup}, $o{mode}, $o{clients},
    $elapsed, $fail ? 'FAIL' : 'PASS';
exit($fail ? 1 : 0);
