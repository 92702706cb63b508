#!/usr/bin/perl
#
# docs.cgi - a legacy JSON document API, the kind of backend mod_conditional
# is meant to sit in front of. It knows nothing about ETags or preconditions
# and does its read-modify-write without any locking, so two clients that
# update the same document at the same time lose one of the updates unless
# something in front of it serialises them.
#
# Resources (any path segments before /docs are the mount point):
#   GET    /docs              {"docs": [names]}
#   GET    /docs/NAME         200 {"name", "rev", "data"} or 404
#   HEAD   /docs/NAME         same headers, no body
#   PUT    /docs/NAME         body JSON replaces data; rev+1; 201 on create
#   PATCH  /docs/NAME         body JSON object merged into data; 404 if missing
#   DELETE /docs/NAME         204 or 404
#   POST   /docs/NAME         body appended to data.log; creates the document
# NAME may contain slashes (/docs/a/b/c). Without a NAME in the path, the
# query parameter doc=NAME names the document (query-string style API).
#
# Knobs for tests (query string, all optional):
#   sleep=SECONDS     pause between reading and writing (or X-Sleep header)
#   early=1           PUT: send the headers (200) first, then pause and write
#   status=CODE       answer with this status; non-2xx changes nothing
#   cl=1              send a Content-Location
#   expires=SECONDS   send an Expires header (GET/HEAD)
#   lm=EPOCH          claim this Last-Modified instead of the file's (GET)
#   invalidate=P1,P2  send "Conditional-Invalidate: P1, P2"
#   crash=1           PUT: read the body, write it, then die before any
#                     output (httpd answers 500 itself)
#
# DOCS_HEAD_STATUS=CODE (SetEnv in the server config): HEAD is answered
# with this status, as by a backend that knows no HEAD (405) or fails it.
#
# Storage (DOCS_DATA, set by the server config): docs/NAME.json per document,
# counters/NAME.count per document and counters/_global.count, the number of
# times this script ran, so tests can tell whether the backend was invoked.

use strict;
use warnings;

# Only light modules: the script starts for every request.
use Fcntl qw(:flock O_RDWR O_CREAT O_WRONLY O_EXCL);
use JSON::PP ();
use Time::HiRes ();

my $JSON = JSON::PP->new->canonical->utf8;

my $method   = $ENV{REQUEST_METHOD} || 'GET';
my %query    = parse_query($ENV{QUERY_STRING} || '');
my $data_dir = $ENV{DOCS_DATA} or fail(500, 'DOCS_DATA is not set');

my ($name, $is_index) = resource_name();
count_invocation($name);

if ($method eq 'HEAD' && ($ENV{DOCS_HEAD_STATUS} || '') =~ /^([1-5]\d\d)$/) {
    fail($1, 'HEAD is not served here');
}

my $forced = $query{status};
if (defined $forced && $forced !~ /^[1-5]\d\d$/) {
    fail(400, "bad status parameter");
}
my $forced_fail = defined $forced && $forced !~ /^2/;

if ($is_index) {
    fail(405, 'the index is read-only', 'Allow: GET, HEAD')
        unless $method eq 'GET' || $method eq 'HEAD';
    respond(200, { docs => [ list_docs() ] });
}
fail(404, 'no document named in the request') unless length $name;

my %handlers = (
    GET    => \&do_get,
    HEAD   => \&do_get,
    PUT    => \&do_put,
    PATCH  => \&do_patch,
    DELETE => \&do_delete,
    POST   => \&do_post,
);
my $handler = $handlers{$method}
    or fail(405, "method $method not allowed",
            'Allow: GET, HEAD, PUT, PATCH, DELETE, POST');
$handler->();
exit 0;

# ---------------------------------------------------------------------------

sub do_get {
    my $doc = load_doc($name);
    pause();
    fail($forced, 'forced status') if $forced_fail;
    fail(404, "no document $name") unless $doc;

    # Validators of its own that the module has to replace.
    my @headers = (
        'Cache-Control: max-age=60',
        'Vary: Accept',
        'ETag: "backend"',
        'Last-Modified: ' . http_date(defined $query{lm} && $query{lm} =~ /^\d+$/
                                      ? $query{lm}
                                      : (stat doc_file($name))[9]),
    );
    # Which validators of the client's reached the backend (t/store.t).
    my @saw = grep { defined $ENV{"HTTP_$_"} }
              qw(IF_MATCH IF_NONE_MATCH IF_MODIFIED_SINCE IF_UNMODIFIED_SINCE);
    push @headers, 'X-Backend-Saw: ' . join(',', @saw) if @saw;
    push @headers, "Content-Location: $ENV{SCRIPT_NAME}$ENV{PATH_INFO}"
        if $query{cl};
    push @headers, 'Expires: ' . http_date(time + $query{expires})
        if defined $query{expires} && $query{expires} =~ /^\d+$/;
    respond($forced || 200, $doc, @headers);
}

sub do_put {
    my $body = read_json_body();
    my $doc = load_doc($name);
    if ($query{crash}) {
        save_doc({ name => $name, rev => ($doc ? $doc->{rev} : 0) + 1,
                   data => $body });
        exit 1;
    }
    if ($query{early}) {
        # Headers first, then the write, then the body: legal for a CGI,
        # and the write is not done when the headers come back.
        $| = 1;
        print "Status: 200\r\nContent-Type: text/plain\r\n\r\nwriting\n";
        pause();
        save_doc({ name => $name, rev => ($doc ? $doc->{rev} : 0) + 1,
                   data => $body });
        print "done\n";
        exit 0;
    }
    pause();
    fail($forced, 'forced status') if $forced_fail;
    my $status = $doc ? 200 : 201;
    $doc = { name => $name, rev => ($doc ? $doc->{rev} : 0) + 1,
             data => $body };
    save_doc($doc);
    respond($forced || $status, $doc);
}

sub do_patch {
    my $body = read_json_body();
    fail(400, 'PATCH body must be a JSON object') unless ref $body eq 'HASH';
    my $doc = load_doc($name);
    pause();
    fail($forced, 'forced status') if $forced_fail;
    fail(404, "no document $name") unless $doc;
    $doc->{data} = {} unless ref $doc->{data} eq 'HASH';
    @{ $doc->{data} }{ keys %$body } = values %$body;
    $doc->{rev}++;
    save_doc($doc);
    respond($forced || 200, $doc);
}

sub do_delete {
    my $doc = load_doc($name);
    pause();
    fail($forced, 'forced status') if $forced_fail;
    fail(404, "no document $name") unless $doc;
    unlink doc_file($name) or fail(500, "unlink: $!");
    respond($forced || 204, undef);
}

sub do_post {
    my $raw = read_body();
    my $entry = eval { $JSON->decode($raw) };
    $entry = $raw unless defined $entry;
    my $doc = load_doc($name);
    pause();
    fail($forced, 'forced status') if $forced_fail;
    $doc ||= { name => $name, rev => 0, data => {} };
    $doc->{data} = {} unless ref $doc->{data} eq 'HASH';
    push @{ $doc->{data}{log} }, $entry;
    $doc->{rev}++;
    save_doc($doc);
    respond($forced || 200, $doc);
}

# ---------------------------------------------------------------------------

sub resource_name {
    my $path = $ENV{PATH_INFO} || '';
    if ($path =~ m{^(?:/+[^/]+)*?/+docs(?:/+(.*))?$}s) {
        my $rest = defined $1 ? $1 : '';
        $rest =~ s{/+$}{};
        return ($rest, 0) if length $rest;
    }
    return ($query{doc}, 0) if defined $query{doc} && length $query{doc};
    return ('', 1) if $path =~ m{(?:^|/)docs/*$};
    return ('', 0);
}

sub parse_query {
    my %q;
    for my $pair (split /[&;]/, shift) {
        my ($k, $v) = split /=/, $pair, 2;
        next unless defined $k && length $k;
        $q{ url_decode($k) } = url_decode(defined $v ? $v : '');
    }
    return %q;
}

sub url_decode {
    my $s = shift;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# A name becomes one file name: everything but [A-Za-z0-9._-] is %XX.
sub file_name {
    my $n = shift;
    $n =~ s/([^A-Za-z0-9._-])/sprintf '%%%02X', ord $1/ge;
    $n =~ s/^\./%2E/;
    return $n;
}

sub doc_file { "$data_dir/docs/" . file_name(shift) . '.json' }

sub list_docs {
    opendir my $dh, "$data_dir/docs" or return ();
    my @names = sort map { /^(.*)\.json$/ ? url_decode($1) : () }
                readdir $dh;
    closedir $dh;
    return @names;
}

sub load_doc {
    my $file = doc_file(shift);
    open my $fh, '<', $file or return undef;
    local $/;
    my $text = <$fh>;
    close $fh;
    return eval { $JSON->decode($text) };
}

# Whole-file replace (temp file + rename): readers never see half a
# document, but nothing stops two writers from overwriting each other.
sub save_doc {
    my $doc = shift;
    my $dir = make_dir("$data_dir/docs");
    my $tmp = sprintf '%s/.tmp-%d-%04x', $dir, $$, int rand 65536;
    sysopen my $fh, $tmp, O_WRONLY | O_CREAT | O_EXCL, 0644
        or fail(500, "$tmp: $!");
    print $fh $JSON->encode($doc);
    close $fh or fail(500, "write: $!");
    rename $tmp, doc_file($doc->{name}) or fail(500, "rename: $!");
}

sub count_invocation {
    my $n = shift;
    my $dir = make_dir("$data_dir/counters");
    bump_counter("$dir/_global.count");
    bump_counter("$dir/" . (length $n ? file_name($n) : '_index') . '.count');
}

sub bump_counter {
    my $file = shift;
    sysopen my $fh, $file, O_RDWR | O_CREAT, 0644 or fail(500, "$file: $!");
    flock $fh, LOCK_EX or fail(500, "flock: $!");
    my $n = <$fh> || 0;
    seek $fh, 0, 0;
    truncate $fh, 0;
    print $fh $n + 1, "\n";
    close $fh;
}

sub make_dir {
    my $dir = shift;
    for my $d ($data_dir, $dir) {
        mkdir $d, 0755 or $!{EEXIST} or fail(500, "mkdir $d: $!");
    }
    return $dir;
}

sub pause {
    my $s = defined $query{sleep} ? $query{sleep} : $ENV{HTTP_X_SLEEP};
    Time::HiRes::sleep($s) if defined $s && $s =~ /^\d*\.?\d+$/ && $s > 0;
}

sub read_body {
    my $len = $ENV{CONTENT_LENGTH} || 0;
    my $body = '';
    binmode STDIN;
    while ($len > length $body) {
        my $n = read STDIN, $body, $len - length $body, length $body;
        last unless $n;
    }
    return $body;
}

sub read_json_body {
    my $raw = read_body();
    my $value = eval { JSON::PP->new->utf8->allow_nonref->decode($raw) };
    fail(400, 'body is not JSON') if $@ || !length $raw;
    return $value;
}

sub http_date {
    my @t = gmtime shift;
    return sprintf '%s, %02d %s %04d %02d:%02d:%02d GMT',
        (qw(Sun Mon Tue Wed Thu Fri Sat))[$t[6]], $t[3],
        (qw(Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec))[$t[4]],
        $t[5] + 1900, @t[2, 1, 0];
}

sub respond {
    my ($status, $doc, @headers) = @_;
    push @headers, "Conditional-Invalidate: " . join ', ', split /,/,
        $query{invalidate} if $query{invalidate};
    print "Status: $status\r\n";
    print "$_\r\n" for @headers;
    if ($status == 204 || $status == 304) {
        print "\r\n";
        exit 0;
    }
    my $body = $JSON->encode($doc) . "\n";
    print "Content-Type: application/json\r\n";
    print "Content-Length: ", length $body, "\r\n\r\n";
    print $body unless $method eq 'HEAD';
    exit 0;
}

sub fail {
    my ($status, $message, @headers) = @_;
    respond($status, { error => $message }, @headers);
}
