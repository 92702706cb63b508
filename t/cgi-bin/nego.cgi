#!/usr/bin/perl
#
# nego.cgi - a legacy API that negotiates: one document, four
# representations chosen by Accept (JSON or XML) and Accept-Language (en or
# fr). It names both in Vary and Cache-Control on two field lines each,
# gives every representation its own Content-Location, sends validators of
# its own (which the module must replace), and serves single byte ranges
# itself without knowing If-Range - the kind of backend that splices two
# versions together for a client unless something in front evaluates it.
#
# Installed as nph-nego.cgi too: as an NPH script it writes the status line
# and every header line itself, so a proxy in front sees the repeated lines
# exactly as sent (through plain CGI httpd merges them into one).
#
#   GET/HEAD /docs/NAME    the representation; 404 when missing
#   PUT      /docs/NAME    the body (text) becomes the document; 201/200
#   DELETE   /docs/NAME    204 or 404
# Query knobs: maxage=N (default 2), nocl=1 (no Content-Location).
# Data: DOCS_DATA/nego/NAME.txt; invocation counters as docs.cgi keeps them.

use strict;
use warnings;

use Fcntl qw(:flock O_RDWR O_CREAT);

my $nph = ($ENV{SCRIPT_FILENAME} || $0) =~ m{(?:^|/)nph-[^/]*$};
my $method = $ENV{REQUEST_METHOD} || 'GET';
my %query = map { my ($k, $v) = split /=/, $_, 2; ($k, $v // '') }
            grep { length } split /[&;]/, $ENV{QUERY_STRING} || '';
my $data = $ENV{DOCS_DATA} or respond(500, 'DOCS_DATA is not set');
my ($name) = ($ENV{PATH_INFO} || '') =~ m{/docs/([A-Za-z0-9._-]+)$};
respond(404, "no document named\n") unless defined $name;
count($name);
my $file = "$data/nego/$name.txt";

if ($method eq 'PUT') {
    my $body = '';
    my $len = $ENV{CONTENT_LENGTH} || 0;
    binmode STDIN;
    while ($len > length $body) {
        read(STDIN, $body, $len - length $body, length $body) or last;
    }
    my $existed = -e $file;
    mkdir "$data/nego";
    open my $fh, '>', "$file.$$" or respond(500, "$file: $!\n");
    print $fh $body;
    close $fh;
    rename "$file.$$", $file or respond(500, "rename: $!\n");
    respond($existed ? 200 : 201, "stored\n");
}
if ($method eq 'DELETE') {
    respond(404, "no document $name\n") unless -e $file;
    unlink $file;
    respond(204, '');
}
respond(405, "method $method\n") unless $method eq 'GET' || $method eq 'HEAD';
open my $fh, '<', $file or respond(404, "no document $name\n");
my $text = do { local $/; <$fh> };
my $mtime = (stat $fh)[9];
close $fh;

my $xml = ($ENV{HTTP_ACCEPT} || '') =~ m{\bapplication/xml\b};
my $fr = ($ENV{HTTP_ACCEPT_LANGUAGE} || '') =~ /^\s*fr\b/i;
my $lang = $fr ? 'fr' : 'en';
my $word = $fr ? 'bonjour' : 'hello';
# Long and repetitive, so compressing filters take it.
my $body = $xml
    ? qq{<doc lang="$lang"><text>$word $text</text>}
      . ("<pad>$word $lang xml</pad>" x 60) . "</doc>\n"
    : qq({"lang":"$lang","text":"$word $text","pad":[)
      . join(',', ("\"$word $lang json\"") x 60) . "]}\n";
my $maxage = defined $query{maxage} && $query{maxage} =~ /^\d+$/
             ? $query{maxage} : 2;
my @h = (
    'Content-Type: ' . ($xml ? 'application/xml' : 'application/json'),
    "Content-Language: $lang",
    'Vary: Accept',
    'Vary: Accept-Language',
    'Cache-Control: public',
    "Cache-Control: max-age=$maxage",
    # Validators of its own, which the module must replace: the date a day
    # before the file's, so a leaked one cannot pass for the module's.
    'ETag: "nego-' . length($text) . '"',
    'Last-Modified: ' . http_date($mtime - 86400),
    'Accept-Ranges: bytes',
);
push @h, "Content-Location: /docs/$name.$lang." . ($xml ? 'xml' : 'json')
    unless $query{nocl};

# One byte range, served whatever If-Range says.
my $status = 200;
if (($ENV{HTTP_RANGE} || '') =~ /^bytes=(\d+)-(\d*)$/ && $1 < length $body) {
    my ($from, $to) = ($1, length $2 ? $2 : length($body) - 1);
    $to = length($body) - 1 if $to >= length $body;
    push @h, "Content-Range: bytes $from-$to/" . length $body;
    $body = substr $body, $from, $to - $from + 1;
    $status = 206;
}
respond($status, $body, @h);

sub respond {
    my ($status, $body, @headers) = @_;
    my %reason = (200 => 'OK', 201 => 'Created', 204 => 'No Content',
                  206 => 'Partial Content', 404 => 'Not Found',
                  405 => 'Method Not Allowed', 500 => 'Server Error');
    binmode STDOUT;
    print $nph ? "HTTP/1.1 $status $reason{$status}\r\nConnection: close\r\n"
               : "Status: $status\r\n";
    print "$_\r\n" for @headers;
    print "Content-Type: text/plain\r\n" unless grep { /^Content-Type:/ } @headers;
    print 'Content-Length: ', length $body, "\r\n" unless $status == 204;
    print "\r\n";
    print $body unless $method eq 'HEAD' || $status == 204;
    exit 0;
}

sub count {
    my $n = shift;
    mkdir "$data";
    mkdir "$data/counters";
    for my $f ("$data/counters/_global.count", "$data/counters/$n.count") {
        sysopen my $c, $f, O_RDWR | O_CREAT, 0644 or next;
        flock $c, LOCK_EX;
        my $v = <$c> || 0;
        seek $c, 0, 0;
        truncate $c, 0;
        print $c $v + 1, "\n";
        close $c;
    }
}

sub http_date {
    my @t = gmtime shift;
    return sprintf '%s, %02d %s %04d %02d:%02d:%02d GMT',
        (qw(Sun Mon Tue Wed Thu Fri Sat))[$t[6]], $t[3],
        (qw(Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec))[$t[4]],
        $t[5] + 1900, @t[2, 1, 0];
}
