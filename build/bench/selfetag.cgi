#!/usr/bin/perl
# selfetag.cgi - the benchmark's "backend validates itself" comparison:
# what an application does without mod_conditional, like Django's
# ConditionalGetMiddleware. It runs for every request, reads the document
# the API stores (DOCS_DATA/docs/NAME.json for PATH_INFO /docs/NAME), derives an
# ETag from the bytes and answers 304 itself when If-None-Match matches.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my ($name) = ($ENV{PATH_INFO} // '') =~ m{^/docs/([A-Za-z0-9._-]+)$};
my $file = defined $name ? "$ENV{DOCS_DATA}/docs/$name.json" : undef;
my $body;
if (defined $file && open(my $fh, '<', $file)) {
    local $/;
    $body = <$fh>;
    close $fh;
}
if (!defined $body) {
    print "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot found\n";
    exit 0;
}
my $etag = '"' . md5_hex($body) . '"';
my $inm = $ENV{HTTP_IF_NONE_MATCH} // '';
if (grep { s/^\s*(?:W\/)?//r eq $etag || $_ eq '*' } split /\s*,\s*/, $inm) {
    print "Status: 304 Not Modified\r\nETag: $etag\r\n\r\n";
    exit 0;
}
print "Status: 200 OK\r\nContent-Type: application/json\r\nETag: $etag\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body";
